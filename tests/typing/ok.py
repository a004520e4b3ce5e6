"""Correct uses of the otel-llm clients: must pass ``mypy --strict`` with these exact types.

Checked by tests/test_typing.py; never run. ``model`` is left out everywhere:
the selection fills it.
"""

from __future__ import annotations

from typing import assert_type

import openai
from openai import AsyncStream, Stream
from openai._legacy_response import LegacyAPIResponse
from openai._models import FinalRequestOptions
from openai._response import APIResponse, AsyncAPIResponse
from openai.lib.streaming.chat import ChatCompletionStream, ChatCompletionStreamEvent
from openai.pagination import SyncPage
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam, ParsedChatCompletion
from openai.types.responses import ParsedResponse, Response, ResponseStreamEvent
from pydantic import BaseModel

from otel_llm import AsyncLLMClient, LLMClient, get_async_llm_client_smart, get_llm_client_smart

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Extract the keywords of this text."}]


class Keywords(BaseModel):
    words: list[str]


def sync_calls(client: LLMClient) -> None:
    assert_type(client.chat.completions.create(messages=MESSAGES, temperature=0.2), ChatCompletion)
    assert_type(client.chat.completions.create(messages=MESSAGES, stream=True), Stream[ChatCompletionChunk])
    assert_type(client.chat.completions.create(messages=MESSAGES, model="gpt41"), ChatCompletion)
    assert_type(
        client.chat.completions.parse(messages=MESSAGES, response_format=Keywords), ParsedChatCompletion[Keywords]
    )
    with client.chat.completions.stream(messages=MESSAGES, response_format=Keywords) as stream:
        assert_type(stream, ChatCompletionStream[Keywords])
        for event in stream:
            assert_type(event, ChatCompletionStreamEvent[Keywords])
    assert_type(client.embeddings.create(input=["a", "b"], dimensions=8), CreateEmbeddingResponse)
    assert_type(client.responses.create(input="Hello"), Response)
    assert_type(client.responses.create(input="Hello", stream=True), Stream[ResponseStreamEvent])
    assert_type(client.responses.parse(input="Hello", text_format=Keywords), ParsedResponse[Keywords])
    with client.responses.stream(input="Hello", max_output_tokens=64) as events:
        assert_type(events.get_final_response(), ParsedResponse[None])
    assert_type(client.responses.retrieve("resp_1"), Response)


def raw_responses(client: LLMClient) -> None:
    raw = client.chat.completions.with_raw_response.create(messages=MESSAGES)
    assert_type(raw, LegacyAPIResponse[ChatCompletion])
    assert_type(raw.headers.get("x-ratelimit-remaining-requests"), str | None)
    assert_type(raw.parse(), ChatCompletion)
    assert_type(
        client.with_raw_response.chat.completions.create(messages=MESSAGES, stream=True),
        LegacyAPIResponse[Stream[ChatCompletionChunk]],
    )
    assert_type(
        client.chat.completions.with_raw_response.parse(messages=MESSAGES, response_format=Keywords),
        LegacyAPIResponse[ParsedChatCompletion[Keywords]],
    )
    assert_type(client.embeddings.with_raw_response.create(input="a"), LegacyAPIResponse[CreateEmbeddingResponse])
    assert_type(client.responses.with_raw_response.create(input="Hello"), LegacyAPIResponse[Response])
    with client.chat.completions.with_streaming_response.create(messages=MESSAGES) as response:
        assert_type(response, APIResponse[ChatCompletion])
    with client.with_streaming_response.embeddings.create(input="a") as embedded:
        assert_type(embedded, APIResponse[CreateEmbeddingResponse])


def everything_else_is_the_sdk(client: LLMClient) -> None:
    assert_type(client.models.list(), SyncPage[Model])
    options = FinalRequestOptions.construct(method="get", url="/models/gpt-4.1-mini")
    assert_type(client.request(Model, options), Model)  # the request path keeps the SDK's overloads
    assert_type(client.with_options(timeout=9), LLMClient)
    sdk_client: openai.OpenAI = client  # a drop-in: code typed for the SDK client takes it
    with client:
        pass
    del sdk_client


async def async_calls(client: AsyncLLMClient) -> None:
    assert_type(await client.chat.completions.create(messages=MESSAGES), ChatCompletion)
    assert_type(await client.chat.completions.create(messages=MESSAGES, stream=True), AsyncStream[ChatCompletionChunk])
    assert_type(
        await client.chat.completions.parse(messages=MESSAGES, response_format=Keywords),
        ParsedChatCompletion[Keywords],
    )
    assert_type(await client.embeddings.create(input="a"), CreateEmbeddingResponse)
    assert_type(await client.responses.create(input="Hello"), Response)
    assert_type(await client.responses.create(input="Hello", stream=True), AsyncStream[ResponseStreamEvent])
    assert_type(
        await client.chat.completions.with_raw_response.create(messages=MESSAGES), LegacyAPIResponse[ChatCompletion]
    )
    async with client.chat.completions.with_streaming_response.create(messages=MESSAGES) as response:
        assert_type(response, AsyncAPIResponse[ChatCompletion])
    async with client.with_options(timeout=9) as scoped:
        assert_type(scoped, AsyncLLMClient)


def factories() -> None:
    assert_type(get_llm_client_smart("keywords", headers={"X-LLM-Model": "gpt41"}), LLMClient)
    assert_type(get_async_llm_client_smart("keywords", request_model="gpt41"), AsyncLLMClient)

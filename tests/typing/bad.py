"""Wrong uses of the otel-llm clients: each line must raise exactly the error it is marked with.

Checked by tests/test_typing.py with ``mypy --strict --warn-unused-ignores``: a
line that no longer fails makes its ``type: ignore`` unused, which is an error.
"""

from __future__ import annotations

from openai.types.chat import ChatCompletionMessageParam

from otel_llm import AsyncLLMClient, LLMClient

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]


def misspelt_keywords(client: LLMClient) -> None:
    client.chat.completions.create(messages=MESSAGES, temprature=0.2)  # type: ignore[call-overload]
    client.chat.completions.parse(messages=MESSAGES, max_token=5)  # type: ignore[call-arg]
    client.chat.completions.stream(messages=MESSAGES, tool=[])  # type: ignore[call-arg]
    client.embeddings.create(inputs="a")  # type: ignore[call-arg]
    client.responses.create(inpt="Hello")  # type: ignore[call-overload]
    client.responses.stream(input="Hello", max_tokens=5)  # type: ignore[call-overload]
    client.chat.completions.with_raw_response.create(message=MESSAGES)  # type: ignore[call-overload]
    client.with_streaming_response.embeddings.create(input="a", dimension=3)  # type: ignore[call-arg]


def wrong_types(client: LLMClient) -> None:
    client.chat.completions.create(messages="hi")  # type: ignore[arg-type]
    client.chat.completions.create(messages=MESSAGES, temperature="warm")  # type: ignore[call-overload]
    client.embeddings.create(input=3.5)  # type: ignore[arg-type]
    client.responses.create(input="Hello", max_output_tokens="64")  # type: ignore[call-overload]
    client.embeddings.with_raw_response.create(input="a", model=3)  # type: ignore[arg-type]


def wrong_return_types(client: LLMClient) -> None:
    text: str = client.chat.completions.create(messages=MESSAGES)  # type: ignore[assignment]
    chunks: int = client.chat.completions.create(messages=MESSAGES, stream=True)  # type: ignore[assignment]
    del text, chunks


async def async_misuse(client: AsyncLLMClient) -> None:
    await client.chat.completions.create(messages=MESSAGES, temprature=0.2)  # type: ignore[call-overload]
    _ = client.chat.completions.create(messages=MESSAGES).choices  # type: ignore[attr-defined]  # not awaited

"""Real providers' shapes, reproduced by the embedded server's quirks (SPEC §4, *Chat streams*)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from helpers import KEY, shapes_settings
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm import get_async_llm_client_smart, get_llm_client_smart
from otel_llm.testing import MockLLMServer, Quirk

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]


def attempt_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT and "otel_llm.attempt" in s.attributes]


def attempt_span(spans: InMemorySpanExporter) -> ReadableSpan:
    [span] = attempt_spans(spans)
    return span


def raw_sdk(server: MockLLMServer, azure: bool = False) -> openai.OpenAI:
    if azure:
        return openai.AzureOpenAI(azure_endpoint=server.azure_endpoint, api_version="2024-10-21", api_key=KEY)
    return openai.OpenAI(base_url=server.base_url, api_key=KEY)


def dumped(chunks: list[Any]) -> list[dict[str, Any]]:
    return [{k: v for k, v in c.model_dump().items() if k not in ("id", "created")} for c in chunks]


def test_an_azure_stream_takes_its_id_and_model_from_the_first_chunk_that_has_them(
    server: MockLLMServer, spans: InMemorySpanExporter
) -> None:
    server.set_quirks("gpt-4o-2", Quirk.PROMPT_FILTER_CHUNK)
    client = get_llm_client_smart("gap_analysis", settings=shapes_settings(server))
    chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True))
    expected = list(
        raw_sdk(server, azure=True).chat.completions.create(model="gpt-4o-2", messages=MESSAGES, stream=True)
    )

    assert dumped(chunks) == dumped(expected) and chunks[0].id == ""  # the filter chunk reaches the caller as is
    attributes = attempt_span(spans).attributes
    assert attributes["gen_ai.response.id"] == chunks[1].id != ""
    assert attributes["gen_ai.response.model"] == chunks[1].model == "gpt-4o-2"


@pytest.mark.parametrize("asked", [False, True], ids=["usage-not-asked", "usage-asked"])
def test_a_proxy_usage_chunk_in_an_empty_choice_is_shown_only_when_asked_for(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, asked: bool
) -> None:
    server.set_quirks("gpt-4.1-mini", Quirk.USAGE_IN_EMPTY_CHOICE)
    options: Any = {"stream_options": {"include_usage": True}} if asked else {}
    client = get_llm_client_smart(api, settings=shapes_settings(server))
    chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True, **options))
    expected = list(
        raw_sdk(server).chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True, **options)
    )

    assert len(chunks) == len(expected) == (19 if asked else 18)
    assert dumped(chunks) == dumped(expected)
    assert attempt_span(spans).attributes["gen_ai.usage.output_tokens"] == 16


@pytest.mark.anyio
async def test_a_stream_that_ends_with_done_but_no_finish_reason_is_complete(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str
) -> None:
    server.set_quirks("gpt-4.1-mini", Quirk.NO_FINISH_REASON)
    settings = shapes_settings(server)
    sync_chunks = list(
        get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True)
    )
    stream = await get_async_llm_client_smart(api, settings=settings).chat.completions.create(
        messages=MESSAGES, stream=True
    )
    async_chunks = [chunk async for chunk in stream]

    assert len(sync_chunks) == len(async_chunks) == 18
    attempts = attempt_spans(spans)
    assert len(attempts) == 2
    for span in attempts:
        assert span.status.status_code is not StatusCode.ERROR and "error.type" not in span.attributes
        assert "gen_ai.response.finish_reasons" not in span.attributes
        assert span.attributes["gen_ai.usage.output_tokens"] == 16


def test_a_stream_ended_by_done_without_finish_reason_gives_its_connection_back(
    server: MockLLMServer, api: str
) -> None:
    server.set_quirks("gpt-4.1-mini", Quirk.NO_FINISH_REASON)
    client = get_llm_client_smart(api, settings=shapes_settings(server))
    opened = server.connections_opened
    for _ in range(3):
        list(client.chat.completions.create(messages=MESSAGES, stream=True))
    assert server.connections_opened - opened <= 1


@pytest.mark.anyio
async def test_answers_without_a_model_record_no_response_model(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str
) -> None:
    server.set_quirks("gpt-4.1-mini", Quirk.NO_MODEL)
    settings = shapes_settings(server)
    client = get_llm_client_smart(api, settings=settings)
    client.chat.completions.create(messages=MESSAGES)
    list(client.chat.completions.create(messages=MESSAGES, stream=True))
    client.responses.create(input="Extract the keywords.")
    await get_async_llm_client_smart(api, settings=settings).embeddings.create(input=["a b"])

    attempts = attempt_spans(spans)
    assert len(attempts) == 4
    for span in attempts:
        assert "gen_ai.response.model" not in span.attributes
        assert "error.type" not in span.attributes and span.attributes["gen_ai.usage.input_tokens"] > 0


@pytest.mark.parametrize("stream", [False, True], ids=["response", "stream"])
def test_a_content_filtered_azure_answer_is_returned_and_recorded_with_capture_on(
    server: MockLLMServer, spans: InMemorySpanExporter, stream: bool
) -> None:
    server.set_quirks("gpt-4o-2", Quirk.CONTENT_FILTERED)
    settings = shapes_settings(server).model_copy(update={"capture_message_content": True})
    client = get_llm_client_smart("gap_analysis", settings=settings)
    raw = raw_sdk(server, azure=True).chat.completions.create(model="gpt-4o-2", messages=MESSAGES, stream=stream)
    if stream:
        answer: Any = dumped(list(client.chat.completions.create(messages=MESSAGES, stream=True)))
        assert answer == dumped(list(raw))
    else:
        response = client.chat.completions.create(messages=MESSAGES)
        assert response.choices[0].message is None and response.choices[0].finish_reason == "content_filter"
        assert dumped([response]) == dumped([raw])

    attributes = attempt_span(spans).attributes
    assert attributes["gen_ai.response.finish_reasons"] == ("content_filter",)
    assert "error.type" not in attributes
    if not stream:
        assert json.loads(attributes["gen_ai.output.messages"]) == [
            {"role": "assistant", "parts": [{"type": "text", "content": ""}], "finish_reason": "content_filter"}
        ]

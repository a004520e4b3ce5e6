"""Spans and metrics of every call (SPEC §6-§7), checked against what the server returned."""

from __future__ import annotations

import gc
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from helpers import all_telemetry, metric_points
from opentelemetry.metrics import CallbackOptions
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader, Metric, Sum
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otel_llm._apis
from otel_llm import (
    LLMSettings,
    StreamTruncatedError,
    UnknownModelError,
    close_clients,
    get_async_llm_client_smart,
    get_llm_client_smart,
)
from otel_llm._semconv import DURATION_BUCKETS, TOKEN_BUCKETS, Totals
from otel_llm.testing import Fault, MockLLMServer

KEY = "sk-telemetry-secret-9f8e7d"
MESSAGES = [{"role": "user", "content": "Extract the keywords of this text please."}]
PRICE = {"input": 3.0, "output": 7.0, "cached_input": 0.5}  # USD per 1M tokens, not the library's


@pytest.fixture
def api(request: pytest.FixtureRequest) -> str:
    """An API name of this test's own, so cumulative metrics are this test's alone."""
    return f"api-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(server: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> LLMSettings:
    monkeypatch.setenv("TEST_LLM_KEY", KEY)  # this module's own key, to look for in the telemetry

    def openai_model(model: str) -> dict[str, str]:
        return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_LLM_KEY"}

    return LLMSettings(
        models={
            "mini": openai_model("gpt-4.1-mini"),
            "embed": openai_model("text-embedding-3-small"),
            "azure": {
                "provider": "azure",
                "model": "gpt-4o",
                "deployment": "gpt-4o-2",
                "endpoint": server.azure_endpoint,
                "api_version": "2024-10-21",
                "api_key_env": "TEST_LLM_KEY",
            },
        },
        model_default="mini",
        prices={"mini": PRICE},
        enable_llm_model_override=True,
        enable_llm_model_header=True,
    )


def tree(spans: InMemorySpanExporter) -> tuple[ReadableSpan, ReadableSpan, list[ReadableSpan]]:
    """The logical span, its one attempt span, and the attempt's children."""
    finished = spans.get_finished_spans()
    [call] = [s for s in finished if s.kind is SpanKind.INTERNAL]
    [attempt] = [
        s for s in finished if s.kind is SpanKind.CLIENT and s.parent and s.parent.span_id == call.context.span_id
    ]
    children = [s for s in finished if s.parent and s.parent.span_id == attempt.context.span_id]
    return call, attempt, children


def cost(prompt: int, completion: int, cached: int = 0) -> float:
    return ((prompt - cached) * PRICE["input"] + cached * PRICE["cached_input"] + completion * PRICE["output"]) / 1e6


def test_chat_span_tree_and_attributes(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    response = get_llm_client_smart(api, settings=settings).chat.completions.create(
        messages=MESSAGES, temperature=0.3, max_tokens=50, top_p=0.9
    )

    call, attempt, children = tree(spans)
    usage = response.usage
    assert usage is not None
    assert call.name == f"chat {api}"
    assert call.status.status_code is StatusCode.UNSET
    assert dict(call.attributes) == {
        "gen_ai.operation.name": "chat",
        "otel_llm.api.name": api,
        "otel_llm.selection.source": "default",
        "otel_llm.model.alias": "mini",
        "otel_llm.attempts": 1,
        "otel_llm.fallback.used": False,
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "otel_llm.cost.usd": pytest.approx(cost(usage.prompt_tokens, usage.completion_tokens)),
    }
    assert attempt.name == "chat gpt-4.1-mini"
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.context.trace_id == call.context.trace_id
    assert dict(attempt.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4.1-mini",
        "otel_llm.api.name": api,
        "otel_llm.model.alias": "mini",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "otel_llm.attempt": 1,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.max_tokens": 50,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": response.model,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "otel_llm.cost.usd": pytest.approx(cost(usage.prompt_tokens, usage.completion_tokens)),
    }
    [http] = children
    assert http.kind is SpanKind.CLIENT and http.name == "POST"
    # old or new HTTP semconv, as OTEL_SEMCONV_STABILITY_OPT_IN says
    assert http.attributes.get("http.response.status_code", http.attributes.get("http.status_code")) == 200


def test_azure_attempt_names_the_deployment(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    get_llm_client_smart(api, request_model="azure", settings=settings).chat.completions.create(messages=MESSAGES)
    call, attempt, _ = tree(spans)
    assert call.attributes["otel_llm.selection.source"] == "request"
    assert attempt.name == "chat gpt-4o-2"
    assert attempt.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert attempt.attributes["gen_ai.request.model"] == "gpt-4o-2"
    assert attempt.attributes["otel_llm.model.alias"] == "azure"
    # No override for gpt-4o: priced from genai-prices by the canonical model ($2.50 / $10 per 1M).
    usage_in, usage_out = (
        attempt.attributes["gen_ai.usage.input_tokens"],
        attempt.attributes["gen_ai.usage.output_tokens"],
    )
    assert attempt.attributes["otel_llm.cost.usd"] == pytest.approx((usage_in * 2.5 + usage_out * 10) / 1e6)


def test_embeddings_spans(server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str) -> None:
    response = get_llm_client_smart(api, request_model="embed", settings=settings).embeddings.create(
        input=["a b c", "d e"], dimensions=4
    )
    call, attempt, _ = tree(spans)
    assert call.name == f"embeddings {api}"
    assert attempt.name == "embeddings text-embedding-3-small"
    assert attempt.attributes["gen_ai.operation.name"] == "embeddings"
    assert attempt.attributes["gen_ai.embeddings.dimension.count"] == 4
    assert attempt.attributes["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens == 5
    assert "gen_ai.usage.output_tokens" not in attempt.attributes
    assert "gen_ai.usage.output_tokens" not in call.attributes
    assert attempt.attributes["otel_llm.cost.usd"] == pytest.approx(5 * 0.02 / 1e6)  # genai-prices


def test_metrics_names_units_attributes_and_buckets(
    server: MockLLMServer, settings: LLMSettings, metric_reader: InMemoryMetricReader, api: str
) -> None:
    client = get_llm_client_smart(api, settings=settings)
    response = client.chat.completions.create(messages=MESSAGES)
    client.chat.completions.create(messages=MESSAGES)
    usage = response.usage
    assert usage is not None
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4.1-mini",
        "otel_llm.api.name": api,
        "otel_llm.model.alias": "mini",
    }

    [(attributes, duration, unit)] = metric_points(metric_reader, "gen_ai.client.operation.duration", api)
    assert (attributes, unit, duration.count) == (base, "s", 2)
    assert isinstance(duration, HistogramDataPoint) and tuple(duration.explicit_bounds) == DURATION_BUCKETS
    assert DURATION_BUCKETS[0] == 0.01 and DURATION_BUCKETS[-1] == 81.92

    tokens = {p[0]["gen_ai.token.type"]: p for p in metric_points(metric_reader, "gen_ai.client.token.usage", api)}
    assert tokens["input"][0] == {**base, "gen_ai.token.type": "input"}
    assert (tokens["input"][1].sum, tokens["input"][1].count, tokens["input"][2]) == (
        2 * usage.prompt_tokens,
        2,
        "{token}",
    )
    assert tokens["output"][1].sum == 2 * usage.completion_tokens
    assert tuple(tokens["input"][1].explicit_bounds) == TOKEN_BUCKETS
    assert TOKEN_BUCKETS[-1] == 67108864

    [(attributes, calls, unit)] = metric_points(metric_reader, "otel_llm.call.duration", api)
    assert attributes == {
        "otel_llm.api.name": api,
        "otel_llm.model.alias": "mini",
        "otel_llm.selection.source": "default",
        "otel_llm.outcome": "ok",
    }
    assert (calls.count, unit) == (2, "s")

    [(attributes, total, unit)] = metric_points(metric_reader, "otel_llm.cost.usd", api)
    assert attributes == {
        "otel_llm.api.name": api,
        "otel_llm.model.alias": "mini",
        "gen_ai.request.model": "gpt-4.1-mini",
    }
    assert unit == "{USD}"
    assert total.value == pytest.approx(2 * cost(usage.prompt_tokens, usage.completion_tokens))
    [cost_metric] = [m for m in all_metrics(metric_reader) if m.name == "otel_llm.cost.usd"]
    assert isinstance(cost_metric.data, Sum) and cost_metric.data.is_monotonic  # a counter to Prometheus


def all_metrics(reader: InMemoryMetricReader) -> list[Metric]:
    data = reader.get_metrics_data()
    assert data is not None
    return [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def test_cost_sums_keep_to_their_limit_and_only_grow() -> None:
    totals = Totals(limit=2)
    totals.add("a", 1.0, {"k": "a"})
    totals.add("b", 2.0, {"k": "b"})
    totals.add("c", 4.0, {"k": "c"})  # past the limit: the overflow set
    totals.add("d", 8.0, {"k": "d"})
    totals.add("a", -1.0, {"k": "a"})  # dropped, as a counter drops it
    totals.add("a", float("nan"), {"k": "a"})
    totals.add("a", 0.5, {"k": "a"})
    observed = {json.dumps(dict(o.attributes or {})): o.value for o in totals.observe(CallbackOptions())}
    assert observed == {'{"k": "a"}': 1.5, '{"k": "b"}': 2.0, '{"otel.metric.overflow": true}': 12.0}


def test_failed_call_sets_error_type_and_status(
    server: MockLLMServer,
    settings: LLMSettings,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    api: str,
) -> None:
    server.add_faults("gpt-4.1-mini", Fault.status(429, retry_after=1))
    once = settings.model_copy(update={"retry_attempts": 1})
    with pytest.raises(openai.RateLimitError):
        get_llm_client_smart(api, settings=once).chat.completions.create(messages=MESSAGES)

    call, attempt, _ = tree(spans)
    for span in (call, attempt):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "429"
    assert "gen_ai.usage.input_tokens" not in attempt.attributes and "otel_llm.cost.usd" not in call.attributes
    [(attributes, _, _)] = metric_points(metric_reader, "gen_ai.client.operation.duration", api)
    assert attributes["error.type"] == "429"
    [(attributes, _, _)] = metric_points(metric_reader, "otel_llm.call.duration", api)
    assert attributes["otel_llm.outcome"] == "error"


def test_connection_errors_are_named_by_class(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("gpt-4.1-mini", Fault.drop())
    once = settings.model_copy(update={"retry_attempts": 1})
    with pytest.raises(openai.APIConnectionError):
        get_llm_client_smart(api, settings=once).chat.completions.create(messages=MESSAGES)
    _, attempt, _ = tree(spans)
    assert attempt.attributes["error.type"] == "openai.APIConnectionError"


def test_http_spans_can_be_turned_off(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    lean = settings.model_copy(update={"http_spans": False})
    get_llm_client_smart(api, settings=lean).chat.completions.create(messages=MESSAGES)
    _, _, children = tree(spans)
    assert children == []


def stream_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("caller_asks_usage", [False, True])
def test_stream_usage_is_exact_and_the_extra_chunk_hidden(
    server: MockLLMServer,
    settings: LLMSettings,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    api: str,
    caller_asks_usage: bool,
) -> None:
    client = get_llm_client_smart(api, settings=settings)
    whole = client.chat.completions.create(messages=MESSAGES)
    spans.clear()
    options = {"stream_options": {"include_usage": True}} if caller_asks_usage else {}
    chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True, **options))

    assert server.requests[-1].body["stream_options"] == {"include_usage": True}
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == (1 if caller_asks_usage else 0)
    assert stream_text(chunks) == whole.choices[0].message.content
    call, attempt, _ = tree(spans)
    assert whole.usage is not None
    assert attempt.attributes["gen_ai.usage.input_tokens"] == whole.usage.prompt_tokens
    assert attempt.attributes["gen_ai.usage.output_tokens"] == whole.usage.completion_tokens
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attempt.attributes["gen_ai.response.id"] == chunks[0].id
    assert 0 < attempt.attributes["gen_ai.response.time_to_first_chunk"] < (attempt.end_time - attempt.start_time) / 1e9
    assert call.attributes["otel_llm.cost.usd"] == pytest.approx(
        cost(whole.usage.prompt_tokens, whole.usage.completion_tokens)
    )
    [(_, first_chunk, unit)] = metric_points(metric_reader, "gen_ai.client.operation.time_to_first_chunk", api)
    assert (first_chunk.count, unit) == (1, "s")


USAGE_ATTRIBUTES = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.reasoning.output_tokens",
)


@pytest.mark.parametrize("caller_asks_usage", [False, True])
def test_a_stream_records_cached_and_reasoning_tokens_as_its_usage_chunk_says(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str, caller_asks_usage: bool
) -> None:
    """The usage chunk we asked for is read from its JSON before the SDK parses it; one the caller
    asked for is read from the SDK's chunk. Both record what the raw SDK parses from the same stream."""
    request: Any = {"messages": [{"role": "user", "content": "word " * 1100}], "reasoning_effort": "low"}
    raw = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)

    def raw_usage() -> Any:
        with_usage = {"stream_options": {"include_usage": True}}
        return list(raw.chat.completions.create(model="gpt-4.1-mini", stream=True, **request, **with_usage))[-1].usage

    raw_usage()  # the prompt is cached from now on
    options = {"stream_options": {"include_usage": True}} if caller_asks_usage else {}
    chunks = list(
        get_llm_client_smart(api, settings=settings).chat.completions.create(stream=True, **request, **options)
    )
    usage = raw_usage()

    assert usage is not None and usage.prompt_tokens_details and usage.completion_tokens_details
    cached, reasoning = usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens
    assert cached and cached > 1000 and reasoning

    assert [c.usage for c in chunks if c.usage is not None] == ([usage] if caller_asks_usage else [])
    _, attempt, _ = tree(spans)
    assert {name: attempt.attributes.get(name) for name in USAGE_ATTRIBUTES} == {
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.completion_tokens,
        "gen_ai.usage.cache_read.input_tokens": cached,
        "gen_ai.usage.reasoning.output_tokens": reasoning,
    }
    assert attempt.attributes["otel_llm.cost.usd"] == pytest.approx(
        cost(usage.prompt_tokens, usage.completion_tokens, cached)
    )


def test_a_bug_reading_raw_stream_events_changes_nothing_the_caller_gets(
    server: MockLLMServer,
    settings: LLMSettings,
    spans: InMemorySpanExporter,
    api: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Our own reading of server-sent events raising: every event goes on to the SDK, the usage
    chunk is then read from the SDK's chunk (and still hidden), and the failure is logged once."""
    client = get_llm_client_smart(api, settings=settings)
    expected = list(client.chat.completions.create(messages=MESSAGES, stream=True))
    spans.clear()

    def bug(data: str) -> None:
        raise RuntimeError("reader bug")

    monkeypatch.setattr(otel_llm._apis, "_bare_usage_chunk", bug)
    with caplog.at_level(logging.ERROR, logger="otel_llm"):
        streams = [list(client.chat.completions.create(messages=MESSAGES, stream=True)) for _ in range(3)]

    def seen(chunks: list[Any]) -> list[Any]:
        return [(c.choices, c.usage) for c in chunks]

    assert all(seen(chunks) == seen(expected) for chunks in streams)
    attempts = [s for s in spans.get_finished_spans() if s.name == "chat gpt-4.1-mini"]
    assert len(attempts) == 3 and all(s.attributes["gen_ai.usage.output_tokens"] == 16 for s in attempts)
    [record] = caplog.records
    assert "_ChatStream.event" in record.getMessage() and "the call goes on without it" in record.getMessage()


@pytest.mark.anyio
async def test_async_stream_and_call(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    client = get_async_llm_client_smart(api, settings=settings)
    stream = await client.chat.completions.create(messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None for c in chunks)
    _, attempt, children = tree(spans)
    assert attempt.attributes["gen_ai.usage.output_tokens"] == 16
    assert "gen_ai.response.time_to_first_chunk" in attempt.attributes
    assert [c.name for c in children] == ["POST"]
    spans.clear()
    await client.embeddings.create(input="x", model="embed")
    assert tree(spans)[0].name == f"embeddings {api}"


def test_stream_closed_early_ends_the_spans(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    stream = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True)
    with stream:
        next(stream), next(stream)
        assert not [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]  # still open
    call, attempt, _ = tree(spans)
    assert call.status.status_code is StatusCode.UNSET
    assert "gen_ai.response.time_to_first_chunk" in attempt.attributes
    assert "gen_ai.usage.input_tokens" not in attempt.attributes  # the usage chunk never came


def test_stream_dropped_without_close_ends_the_spans_when_collected(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    stream = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True)
    next(stream)
    del stream
    gc.collect()
    call, _, _ = tree(spans)
    assert call.name == f"chat {api}"


def test_stream_cut_mid_answer_raises_and_is_recorded(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("gpt-4.1-mini", Fault.cut_stream(after_chunks=3))
    stream = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 4  # the role chunk and three words
    call, attempt, _ = tree(spans)
    assert call.attributes["error.type"] == attempt.attributes["error.type"] == "openai.APIConnectionError"
    assert call.status.status_code is StatusCode.ERROR


def test_stream_that_ends_without_finish_reason_is_a_truncation_error(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("gpt-4.1-mini", Fault.cut_stream(after_chunks=3, clean=True))
    stream = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True)
    with pytest.raises(StreamTruncatedError, match="truncated") as error:
        list(stream)
    assert isinstance(error.value, openai.APIError)
    call, attempt, _ = tree(spans)
    assert attempt.attributes["error.type"] == call.attributes["error.type"] == "otel_llm.StreamTruncatedError"
    assert attempt.status.status_code is StatusCode.ERROR


def test_sync_streams_reuse_the_connection(server: MockLLMServer, settings: LLMSettings, api: str) -> None:
    client = get_llm_client_smart(api, settings=settings)
    list(client.chat.completions.create(messages=MESSAGES, stream=True))  # warm-up
    opened = server.connections_opened
    for _ in range(10):
        list(client.chat.completions.create(messages=MESSAGES, stream=True))
    assert server.connections_opened - opened == 0


def test_raw_sdk_sync_streams_open_a_connection_each(server: MockLLMServer) -> None:
    """The behaviour the wrapper fixes, measured on the same server."""
    raw = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
    list(raw.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    opened = server.connections_opened
    for _ in range(5):
        list(raw.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert server.connections_opened - opened == 5


def test_cached_input_tokens_are_priced_at_the_cached_rate(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    long_prompt = [{"role": "user", "content": "word " * 1100}]
    client = get_llm_client_smart(api, settings=settings)
    client.chat.completions.create(messages=long_prompt)
    spans.clear()
    response = client.chat.completions.create(messages=long_prompt)
    usage = response.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    cached = usage.prompt_tokens_details.cached_tokens
    assert cached and cached > 1000
    _, attempt, _ = tree(spans)
    assert attempt.attributes["gen_ai.usage.cache_read.input_tokens"] == cached
    assert attempt.attributes["otel_llm.cost.usd"] == pytest.approx(
        cost(usage.prompt_tokens, usage.completion_tokens, cached)
    )


def test_unknown_price_gives_no_cost_and_one_warning(
    server: MockLLMServer,
    settings: LLMSettings,  # sets the key variable
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    api: str,
) -> None:
    model = f"house-model-{uuid.uuid4().hex[:8]}"  # a model no earlier test warned about
    unpriced = {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_LLM_KEY"}
    own = LLMSettings(models={"unpriced": unpriced}, model_default="unpriced")
    with caplog.at_level(logging.WARNING, logger="otel_llm"):
        for _ in range(3):
            get_llm_client_smart(api, settings=own).chat.completions.create(messages=MESSAGES)
    warnings = [r.getMessage() for r in caplog.records if model in r.getMessage()]
    assert len(warnings) == 1
    assert spans.get_finished_spans()
    for span in spans.get_finished_spans():
        assert "otel_llm.cost.usd" not in span.attributes


@pytest.mark.parametrize("mode", ["true", "SPAN_ONLY", "span_and_event"])
def test_content_is_captured_only_when_enabled(
    server: MockLLMServer,
    settings: LLMSettings,
    spans: InMemorySpanExporter,
    api: str,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    client = get_llm_client_smart(api, settings=settings)
    response = client.chat.completions.create(messages=MESSAGES)
    for span in spans.get_finished_spans():
        assert "gen_ai.input.messages" not in span.attributes and "gen_ai.output.messages" not in span.attributes
        assert "Extract the keywords" not in json.dumps(dict(span.attributes))

    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", mode)
    capturing = LLMSettings(**{**settings.model_dump(exclude={"capture_message_content"})})
    assert capturing.capture_message_content
    spans.clear()
    client = get_llm_client_smart(api, settings=capturing)
    client.chat.completions.create(messages=MESSAGES)
    _, attempt, _ = tree(spans)
    assert json.loads(attempt.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": MESSAGES[0]["content"]}]}
    ]
    assert json.loads(attempt.attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": response.choices[0].message.content}],
            "finish_reason": "stop",
        }
    ]
    spans.clear()
    list(client.chat.completions.create(messages=MESSAGES, stream=True))
    _, attempt, _ = tree(spans)
    [output] = json.loads(attempt.attributes["gen_ai.output.messages"])
    assert output["parts"][0]["content"] == response.choices[0].message.content


def test_rejected_header_value_never_reaches_telemetry(
    server: MockLLMServer,
    settings: LLMSettings,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    api: str,
) -> None:
    rejected = f"evil-{uuid.uuid4().hex}"
    with pytest.raises(UnknownModelError):
        get_llm_client_smart(api, headers={"X-LLM-Model": rejected}, settings=settings)
    client = get_llm_client_smart(api, settings=settings)
    with pytest.raises(UnknownModelError):
        client.chat.completions.create(messages=MESSAGES, model=rejected)
    client.chat.completions.create(messages=MESSAGES)
    assert spans.get_finished_spans()  # the valid call was recorded
    assert rejected not in all_telemetry(spans, metric_reader)


@pytest.fixture(params=["headers not captured", "every header captured"])
def captured_headers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """HTTP spans that capture no header, or every request and response header (clients built anew for it)."""
    capture = request.param == "every header captured"
    if capture:
        close_clients()
        monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
        monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE", ".*")
    yield capture
    if capture:
        close_clients()  # no client capturing headers outlives the test


def test_api_key_never_reaches_telemetry(
    server: MockLLMServer,
    settings: LLMSettings,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    api: str,
    captured_headers: bool,
) -> None:
    """Not even when the HTTP spans capture every header, ``Authorization`` and Azure's ``api-key`` included."""
    client = get_llm_client_smart(api, settings=settings)
    client.chat.completions.create(messages=MESSAGES)
    list(client.chat.completions.create(messages=MESSAGES, stream=True))
    client.chat.completions.create(messages=MESSAGES, model="azure")
    server.add_faults("gpt-4.1-mini", Fault.status(401))
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(messages=MESSAGES)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent...
    assert KEY not in all_telemetry(spans, metric_reader)  # ...and never recorded
    http_spans = [span.attributes for span in spans.get_finished_spans() if span.name == "POST"]
    assert len(http_spans) == 4
    if captured_headers:  # the other headers are captured, the keys' redacted
        assert all(span["http.request.header.content_type"] == ("application/json",) for span in http_spans)
        redacted = [
            span.get("http.request.header.authorization", span.get("http.request.header.api_key"))
            for span in http_spans
        ]
        assert redacted == [("[REDACTED]",)] * 4


def test_spans_nest_under_the_callers_span(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, api: str
) -> None:
    from opentelemetry import trace

    with trace.get_tracer("app").start_as_current_span("POST /keywords") as request_span:
        get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES)
        list(get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True))
        # the call's context was detached: the caller's span is current again
        assert trace.get_current_span() is request_span
    calls = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL and s.name.startswith("chat")]
    assert len(calls) == 2
    assert all(c.parent is not None and c.parent.span_id == request_span.get_span_context().span_id for c in calls)

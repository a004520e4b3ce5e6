"""Every generating method gets telemetry and resilience (SPEC §4-§6): the Responses API,
structured outputs, the stream helpers and the raw-response wrappers, through real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import openai
import pytest
from helpers import metric_points
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

from otel_llm import LLMClient, LLMSettings, StreamTruncatedError, get_async_llm_client_smart, get_llm_client_smart
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords of this text."}]
PRICE = {"input": 2.0, "output": 8.0, "cached_input": 0.5}  # USD per 1M tokens


class Keywords(BaseModel):
    words: list[str]
    language: str


def make_settings(server: MockLLMServer, **values: Any) -> LLMSettings:
    """Aliases a, b, c on the server (models model-a, ...); a falls back to b, then c."""
    models = {
        alias: {"provider": "openai", "model": f"model-{alias}", "base_url": server.base_url, "api_key_env": "TEST_KEY"}
        for alias in "abc"
    }
    defaults = {
        "models": models,
        "prices": {f"model-{alias}": PRICE for alias in "abc"},
        "model_default": "a",
        "fallbacks": {"a": ["b", "c"]},
        "retry_max_wait_s": 0.05,
    }
    return LLMSettings(**{**defaults, **values})


@pytest.fixture
def client(server: MockLLMServer, api: str) -> LLMClient:
    return get_llm_client_smart(api, settings=make_settings(server))


def cost(input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    return (
        (input_tokens - cached) * PRICE["input"] + cached * PRICE["cached_input"] + output_tokens * PRICE["output"]
    ) / 1e6


def call_and_attempts(spans: InMemorySpanExporter) -> tuple[ReadableSpan, list[ReadableSpan]]:
    finished = spans.get_finished_spans()
    [call] = [s for s in finished if s.kind is SpanKind.INTERNAL]
    attempts = [
        s for s in finished if s.kind is SpanKind.CLIENT and s.parent and s.parent.span_id == call.context.span_id
    ]
    return call, sorted(attempts, key=lambda s: s.attributes["otel_llm.attempt"])


def sent(server: MockLLMServer) -> list[str]:
    return [request.model or "" for request in server.requests]


# -- the Responses API -------------------------------------------------------------------


def test_a_response_is_recorded_as_the_genai_instrumentation_reads_it(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader, api: str
) -> None:
    response = client.responses.create(
        input="Extract the keywords.", max_output_tokens=64, temperature=0.2, top_p=0.9, reasoning={"effort": "low"}
    )

    usage = response.usage
    assert usage is not None and usage.output_tokens_details.reasoning_tokens == 8
    call, [attempt] = call_and_attempts(spans)
    assert call.name == f"chat {api}" and attempt.name == "chat model-a"
    assert dict(attempt.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "model-a",
        "otel_llm.api.name": api,
        "otel_llm.model.alias": "a",
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "otel_llm.attempt": 1,
        "gen_ai.request.max_tokens": 64,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.response.id": response.id,
        "gen_ai.response.model": "model-a",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.reasoning.output_tokens": 8,
        "otel_llm.cost.usd": pytest.approx(cost(usage.input_tokens, usage.output_tokens)),
    }
    assert call.attributes["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert call.attributes["otel_llm.cost.usd"] == pytest.approx(cost(usage.input_tokens, usage.output_tokens))
    tokens = {
        point_attributes["gen_ai.token.type"]: point.sum
        for point_attributes, point, _ in metric_points(metric_reader, "gen_ai.client.token.usage", api)
    }
    assert tokens == {"input": usage.input_tokens, "output": usage.output_tokens}


def test_cached_input_tokens_of_a_response_are_priced_at_the_cached_rate(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter
) -> None:
    long_input = "word " * 1100  # OpenAI caches prompts of 1024+ tokens
    client.responses.create(input=long_input)
    spans.clear()
    response = client.responses.create(input=long_input)

    usage = response.usage
    assert usage is not None
    cached = usage.input_tokens_details.cached_tokens
    assert cached >= 1024
    _, [attempt] = call_and_attempts(spans)
    assert attempt.attributes["gen_ai.usage.cache_read.input_tokens"] == cached
    assert attempt.attributes["otel_llm.cost.usd"] == pytest.approx(
        cost(usage.input_tokens, usage.output_tokens, cached)
    )


def test_an_incomplete_response_finishes_for_length(client: LLMClient, spans: InMemorySpanExporter) -> None:
    response = client.responses.create(input="Extract the keywords.", max_output_tokens=16, reasoning={"effort": "low"})

    assert response.status == "incomplete"
    _, [attempt] = call_and_attempts(spans)
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert attempt.status.status_code is StatusCode.UNSET


def test_a_response_stream_takes_its_usage_from_the_terminal_event(
    client: LLMClient, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader, api: str
) -> None:
    events = list(client.responses.create(input="Extract the keywords.", stream=True))

    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    usage = final.response.usage
    assert usage is not None
    call, [attempt] = call_and_attempts(spans)
    assert attempt.attributes["gen_ai.response.id"] == final.response.id
    assert attempt.attributes["gen_ai.usage.input_tokens"] == usage.input_tokens
    assert attempt.attributes["gen_ai.usage.output_tokens"] == usage.output_tokens
    assert attempt.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert attempt.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert call.end_time is not None and call.attributes["otel_llm.cost.usd"] > 0
    [(_, point, _)] = metric_points(metric_reader, "gen_ai.client.operation.time_to_first_chunk", api)
    assert point.count == 1


def test_a_response_stream_without_a_terminal_event_is_truncated(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter
) -> None:
    server.add_faults("model-a", Fault.cut_stream(after_chunks=3, clean=True))
    stream = client.responses.create(input="Extract the keywords.", stream=True)
    received = []
    with pytest.raises(StreamTruncatedError):
        for event in stream:
            received.append(event.type)

    assert received[:2] == ["response.created", "response.in_progress"]
    assert received.count("response.output_text.delta") == 3
    call, [attempt] = call_and_attempts(spans)
    assert attempt.attributes["error.type"] == call.attributes["error.type"] == "otel_llm.StreamTruncatedError"
    assert sent(server) == ["model-a"]


def test_a_response_stream_falls_back_before_its_first_output_event(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter
) -> None:
    # model-a sends response.created and response.in_progress, then stops: twice (its two attempts)
    server.add_faults("model-a", Fault.cut_stream(after_chunks=0, clean=True), Fault.cut_stream(after_chunks=0))
    events = list(client.responses.create(input="Extract the keywords.", stream=True))

    assert sent(server) == ["model-a", "model-a", "model-b"]
    # the held-back lifecycle events of the failed attempts never reached the caller
    assert [event.type for event in events[:2]] == ["response.created", "response.in_progress"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert {event.response.model for event in events if hasattr(event, "response")} == {"model-b"}
    call, attempts = call_and_attempts(spans)
    assert [a.attributes.get("error.type") for a in attempts] == [
        "otel_llm.StreamTruncatedError",
        "openai.APIConnectionError",
        None,
    ]
    assert call.attributes["otel_llm.model.alias"] == "b" and call.attributes["otel_llm.fallback.used"] is True


def test_a_response_stream_is_not_retried_after_its_first_output_event(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter
) -> None:
    server.add_faults("model-a", Fault.cut_stream(after_chunks=2))
    stream = client.responses.create(input="Extract the keywords.", stream=True)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for event in stream:
            received.append(event.type)

    assert "response.output_item.added" in received and received.count("response.output_text.delta") == 2
    assert sent(server) == ["model-a"]
    call, _ = call_and_attempts(spans)
    assert call.attributes["error.type"] == "openai.APIConnectionError"


@pytest.mark.anyio
async def test_async_response_stream_falls_back_and_is_recorded(
    server: MockLLMServer, api: str, spans: InMemorySpanExporter
) -> None:
    server.add_faults("model-a", Fault.status(503), Fault.cut_stream(after_chunks=0))
    client = get_async_llm_client_smart(api, settings=make_settings(server))
    stream = await client.responses.create(input="Extract the keywords.", stream=True)
    events = [event async for event in stream]

    assert events[-1].type == "response.completed" and events[-1].response.model == "model-b"
    assert sent(server) == ["model-a", "model-a", "model-b"]
    call, attempts = call_and_attempts(spans)
    assert len(attempts) == 3 and call.attributes["otel_llm.model.alias"] == "b"


# -- calls that continue stored state ------------------------------------------------------


def stateful_settings(server: MockLLMServer) -> LLMSettings:
    """a and c share a's server and key variable; b is another server (by its URL), so another state."""
    other_server = server.base_url.replace("127.0.0.1", "localhost")
    return make_settings(
        server,
        models={
            "a": {"provider": "openai", "model": "model-a", "base_url": server.base_url, "api_key_env": "TEST_KEY"},
            "b": {"provider": "openai", "model": "model-b", "base_url": other_server, "api_key_env": "TEST_KEY"},
            "c": {"provider": "openai", "model": "model-c", "base_url": server.base_url, "api_key_env": "TEST_KEY"},
        },
    )


@pytest.mark.parametrize("continuation", ["previous_response_id", "conversation"])
def test_a_stateful_call_falls_back_only_to_aliases_on_the_same_endpoint(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, continuation: str
) -> None:
    client = get_llm_client_smart(api, settings=stateful_settings(server))
    first = client.responses.create(input="Remember: the keyword is otel.")
    state = {"previous_response_id": first.id} if continuation == "previous_response_id" else {"conversation": "conv_1"}
    server.add_faults("model-a", Fault.status(503), Fault.status(503))
    spans.clear()
    client.responses.create(input="What was it?", **state)  # type: ignore[arg-type]

    assert sent(server)[1:] == ["model-a", "model-a", "model-c"]  # b, on another endpoint, was never asked
    call, _ = call_and_attempts(spans)
    steps = [
        (
            event.attributes["otel_llm.fallback.from"],
            event.attributes["otel_llm.fallback.to"],
            event.attributes["error.type"],
        )
        for event in call.events
        if event.name == "otel_llm.fallback"
    ]
    assert steps == [("a", "b", "503"), ("b", "c", "stateful")]


def test_a_call_without_stored_state_falls_back_anywhere(server: MockLLMServer, api: str) -> None:
    client = get_llm_client_smart(api, settings=stateful_settings(server))
    server.add_faults("model-a", Fault.status(503), Fault.status(503))
    client.responses.create(input="Extract the keywords.")
    assert sent(server) == ["model-a", "model-a", "model-b"]


def test_retrieving_a_response_is_passed_through(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter
) -> None:
    created = client.responses.create(input="Extract the keywords.")
    spans.clear()
    retrieved = client.responses.retrieve(created.id)

    assert retrieved.id == created.id and retrieved.output_text == created.output_text
    assert [r.method for r in server.requests] == ["POST", "GET"]
    assert not [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]  # no logical call


# -- every generating method, the raw-response wrappers included -----------------------------


def _chat_parse(client: LLMClient) -> Any:
    return client.chat.completions.parse(messages=MESSAGES, response_format=Keywords).usage


def _chat_stream_helper(client: LLMClient) -> Any:
    with client.chat.completions.stream(messages=MESSAGES, stream_options={"include_usage": True}) as stream:
        return stream.get_final_completion().usage


def _responses_parse(client: LLMClient) -> Any:
    return client.responses.parse(input="Extract the keywords.", text_format=Keywords).usage


def _responses_stream_helper(client: LLMClient) -> Any:
    with client.responses.stream(input="Extract the keywords.") as stream:
        return stream.get_final_response().usage


def _raw_chat(client: LLMClient) -> Any:
    raw = client.chat.completions.with_raw_response.create(messages=MESSAGES)
    assert raw.headers["x-ratelimit-remaining-requests"]
    return raw.parse().usage


def _raw_chat_stream(client: LLMClient) -> Any:
    raw = client.with_raw_response.chat.completions.create(
        messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    return [chunk.usage for chunk in raw.parse() if chunk.usage][-1]


def _streaming_response_chat(client: LLMClient) -> Any:
    with client.chat.completions.with_streaming_response.create(messages=MESSAGES) as response:
        return response.parse().usage


def _streaming_response_chat_stream(client: LLMClient) -> Any:
    with client.chat.completions.with_streaming_response.create(
        messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        return [chunk.usage for chunk in response.parse() if chunk.usage][-1]


def _raw_responses(client: LLMClient) -> Any:
    return client.responses.with_raw_response.create(input="Extract the keywords.").parse().usage


def _raw_embeddings(client: LLMClient) -> Any:
    return client.embeddings.with_raw_response.create(input=["one text", "another"]).parse().usage


def _streaming_response_embeddings(client: LLMClient) -> Any:
    with client.with_streaming_response.embeddings.create(input="one text") as response:
        return response.parse().usage


METHODS: dict[str, Callable[[LLMClient], Any]] = {
    "chat.completions.parse": _chat_parse,
    "chat.completions.stream": _chat_stream_helper,
    "responses.parse": _responses_parse,
    "responses.stream": _responses_stream_helper,
    "chat.completions.with_raw_response.create": _raw_chat,
    "with_raw_response.chat.completions.create(stream=True)": _raw_chat_stream,
    "chat.completions.with_streaming_response.create": _streaming_response_chat,
    "chat.completions.with_streaming_response.create(stream=True)": _streaming_response_chat_stream,
    "responses.with_raw_response.create": _raw_responses,
    "embeddings.with_raw_response.create": _raw_embeddings,
    "with_streaming_response.embeddings.create": _streaming_response_embeddings,
}


def _tokens(usage: Any) -> tuple[int, int | None]:
    if hasattr(usage, "input_tokens"):
        return usage.input_tokens, usage.output_tokens
    return usage.prompt_tokens, getattr(usage, "completion_tokens", None)


@pytest.mark.parametrize("method", METHODS.values(), ids=list(METHODS))
def test_each_generating_method_falls_back_and_is_recorded(
    server: MockLLMServer, client: LLMClient, spans: InMemorySpanExporter, method: Callable[[LLMClient], Any]
) -> None:
    server.add_faults("model-a", Fault.status(503), Fault.status(429))
    usage = method(client)

    assert sent(server) == ["model-a", "model-a", "model-b"]
    input_tokens, output_tokens = _tokens(usage)
    call, attempts = call_and_attempts(spans)
    assert [a.attributes.get("error.type") for a in attempts] == ["503", "429", None]
    answered = attempts[-1]
    assert answered.attributes["otel_llm.model.alias"] == call.attributes["otel_llm.model.alias"] == "b"
    assert (
        answered.attributes["gen_ai.usage.input_tokens"] == call.attributes["gen_ai.usage.input_tokens"] == input_tokens
    )
    if output_tokens is not None:
        assert answered.attributes["gen_ai.usage.output_tokens"] == output_tokens
    assert call.attributes["otel_llm.cost.usd"] == pytest.approx(cost(input_tokens, output_tokens or 0))
    assert call.status.status_code is StatusCode.UNSET


def test_a_parse_call_records_json_output(client: LLMClient, spans: InMemorySpanExporter) -> None:
    completion = client.chat.completions.parse(messages=MESSAGES, response_format=Keywords)
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Keywords)
    _, [attempt] = call_and_attempts(spans)
    assert attempt.attributes["gen_ai.output.type"] == "json"


@pytest.mark.anyio
async def test_async_generating_methods_are_recorded(
    server: MockLLMServer, api: str, spans: InMemorySpanExporter
) -> None:
    client = get_async_llm_client_smart(api, settings=make_settings(server))
    parsed = await client.responses.parse(input="Extract the keywords.", text_format=Keywords)
    raw = await client.chat.completions.with_raw_response.create(messages=MESSAGES)
    async with client.chat.completions.with_streaming_response.create(
        messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ) as response:
        chunks = [chunk async for chunk in await response.parse()]
    async with client.chat.completions.stream(messages=MESSAGES, stream_options={"include_usage": True}) as stream:
        final = await stream.get_final_completion()

    assert isinstance(parsed.output_parsed, Keywords)
    assert raw.parse().usage is not None and chunks[-1].usage is not None and final.usage is not None
    calls = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert len(calls) == 4 and all(c.attributes["otel_llm.cost.usd"] > 0 for c in calls)


@pytest.mark.anyio
async def test_a_streaming_response_parses_to_the_same_stream_every_time(server: MockLLMServer, api: str) -> None:
    # as the SDK's AsyncAPIResponse.parse(), which memoises: every await gives the one stream
    client = get_async_llm_client_smart(api, settings=make_settings(server))
    async with client.chat.completions.with_streaming_response.create(messages=MESSAGES, stream=True) as response:
        first = await response.parse()
        again = await response.parse()
        chunks = [chunk async for chunk in again]
    assert again is first and chunks[-1].choices[0].finish_reason == "stop"
    sync = get_llm_client_smart(api, settings=make_settings(server))
    with sync.chat.completions.with_streaming_response.create(messages=MESSAGES, stream=True) as sync_response:
        assert sync_response.parse() is sync_response.parse()


# -- telemetry never fails a call ----------------------------------------------------------


class _FailingProcessor(SpanProcessor):
    """A span processor that raises on every span it sees while switched on."""

    enabled = False

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.enabled:
            raise RuntimeError("span processor failure on start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.enabled:
            raise RuntimeError("span processor failure on end")


_failing = _FailingProcessor()
trace.get_tracer_provider().add_span_processor(_failing)  # type: ignore[attr-defined]


@pytest.fixture
def failing_telemetry() -> Any:
    _failing.enabled = True
    yield
    _failing.enabled = False


def test_a_failing_span_processor_never_fails_a_call(
    server: MockLLMServer, api: str, failing_telemetry: None, caplog: pytest.LogCaptureFixture
) -> None:
    # Without HTTP spans: the httpx2 instrumentation's own span would raise inside the SDK's send.
    client = get_llm_client_smart(api, settings=make_settings(server, http_spans=False))
    caplog.set_level(logging.ERROR, logger="otel_llm")
    response = client.chat.completions.create(messages=MESSAGES)
    events = list(client.responses.create(input="Extract the keywords.", stream=True))

    assert response.choices[0].message.content and events[-1].type == "response.completed"
    assert sent(server) == ["model-a", "model-a"]  # answered at once: the failures were not counted as attempts
    assert any("recording telemetry failed" in record.getMessage() for record in caplog.records)

"""Retries, fallbacks, the deadline and the circuit breaker, under the embedded server's faults."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import openai
import pytest
from helpers import metric_points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import LLMSettings, StreamTruncatedError, get_async_llm_client_smart, get_llm_client_smart
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]
MODELS = ("model-a", "model-b", "model-c")


def make_settings(server: MockLLMServer, **values: Any) -> LLMSettings:
    """Aliases a, b, c on the server (canonical models model-a, ...); a falls back to b, then c."""
    return LLMSettings(
        models={
            alias: {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_KEY"}
            for alias, model in zip("abc", MODELS)
        },
        prices={model: {"input": 1, "output": 2} for model in MODELS},
        model_default="a",
        **{"fallbacks": {"a": ["b", "c"]}, "retry_max_wait_s": 0.05, **values},
    )


def sent(server: MockLLMServer) -> list[str]:
    return [request.model or "" for request in server.requests]


def call_span(spans: InMemorySpanExporter) -> ReadableSpan:
    [span] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    return span


def attempt_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    attempts = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT and s.name.startswith("chat ")]
    return sorted(attempts, key=lambda s: s.attributes["otel_llm.attempt"])


def counter(reader: InMemoryMetricReader, name: str, api: str) -> dict[tuple[tuple[str, Any], ...], float]:
    """Value (or count) per attribute set of metric ``name``, the API name left out."""
    values = {}
    for attributes, point, _ in metric_points(reader, name, api):
        attributes.pop("otel_llm.api.name", None)
        values[tuple(sorted(attributes.items()))] = getattr(point, "value", None) or point.count
    return values


RETRYABLE = {
    "408": Fault.status(408),
    "409": Fault.status(409),
    "429": Fault.status(429),
    "500": Fault.status(500),
    "502": Fault.status(502),
    "503": Fault.status(503),
    "504": Fault.status(504),
    "openai.APIConnectionError": Fault.drop(),
    "openai.APITimeoutError": Fault.delay(1.0),
}


@pytest.mark.parametrize(("expected_error", "fault"), RETRYABLE.items(), ids=list(RETRYABLE))
def test_retryable_failures_are_retried_on_the_same_model(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, expected_error: str, fault: Fault
) -> None:
    server.add_faults("model-a", fault)
    settings = make_settings(server)
    client = get_llm_client_smart(api, settings=settings)
    response = client.chat.completions.create(messages=MESSAGES, timeout=0.3)

    assert response.model == "model-a"
    assert sent(server)[-2:] == ["model-a", "model-a"]
    first, second = attempt_spans(spans)
    assert (first.attributes["otel_llm.attempt"], second.attributes["otel_llm.attempt"]) == (1, 2)
    assert first.attributes["error.type"] == expected_error
    assert "error.type" not in second.attributes
    call = call_span(spans)
    assert call.attributes["otel_llm.attempts"] == 2 and call.attributes["otel_llm.fallback.used"] is False
    [wait] = [event for event in call.events if event.name == "otel_llm.retry.wait"]
    assert wait.attributes["otel_llm.model.alias"] == "a" and wait.attributes["error.type"] == expected_error


NOT_RETRYABLE = {
    "400": (Fault.status(400), openai.BadRequestError),
    "401": (Fault.status(401), openai.AuthenticationError),
    "403": (Fault.status(403), openai.PermissionDeniedError),
    "404": (Fault.status(404), openai.NotFoundError),
    "422": (Fault.status(422), openai.UnprocessableEntityError),
    "content_filter": (Fault.status(400, error_code="content_filter"), openai.BadRequestError),
}


@pytest.mark.parametrize(("fault", "error"), NOT_RETRYABLE.values(), ids=list(NOT_RETRYABLE))
def test_other_failures_are_raised_at_once_without_fallback(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, fault: Fault, error: type[Exception]
) -> None:
    server.add_faults("model-a", fault)
    with pytest.raises(error) as raised:
        get_llm_client_smart(api, settings=make_settings(server)).chat.completions.create(messages=MESSAGES)
    assert sent(server) == ["model-a"]
    assert "every attempt failed: #1 a:" in "\n".join(raised.value.__notes__)
    assert call_span(spans).attributes["otel_llm.attempts"] == 1


def test_retry_after_is_honoured(server: MockLLMServer, spans: InMemorySpanExporter, api: str) -> None:
    server.add_faults("model-a", Fault.status(429, retry_after=0.4), Fault.status(503, retry_after_ms=300))
    settings = make_settings(server, retry_attempts=3, retry_max_wait_s=1)
    start = time.monotonic()
    get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES)
    elapsed = time.monotonic() - start

    assert sent(server) == ["model-a"] * 3
    assert 0.7 <= elapsed < 1.5
    waits = [e.attributes["otel_llm.wait.seconds"] for e in call_span(spans).events if e.name == "otel_llm.retry.wait"]
    assert waits == [pytest.approx(0.4), pytest.approx(0.3)]


def test_a_longer_retry_after_skips_to_the_next_model_at_once(
    server: MockLLMServer, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader, api: str
) -> None:
    server.add_faults("model-a", Fault.status(429, retry_after=30))
    settings = make_settings(server, retry_attempts=3, retry_max_wait_s=1)
    start = time.monotonic()
    response = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES)

    assert time.monotonic() - start < 1
    assert response.model == "model-b" and sent(server) == ["model-a", "model-b"]
    call = call_span(spans)
    assert call.attributes["otel_llm.model.alias"] == "b" and call.attributes["otel_llm.fallback.used"] is True
    [fallback] = [e for e in call.events if e.name == "otel_llm.fallback"]
    assert dict(fallback.attributes) == {
        "otel_llm.api.name": api,
        "otel_llm.fallback.from": "a",
        "otel_llm.fallback.to": "b",
        "error.type": "429",
    }
    assert counter(metric_reader, "otel_llm.fallbacks", api) == {
        (("error.type", "429"), ("otel_llm.fallback.from", "a"), ("otel_llm.fallback.to", "b")): 1
    }


def test_fallback_chain_is_followed_in_order(
    server: MockLLMServer, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader, api: str
) -> None:
    server.add_faults("model-a", Fault.status(503), Fault.status(500))
    server.add_faults("model-b", Fault.drop(), Fault.status(502))
    response = get_llm_client_smart(api, settings=make_settings(server)).chat.completions.create(messages=MESSAGES)

    assert response.model == "model-c"
    assert sent(server) == ["model-a", "model-a", "model-b", "model-b", "model-c"]
    attempts = attempt_spans(spans)
    assert [s.attributes["otel_llm.attempt"] for s in attempts] == [1, 2, 3, 4, 5]
    assert [s.attributes["otel_llm.model.alias"] for s in attempts] == ["a", "a", "b", "b", "c"]
    assert [s.attributes.get("error.type") for s in attempts] == [
        "503",
        "500",
        "openai.APIConnectionError",
        "502",
        None,
    ]
    call = call_span(spans)
    assert (call.attributes["otel_llm.attempts"], call.attributes["otel_llm.model.alias"]) == (5, "c")
    steps = counter(metric_reader, "otel_llm.fallbacks", api)
    assert steps == {
        (("error.type", "500"), ("otel_llm.fallback.from", "a"), ("otel_llm.fallback.to", "b")): 1,
        (("error.type", "502"), ("otel_llm.fallback.from", "b"), ("otel_llm.fallback.to", "c")): 1,
    }
    outcomes = counter(metric_reader, "otel_llm.call.duration", api)
    assert [dict(key)["otel_llm.outcome"] for key in outcomes] == ["fallback"]


def test_when_everything_fails_the_last_original_error_is_raised_with_the_attempts(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("model-a", Fault.status(503), Fault.status(503))
    server.add_faults("model-b", Fault.status(500), Fault.status(500))
    server.add_faults("model-c", Fault.status(429), Fault.status(429))
    with pytest.raises(openai.RateLimitError) as raised:
        get_llm_client_smart(api, settings=make_settings(server)).chat.completions.create(messages=MESSAGES)
    [note] = raised.value.__notes__
    assert note == (
        f"otel-llm: API {api!r}, every attempt failed: #1 a: 503; #2 a: 503; #3 b: 500; #4 b: 500; #5 c: 429; #6 c: 429"
    )
    call = call_span(spans)
    assert call.attributes["error.type"] == "429" and call.attributes["otel_llm.attempts"] == 6


def test_the_deadline_bounds_the_whole_call(server: MockLLMServer, spans: InMemorySpanExporter, api: str) -> None:
    server.add_faults("model-a", Fault.delay(0.3), Fault.delay(0.3))
    server.add_faults("model-b", Fault.delay(2))
    settings = make_settings(server, call_timeout_s=0.5, retry_max_wait_s=0)
    start = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, timeout=0.2)
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 0.6  # each request was bounded by what was left of 0.5 s
    assert sent(server) == ["model-a", "model-a", "model-b"]


def test_a_stream_is_retried_before_its_first_chunk(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("model-a", Fault.status(503), Fault.drop())
    stream = get_llm_client_smart(api, settings=make_settings(server)).chat.completions.create(
        messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    assert sent(server) == ["model-a", "model-a", "model-b"]
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[0].model == "model-b"
    assert call_span(spans).attributes["otel_llm.fallback.used"] is True


def test_a_stream_that_failed_after_its_first_chunk_is_not_retried(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("model-a", Fault.cut_stream(after_chunks=2))
    stream = get_llm_client_smart(api, settings=make_settings(server)).chat.completions.create(
        messages=MESSAGES, stream=True
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3 and sent(server) == ["model-a"]
    assert call_span(spans).attributes["error.type"] == "openai.APIConnectionError"


def test_a_stream_ending_after_its_role_chunk_is_truncated_not_retried(server: MockLLMServer, api: str) -> None:
    server.add_faults("model-a", Fault.cut_stream(after_chunks=0, clean=True))  # the role chunk, then the end
    stream = get_llm_client_smart(api, settings=make_settings(server)).chat.completions.create(
        messages=MESSAGES, stream=True
    )
    with pytest.raises(StreamTruncatedError):
        list(stream)  # the role chunk reached the caller: too late to try again
    assert sent(server) == ["model-a"]


def test_breaker_opens_skips_probes_and_closes(
    server: MockLLMServer, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader, api: str
) -> None:
    settings = make_settings(server, retry_attempts=1, breaker_failures=2, breaker_cooldown_s=0.3)
    client = get_llm_client_smart(api, settings=settings)
    server.add_faults("model-a", Fault.status(503), Fault.status(503))
    client.chat.completions.create(messages=MESSAGES)  # a fails (1), b answers
    client.chat.completions.create(messages=MESSAGES)  # a fails (2): open
    spans.clear()
    client.chat.completions.create(messages=MESSAGES)  # a skipped
    assert sent(server) == ["model-a", "model-b", "model-a", "model-b", "model-b"]
    skipped = call_span(spans)
    assert skipped.attributes["otel_llm.attempts"] == 1 and skipped.attributes["otel_llm.fallback.used"] is True
    [step] = [e for e in skipped.events if e.name == "otel_llm.fallback"]
    assert step.attributes["error.type"] == "circuit_open"

    time.sleep(0.35)
    spans.clear()
    client.chat.completions.create(messages=MESSAGES)  # a probed (half-open) and answers: closed
    assert sent(server)[-1] == "model-a"
    events = [
        (e.attributes["otel_llm.model.alias"], e.attributes["otel_llm.breaker.state"])
        for e in call_span(spans).events
        if e.name == "otel_llm.breaker"
    ]
    assert events == [("a", "half_open"), ("a", "closed")]
    transitions = counter(metric_reader, "otel_llm.breaker.transitions", api)
    assert transitions[(("otel_llm.breaker.state", "open"), ("otel_llm.model.alias", "a"))] >= 1


def test_a_failed_probe_opens_the_breaker_again(server: MockLLMServer, api: str) -> None:
    settings = make_settings(server, retry_attempts=1, breaker_failures=1, breaker_cooldown_s=0.2)
    client = get_llm_client_smart(api, settings=settings)
    server.add_faults("model-a", Fault.status(500), Fault.status(500))
    client.chat.completions.create(messages=MESSAGES)  # open
    time.sleep(0.25)
    client.chat.completions.create(messages=MESSAGES)  # probe fails: open again
    client.chat.completions.create(messages=MESSAGES)  # skipped
    assert sent(server) == ["model-a", "model-b", "model-a", "model-b", "model-b"]


def test_an_alias_with_nothing_after_it_is_never_skipped(server: MockLLMServer, api: str) -> None:
    settings = make_settings(server, retry_attempts=1, breaker_failures=1, fallbacks={})
    client = get_llm_client_smart(api, settings=settings)
    server.add_faults("model-a", Fault.status(500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(messages=MESSAGES)  # opens a's breaker
    assert client.chat.completions.create(messages=MESSAGES).model == "model-a"  # tried anyway


@pytest.mark.anyio
async def test_async_retries_and_fallbacks(server: MockLLMServer, spans: InMemorySpanExporter, api: str) -> None:
    server.add_faults("model-a", Fault.status(429, retry_after=0.01), Fault.status(503))
    server.add_faults("model-b", Fault.drop())
    client = get_async_llm_client_smart(api, settings=make_settings(server))
    response = await client.chat.completions.create(messages=MESSAGES)
    stream = await client.chat.completions.create(messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert response.model == "model-b" and chunks[0].model == "model-a"
    assert sent(server) == ["model-a", "model-a", "model-b", "model-b", "model-a"]


def test_many_threads_at_once_do_not_cross_talk(server: MockLLMServer, api: str) -> None:
    settings = make_settings(server, retry_attempts=2)
    for _ in range(20):
        server.add_faults("model-a", Fault.status(503))
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            model = "c" if index % 3 == 0 else None
            client = get_llm_client_smart(
                f"{api}-{index % 4}",
                request_model=model,
                settings=settings.model_copy(update={"enable_llm_model_override": True}),
            )
            message = [{"role": "user", "content": f"thread {index}"}]
            response = client.chat.completions.create(messages=message)
            results[index] = f"{response.model}:{response.choices[0].message.content}"
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    for index, answer in results.items():
        model, content = answer.split(":", 1)
        assert model in (("model-c",) if index % 3 == 0 else ("model-a", "model-b"))
        assert f"thread {index}" in content  # each caller got the answer to its own prompt
    assert len(results) == 32


@pytest.mark.anyio
async def test_many_tasks_at_once_do_not_cross_talk(server: MockLLMServer, api: str) -> None:
    settings = make_settings(server)
    for _ in range(30):
        server.add_faults("model-a", Fault.status(503))

    async def one(index: int) -> tuple[int, str]:
        client = get_async_llm_client_smart(api, settings=settings)
        response = await client.chat.completions.create(messages=[{"role": "user", "content": f"task {index}"}])
        return index, response.choices[0].message.content or ""

    answers = await asyncio.gather(*(one(index) for index in range(100)))
    assert all(f"task {index}" in content for index, content in answers)
    assert len(server.requests) >= 100


def test_a_timeout_object_of_the_caller_is_passed_through(server: MockLLMServer, api: str) -> None:
    import httpx2

    server.add_faults("model-a", Fault.delay(0.5))
    client = get_llm_client_smart(api, settings=make_settings(server, retry_attempts=1))
    response = client.chat.completions.create(messages=MESSAGES, timeout=httpx2.Timeout(0.2))
    assert response.model == "model-b"  # the caller's 0.2 s read timeout cut model-a short
    assert server.requests[0].model == "model-a"

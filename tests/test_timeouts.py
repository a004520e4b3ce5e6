"""LLM_ATTEMPT_TIMEOUT_S and LLM_STREAM_IDLE_TIMEOUT_S: a hung model falls back, a stalled stream says so (SPEC §5).

Elapsed times are checked only against bounds far from the expected values: this machine is shared.
"""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import LLMSettings, StreamTruncatedError, get_async_llm_client_smart, get_llm_client_smart
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]


def make_settings(server: MockLLMServer, **values: Any) -> LLMSettings:
    """``primary`` (model-a) falls back to ``fallback`` (model-b); 2 attempts each, a 5 s deadline."""
    entry = {"provider": "openai", "base_url": server.base_url, "api_key_env": "TEST_KEY"}
    return LLMSettings(
        models={"primary": {**entry, "model": "model-a"}, "fallback": {**entry, "model": "model-b"}},
        fallbacks={"primary": ["fallback"]},
        model_default="primary",
        **{"call_timeout_s": 5, "retry_max_wait_s": 0.05, **values},
    )


def errors(spans: InMemorySpanExporter) -> list[tuple[str, str | None]]:
    """(alias, error.type) of each attempt, in order."""
    attempts = sorted(
        (s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT and "otel_llm.attempt" in s.attributes),
        key=lambda s: s.attributes["otel_llm.attempt"],
    )
    return [(s.attributes["otel_llm.model.alias"], s.attributes.get("error.type")) for s in attempts]


HUNG = {
    "response": ({}, [Fault.hang(), Fault.hang()]),
    "stream-no-headers": ({"stream": True}, [Fault.hang(), Fault.hang()]),
    "stream-no-first-chunk": ({"stream": True}, [Fault.stall_stream(0, 30), Fault.stall_stream(0, 30)]),
}


@pytest.mark.parametrize(("arguments", "faults"), HUNG.values(), ids=list(HUNG))
def test_a_hung_primary_is_answered_by_the_fallback_within_the_attempt_timeouts(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, arguments: dict[str, Any], faults: list[Fault]
) -> None:
    server.add_faults("model-a", *faults)
    client = get_llm_client_smart(api, settings=make_settings(server, attempt_timeout_s=0.5))
    start = time.monotonic()
    answer = client.chat.completions.create(messages=MESSAGES, **arguments)
    chunks = list(answer) if arguments else [answer]
    elapsed = time.monotonic() - start

    assert chunks[0].model == "model-b"
    assert errors(spans) == [("primary", "openai.APITimeoutError")] * 2 + [("fallback", None)]
    assert 1.0 <= elapsed < 4  # 2 x 0.5 s, then the fallback; without the attempt timeout: 5 s, then an error


@pytest.mark.anyio
@pytest.mark.parametrize(("arguments", "faults"), HUNG.values(), ids=list(HUNG))
async def test_async_a_hung_primary_is_answered_by_the_fallback(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, arguments: dict[str, Any], faults: list[Fault]
) -> None:
    server.add_faults("model-a", *faults)
    client = get_async_llm_client_smart(api, settings=make_settings(server, attempt_timeout_s=0.5))
    start = time.monotonic()
    answer = await client.chat.completions.create(messages=MESSAGES, **arguments)
    chunks = [chunk async for chunk in answer] if arguments else [answer]
    assert chunks[0].model == "model-b" and time.monotonic() - start < 4
    assert errors(spans) == [("primary", "openai.APITimeoutError")] * 2 + [("fallback", None)]


def test_without_an_attempt_timeout_a_hung_primary_spends_the_whole_deadline(server: MockLLMServer, api: str) -> None:
    server.add_faults("model-a", Fault.hang())
    client = get_llm_client_smart(api, settings=make_settings(server, call_timeout_s=0.5))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(messages=MESSAGES)


def test_the_attempt_timeout_bounds_a_stream_only_until_its_first_chunk(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str
) -> None:
    server.add_faults("model-a", Fault.stall_stream(3, 1.0))  # role chunk and two words, then 1 s of silence
    client = get_llm_client_smart(api, settings=make_settings(server, attempt_timeout_s=0.3))
    chunks = list(client.chat.completions.create(messages=MESSAGES, stream=True))
    assert len(chunks) == 18 and chunks[-1].choices[0].finish_reason == "stop"
    assert errors(spans) == [("primary", None)]


@pytest.mark.anyio
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_stream_silent_past_the_idle_timeout_raises_stream_truncated(
    server: MockLLMServer, spans: InMemorySpanExporter, api: str, asynchronous: bool
) -> None:
    server.add_faults("model-a", Fault.stall_stream(3, 30))
    settings = make_settings(server, stream_idle_timeout_s=0.3)
    received: list[Any] = []
    start = time.monotonic()
    with pytest.raises(StreamTruncatedError, match=r"stalled: no chunk for 0.3 s") as raised:
        if asynchronous:
            stream = await get_async_llm_client_smart(api, settings=settings).chat.completions.create(
                messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                received.append(chunk)
        else:
            stream = get_llm_client_smart(api, settings=settings).chat.completions.create(
                messages=MESSAGES, stream=True
            )
            received.extend(stream)
    assert len(received) == 3 and raised.value.stalled_s == 0.3
    assert time.monotonic() - start < 5  # not the deadline: the stall
    assert errors(spans) == [("primary", "otel_llm.StreamTruncatedError")]
    [call] = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert call.attributes["error.type"] == "otel_llm.StreamTruncatedError"


def test_pauses_shorter_than_the_idle_timeout_are_fine(server: MockLLMServer, api: str) -> None:
    server.add_faults("model-a", Fault.stall_stream(5, 0.3))
    settings = make_settings(server, stream_idle_timeout_s=1.5)
    chunks = list(get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, stream=True))
    assert len(chunks) == 18

"""The embedded server's hang and stall faults, proven through real HTTP with the raw SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from sdk_clients import AUTH
from test_mock_server import user
from test_mock_server_responses import STREAM_EVENTS

from otel_llm.testing import Fault, MockLLMServer

WITH_USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


def timed(items: Iterable[Any]) -> tuple[list[Any], list[float]]:
    """The items and when each arrived."""
    received, arrivals = [], []
    for item in items:
        received.append(item)
        arrivals.append(time.perf_counter())
    return received, arrivals


def settles(check: Callable[[], bool], within: float = 2.0) -> bool:
    """Whether ``check`` comes true within ``within`` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def threads_end(before: set[threading.Thread]) -> bool:
    """Whether the threads started since ``before`` (the server's handlers) end soon."""
    return settles(lambda: not set(threading.enumerate()) - before)


# -- hang ------------------------------------------------------------------


def test_hang_is_a_client_timeout_and_frees_its_handler(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    before = set(threading.enumerate())
    llm_server.add_faults("m", Fault.hang())
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=user("hi"), timeout=0.3)
    assert time.perf_counter() - started >= 0.3 * 0.8
    assert threads_end(before)  # the handler saw the client leave
    assert client.chat.completions.create(model="m", messages=user("hi")).choices  # one request only


def test_hang_applies_to_responses_and_embeddings(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("m", Fault.hang(), Fault.hang(), Fault.hang())
    quick = client.with_options(timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        quick.responses.create(model="m", input="hi")
    with pytest.raises(openai.APITimeoutError):
        list(quick.responses.create(model="m", input="hi", stream=True))
    with pytest.raises(openai.APITimeoutError):
        quick.embeddings.create(model="m", input="hi")
    assert [r.endpoint for r in llm_server.requests] == ["responses", "responses", "embeddings"]


def test_hang_sends_not_even_a_status_line(llm_server: MockLLMServer) -> None:
    body = {"model": "m", "messages": user("hi")}
    llm_server.add_faults("m", Fault.hang())
    with httpx2.Client(base_url=llm_server.url, timeout=0.2) as http, pytest.raises(httpx2.ReadTimeout):
        http.post("/v1/chat/completions", headers=AUTH, json=body)


def test_delay_ends_when_the_client_gives_up(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    before = set(threading.enumerate())
    llm_server.add_faults("m", Fault.delay(30))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=user("hi"), timeout=0.2)
    assert threads_end(before)


def test_stop_ends_a_hanging_request() -> None:
    server = MockLLMServer().start()
    before = set(threading.enumerate())
    server.add_faults("m", Fault.hang())
    errors: list[Exception] = []

    def call() -> None:
        with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=10) as sdk:
            try:
                sdk.chat.completions.create(model="m", messages=user("hi"))
            except openai.APIError as error:
                errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    assert settles(lambda: bool(server.requests))
    started = time.perf_counter()
    server.stop()
    assert time.perf_counter() - started < 2
    caller.join(5)
    [error] = errors
    assert isinstance(error, openai.APIConnectionError) and not isinstance(error, openai.APITimeoutError)
    assert threads_end(before)


# -- stall_stream ----------------------------------------------------------


def test_stall_stream_sends_the_first_events_then_pauses(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("m", Fault.stall_stream(3, 0.4))
    chunks, arrivals = timed(client.chat.completions.create(model="m", messages=user("hi"), stream=True))
    assert [c.choices[0].delta.content for c in chunks[:4]] == ["", "mock", " reply", " hi"]
    assert arrivals[3] - arrivals[2] >= 0.4 * 0.8  # role and two words arrived before the pause
    assert len(chunks) == 18 and chunks[-1].choices[0].finish_reason == "stop"  # then all the rest


def test_stall_stream_after_the_headers(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("m", Fault.stall_stream(0, 0.4))
    stream = client.chat.completions.create(model="m", messages=user("hi"), stream=True, **WITH_USAGE)
    headers_at = time.perf_counter()  # create() returns with the headers
    chunks, arrivals = timed(stream)
    assert arrivals[0] - headers_at >= 0.4 * 0.8
    assert len(chunks) == 19 and chunks[-1].usage is not None


def test_stall_stream_counts_every_responses_event(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("m", Fault.stall_stream(1, 0.4), Fault.stall_stream(100, 0.4))
    events, arrivals = timed(client.responses.create(model="m", input="hi", stream=True))
    assert [e.type for e in events] == STREAM_EVENTS
    assert arrivals[1] - arrivals[0] >= 0.4 * 0.8  # after response.created

    stream = client.responses.create(model="m", input="hi", stream=True)
    events, arrivals = timed(stream)
    ended = time.perf_counter()
    assert [e.type for e in events] == STREAM_EVENTS
    assert ended - arrivals[-1] >= 0.4 * 0.8  # more events than sent: the pause comes before the body's end


def test_stall_stream_trips_a_read_timeout_mid_stream(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    before = set(threading.enumerate())
    llm_server.add_faults("m", Fault.stall_stream(2, 30))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APITimeoutError):
        received.extend(
            client.with_options(timeout=0.3).chat.completions.create(model="m", messages=user("hi"), stream=True)
        )
    assert [c.choices[0].delta.content for c in received] == ["", "mock"]
    assert threads_end(before)  # the silence ended when the client left


def test_stall_stream_delays_a_request_that_does_not_stream(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("m", Fault.stall_stream(2, 0.3), Fault.stall_stream(0, 0.3))
    started = time.perf_counter()
    assert client.chat.completions.create(model="m", messages=user("hi")).choices[0].finish_reason == "stop"
    assert client.embeddings.create(model="m", input="hi").data
    assert time.perf_counter() - started >= 2 * 0.3 * 0.8


def test_stop_ends_a_stalled_stream() -> None:
    server = MockLLMServer().start()
    before = set(threading.enumerate())
    server.add_faults("m", Fault.stall_stream(1, 30))
    with openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0, timeout=10) as sdk:
        stream = iter(sdk.chat.completions.create(model="m", messages=user("hi"), stream=True))
        assert next(stream).choices[0].delta.role == "assistant"
        started = time.perf_counter()
        server.stop()
        assert time.perf_counter() - started < 2
        with pytest.raises(openai.APIConnectionError):
            next(stream)
    assert threads_end(before)


def test_new_fault_arguments_are_validated() -> None:
    for after_events in (-1, 1.5, True, "1"):
        with pytest.raises(ValueError, match="after_events must be an integer >= 0"):
            Fault.stall_stream(after_events, 1)  # type: ignore[arg-type]
    for seconds in (-0.1, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="seconds must be a finite number >= 0"):
            Fault.stall_stream(0, seconds)  # type: ignore[arg-type]
    assert Fault.stall_stream(2, 1) == Fault(kind="stall_stream", after_events=2, seconds=1.0)
    assert Fault.hang() == Fault(kind="hang")

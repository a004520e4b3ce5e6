"""The embedded server's provider quirks and its hang and stall faults, proven through real HTTP with the raw SDK."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx2
import openai
import pytest
from openai.types.chat import ChatCompletionChunk
from sdk_clients import AUTH
from test_mock_server import sse_payloads, user
from test_mock_server_responses import STREAM_EVENTS

from otel_llm.testing import Fault, MockLLMServer, Quirk

AZURE_GA = "2024-10-21"
SAFE = {"filtered": False, "severity": "safe"}
PROMPT_FILTER_RESULTS = [
    {"prompt_index": 0, "content_filter_results": {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": SAFE}}
]
OUTPUT_FILTERED = {"hate": SAFE, "self_harm": SAFE, "sexual": SAFE, "violence": {"filtered": True, "severity": "high"}}
CHUNKS = {  # chunks the raw SDK yields for the default 16-word reply: (plain, with include_usage)
    None: (18, 19),  # role, 16 words, finish (, usage)
    Quirk.PROMPT_FILTER_CHUNK: (19, 20),
    Quirk.USAGE_IN_EMPTY_CHOICE: (18, 19),
    Quirk.NO_FINISH_REASON: (18, 19),
    Quirk.NO_MODEL: (18, 19),
    Quirk.CONTENT_FILTERED: (2, 3),  # role, filtered finish (, usage)
}
WITH_USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


@pytest.fixture
def azure_ga(llm_server: MockLLMServer) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=llm_server.azure_endpoint, api_version=AZURE_GA, api_key="test", max_retries=0
    ) as sdk:
        yield sdk


def stream_chat(sdk: openai.OpenAI, model: str = "m", **kwargs: Any) -> list[ChatCompletionChunk]:
    return list(sdk.chat.completions.create(model=model, messages=user("hi"), stream=True, **kwargs))


def wire_chunks(http: httpx2.Client, path: str = "/v1/chat/completions", **body: Any) -> list[dict[str, Any]]:
    """The chunks of a chat stream as sent, checking it ends with ``[DONE]``."""
    raw = http.post(path, headers=AUTH, json={"model": "m", "messages": user("hi"), "stream": True, **body})
    *payloads, done = sse_payloads(raw.content)
    assert done == "[DONE]"
    return [json.loads(payload) for payload in payloads]


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


# -- quirks ----------------------------------------------------------------


@pytest.mark.parametrize("include_usage", [False, True], ids=["plain", "include_usage"])
@pytest.mark.parametrize("quirk", list(CHUNKS), ids=str)
def test_chunk_counts_of_the_default_reply(
    client: openai.OpenAI, llm_server: MockLLMServer, quirk: Quirk | None, include_usage: bool
) -> None:
    if quirk is not None:
        llm_server.set_quirks("m", quirk)
    chunks = stream_chat(client, **(WITH_USAGE if include_usage else {}))
    assert len(chunks) == CHUNKS[quirk][include_usage]
    assert (chunks[-1].usage is not None) is include_usage


def test_prompt_filter_chunk_comes_first(
    azure_ga: openai.AzureOpenAI, llm_server: MockLLMServer, http: httpx2.Client
) -> None:
    llm_server.set_quirks("dep", Quirk.PROMPT_FILTER_CHUNK)
    chunks = list(azure_ga.chat.completions.create(model="dep", messages=user("hi"), stream=True, **WITH_USAGE))
    first, role, *words, finish, usage = chunks
    assert (first.id, first.model, first.object, first.created, first.choices) == ("", "", "", 0, [])
    assert first.usage is None and first.model_extra == {"prompt_filter_results": PROMPT_FILTER_RESULTS}
    assert role.choices[0].delta.role == "assistant" and role.id.startswith("chatcmpl-") and role.model == "dep"
    assert len(words) == 16 and finish.choices[0].finish_reason == "stop"
    assert {c.id for c in chunks[1:]} == {role.id} and usage.usage is not None

    wire = wire_chunks(http, f"/openai/deployments/dep/chat/completions?api-version={AZURE_GA}")
    assert wire[0] == {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": PROMPT_FILTER_RESULTS,
    }
    assert len(wire) == 19

    plain = azure_ga.chat.completions.create(model="dep", messages=user("hi"))
    assert plain.model_extra == {"prompt_filter_results": PROMPT_FILTER_RESULTS}
    assert plain.choices[0].message.content and plain.choices[0].finish_reason == "stop"


def test_usage_in_empty_choice(client: openai.OpenAI, llm_server: MockLLMServer, http: httpx2.Client) -> None:
    llm_server.set_quirks("m", Quirk.USAGE_IN_EMPTY_CHOICE)
    *_, finish, last = stream_chat(client, **WITH_USAGE)
    assert finish.choices[0].finish_reason == "stop" and finish.usage is None
    [choice] = last.choices  # the SDK sees a choice: code reading choices[0] of the usage chunk must cope
    assert (choice.index, choice.finish_reason, choice.delta.content, choice.delta.role) == (0, None, None, None)
    assert last.usage is not None and (last.usage.prompt_tokens, last.usage.completion_tokens) == (7, 16)

    usage_chunk = wire_chunks(http, **WITH_USAGE)[-1]
    assert set(usage_chunk) >= {"id", "object", "created", "model", "choices", "usage"}
    assert usage_chunk["object"] == "chat.completion.chunk" and usage_chunk["choices"] == [{"delta": {}, "index": 0}]
    assert all(c.usage is None and c.choices for c in stream_chat(client))  # no usage asked: no usage chunk


def test_no_finish_reason(client: openai.OpenAI, llm_server: MockLLMServer, http: httpx2.Client) -> None:
    llm_server.set_quirks("m", Quirk.NO_FINISH_REASON)
    *chunks, finish, usage = stream_chat(client, **WITH_USAGE)
    assert all(c.choices[0].finish_reason is None for c in [*chunks, finish])
    assert finish.choices[0].delta.content is None and finish.choices[0].delta.role is None  # the empty delta
    assert usage.choices == [] and usage.usage is not None

    wire = wire_chunks(http, max_tokens=3)  # even a cut reply says nothing
    assert [c["choices"][0]["finish_reason"] for c in wire] == [None] * 5
    assert wire[-1]["choices"][0]["delta"] == {}

    plain = client.chat.completions.create(model="m", messages=user("hi"))
    assert plain.choices[0].finish_reason is None and plain.choices[0].message.content


def test_no_model_leaves_the_key_out_everywhere(
    client: openai.OpenAI, azure_ga: openai.AzureOpenAI, llm_server: MockLLMServer, http: httpx2.Client
) -> None:
    llm_server.set_quirks("m", Quirk.NO_MODEL)
    llm_server.set_quirks("dep", Quirk.NO_MODEL, Quirk.PROMPT_FILTER_CHUNK)
    assert client.chat.completions.create(model="m", messages=user("hi")).model is None
    assert azure_ga.chat.completions.create(model="dep", messages=user("hi")).model is None
    assert all(c.model is None for c in stream_chat(client, **WITH_USAGE))
    assert all(c.model is None for c in azure_ga.chat.completions.create(model="dep", messages=user("hi"), stream=True))
    assert client.embeddings.create(model="m", input="x").model is None

    response = client.responses.create(model="m", input="hi")
    assert response.model is None and response.output_text
    assert client.responses.retrieve(response.id).model is None  # stored as answered
    events = list(client.responses.create(model="m", input="hi", stream=True))
    assert [e.type for e in events] == STREAM_EVENTS
    assert all(e.response.model is None for e in events if hasattr(e, "response"))

    def sent(path: str, **body: Any) -> dict[str, Any]:
        answer: dict[str, Any] = http.post(path, headers=AUTH, json={"model": "m", **body}).json()
        return answer

    assert all("model" not in c for c in wire_chunks(http, **WITH_USAGE))
    assert "model" not in sent("/v1/chat/completions", messages=user("hi"))
    assert "model" not in sent("/v1/embeddings", input="x")
    assert "model" not in sent("/v1/responses", input="x")
    assert client.chat.completions.create(model="other", messages=user("hi")).model == "other"


def test_content_filtered_reply_has_no_message(
    azure_ga: openai.AzureOpenAI, llm_server: MockLLMServer, http: httpx2.Client
) -> None:
    llm_server.set_quirks("dep", Quirk.CONTENT_FILTERED)
    response = azure_ga.chat.completions.create(model="dep", messages=user("hi"), n=2, reasoning_effort="low")
    assert [c.index for c in response.choices] == [0, 1]
    for choice in response.choices:
        assert choice.finish_reason == "content_filter"
        assert choice.message is None  # the SDK does not validate: a missing message is None
        assert choice.model_extra == {"content_filter_results": OUTPUT_FILTERED}
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (7, 0, 7)
    assert response.usage.completion_tokens_details is not None
    assert response.usage.completion_tokens_details.reasoning_tokens == 0

    path = f"/openai/deployments/dep/chat/completions?api-version={AZURE_GA}"
    raw = http.post(path, headers=AUTH, json={"messages": user("hi")}).json()
    assert raw["choices"] == [
        {"index": 0, "logprobs": None, "finish_reason": "content_filter", "content_filter_results": OUTPUT_FILTERED}
    ]
    with pytest.raises(openai.ContentFilterFinishReasonError):
        azure_ga.chat.completions.parse(model="dep", messages=user("hi"))

    role, filtered, usage = list(
        azure_ga.chat.completions.create(model="dep", messages=user("hi"), stream=True, **WITH_USAGE)
    )
    assert role.choices[0].delta.role == "assistant"
    assert filtered.choices[0].finish_reason == "content_filter" and filtered.choices[0].delta.content is None
    assert filtered.choices[0].model_extra == {"content_filter_results": OUTPUT_FILTERED}
    assert usage.usage is not None and usage.usage.completion_tokens == 0
    wire = wire_chunks(http, path, n=2)
    assert [(c["choices"][0]["index"], c["choices"][0]["delta"]) for c in wire[2:]] == [(0, {}), (1, {})]


def test_quirks_combine(client: openai.OpenAI, llm_server: MockLLMServer, http: httpx2.Client) -> None:
    llm_server.set_quirks("m", *Quirk)
    first, role, filtered, usage = stream_chat(client, **WITH_USAGE)
    assert first.model_extra == {"prompt_filter_results": PROMPT_FILTER_RESULTS}
    assert role.choices[0].delta.role == "assistant"
    assert filtered.choices[0].finish_reason is None  # no finish reason wins over the filter's
    assert filtered.choices[0].model_extra == {"content_filter_results": OUTPUT_FILTERED}
    assert len(usage.choices) == 1 and usage.usage is not None
    assert all("model" not in c for c in wire_chunks(http, **WITH_USAGE))


def test_cut_stream_counts_the_prompt_filter_chunk_as_lead(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.set_quirks("m", Quirk.PROMPT_FILTER_CHUNK)
    llm_server.add_faults("m", Fault.cut_stream(2))
    received: list[ChatCompletionChunk] = []
    with pytest.raises(openai.APIConnectionError):
        received.extend(client.chat.completions.create(model="m", messages=user("hi"), stream=True))
    assert [c.choices[0].delta.content if c.choices else "filter" for c in received] == ["filter", "", "mock", " reply"]


def test_set_quirks_replaces_clears_and_reset_forgets(
    client: openai.OpenAI, azure_ga: openai.AzureOpenAI, llm_server: MockLLMServer
) -> None:
    llm_server.set_quirks("m", Quirk.NO_MODEL)
    llm_server.set_quirks("dep", Quirk.CONTENT_FILTERED)
    assert client.chat.completions.create(model="m", messages=user("hi")).model is None
    assert client.chat.completions.create(model="m", messages=user("hi")).model is None  # persistent
    assert azure_ga.chat.completions.create(model="dep", messages=user("hi")).choices[0].message is None
    assert azure_ga.chat.completions.create(model="m", messages=user("hi")).model is None  # the deployment is the model

    llm_server.set_quirks("m", Quirk.NO_FINISH_REASON)  # replaces
    replaced = client.chat.completions.create(model="m", messages=user("hi"))
    assert replaced.model == "m" and replaced.choices[0].finish_reason is None
    llm_server.set_quirks("m")  # clears
    assert client.chat.completions.create(model="m", messages=user("hi")).choices[0].finish_reason == "stop"
    assert azure_ga.chat.completions.create(model="dep", messages=user("hi")).choices[0].message is None  # untouched
    llm_server.reset()
    assert azure_ga.chat.completions.create(model="dep", messages=user("hi")).choices[0].message is not None


def test_set_quirks_validates(llm_server: MockLLMServer) -> None:
    with pytest.raises(TypeError, match="expected Quirk, got str 'no_model'"):
        llm_server.set_quirks("m", "no_model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model first"):
        llm_server.set_quirks(Quirk.NO_MODEL)
    with pytest.raises(TypeError, match="model first"):
        llm_server.set_quirks(None)  # type: ignore[arg-type]
    assert Quirk("no_model") is Quirk.NO_MODEL
    assert [str(q) for q in Quirk] == [
        "prompt_filter_chunk",
        "usage_in_empty_choice",
        "no_finish_reason",
        "no_model",
        "content_filtered",
    ]


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

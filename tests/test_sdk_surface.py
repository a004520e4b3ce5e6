"""The SDK surface through otel-llm gives the raw ``openai`` SDK's results, through real HTTP.

Each test makes the same request twice against the embedded server: once with
the raw SDK client (``openai.OpenAI`` / ``openai.AzureOpenAI``, the model or
deployment given explicitly) and once with the otel-llm client of an API whose
selection points at the same model (``model`` left out). Both results are
compared after blanking what the server makes unique per request (ids and
timestamps), and so are the requests the server received. The one documented
difference: otel-llm asks chat streams for their usage chunk
(``stream_options.include_usage``) and hides that chunk from the caller.

Every test runs on an OpenAI-compatible alias and an Azure alias, sync and
async (the ``pair`` fixture); the sync clients are driven from the async test
body, which awaits only what the async clients return.
"""

from __future__ import annotations

import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import pydantic
import pytest
from helpers import KEY, shapes_settings
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import (
    AsyncAzureLLMClient,
    AsyncLLMClient,
    AzureLLMClient,
    LLMClient,
    LLMSettings,
    Selection,
    close_clients,
    get_async_llm_client_smart,
    get_llm_client_smart,
)
from otel_llm.testing import Fault, MockLLMServer, RecordedRequest

pytestmark = pytest.mark.anyio

API_VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "Extract the keywords of this text."}]
TEXT = "Extract the keywords of this text."

# shape -> (API name, alias it selects, how it was selected, model or deployment the raw SDK is given)
SELECTED = {
    "openai": ("keywords", "mini", "default", "gpt-4.1-mini"),
    "azure": ("gap_analysis", "azure", "env", "gpt-4o-2"),
}
OUR_CLASSES = {
    ("openai", False): LLMClient,
    ("azure", False): AzureLLMClient,
    ("openai", True): AsyncLLMClient,
    ("azure", True): AsyncAzureLLMClient,
}
# Values the server makes unique per request; nothing else is blanked (sequence numbers are compared).
UNIQUE_PER_REQUEST = frozenset({"id", "item_id", "created", "created_at", "completed_at"})
RATE_LIMIT_HEADERS = frozenset(
    {
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    }
)


class Keywords(pydantic.BaseModel):
    """A structured output for ``parse``."""

    keywords: list[str]
    language: str


# -- helpers ----------------------------------------------------------------------

Sent = tuple[str, str, dict[str, str], dict[str, Any] | None]
"""What a request is compared by: method, path, query, JSON body."""


def sent(requests: list[RecordedRequest]) -> list[Sent]:
    return [(request.method, request.path, request.query, request.body) for request in requests]


def asking_usage(requests: list[Sent]) -> list[Sent]:
    """``requests`` as otel-llm sends them: chat streams ask for their usage chunk."""
    return [
        (method, path, query, {**body, "stream_options": {"include_usage": True}} if body else body)
        for method, path, query, body in requests
    ]


def normalised(value: Any) -> Any:
    """``value`` (a model, or lists / tuples / dicts of them) dumped, with what is unique per request blanked.

    Each unique value becomes its key and the order it first appeared in (``<id 1>``, ``<id 2>``, ...),
    so which of them are equal (the chunks of one completion, a final response and its events) still counts.
    """
    labels: dict[tuple[str, Any], str] = {}

    def label(key: str, item: Any) -> str:
        count = sum(1 for seen, _ in labels if seen == key)
        return labels.setdefault((key, item), f"<{key} {count + 1}>")

    def walk(value: Any) -> Any:
        if isinstance(value, pydantic.BaseModel):
            # warnings=False: the SDK's generic Parsed* models warn about their parsed fields, raw or not
            value = value.model_dump(warnings=False)
        if isinstance(value, dict):
            return {
                key: label(key, item) if key in UNIQUE_PER_REQUEST and item is not None else walk(item)
                for key, item in value.items()
            }
        if isinstance(value, (list, tuple)):
            return [walk(item) for item in value]
        return value

    return walk(value)


async def resolve(value: Any) -> Any:
    """What a sync client returned, or what an async client's awaitable gives."""
    return await value if inspect.isawaitable(value) else value


async def collect(stream: Any) -> list[Any]:
    """Every event of a sync or async stream."""
    if hasattr(type(stream), "__aiter__"):
        return [event async for event in stream]
    return list(stream)


async def events_if_stream(parsed: Any) -> Any:
    """What a raw response's ``parse()`` gave: a stream's events, or the object itself."""
    return await collect(parsed) if isinstance(parsed, openai.Stream | openai.AsyncStream) else parsed


@contextlib.asynccontextmanager
async def entered(manager: Any) -> AsyncIterator[Any]:
    """``async with`` for an async context manager, ``with`` for a sync one."""
    if hasattr(type(manager), "__aenter__"):
        async with manager as value:
            yield value
    else:
        with manager as value:
            yield value


async def chat(client: Any, **arguments: Any) -> Any:
    return await resolve(client.chat.completions.create(messages=MESSAGES, **arguments))


@dataclass
class Compared:
    """The same call made through the raw SDK and through otel-llm."""

    raw: Any
    ours: Any
    raw_sent: list[Sent]
    ours_sent: list[Sent]

    def assert_same(self, requests: int = 1) -> None:
        assert len(self.raw_sent) == requests
        assert self.ours_sent == self.raw_sent
        assert normalised(self.ours) == normalised(self.raw)


Call = Callable[[Any, dict[str, str]], Awaitable[Any]]
"""Makes one call with a client; the second argument is ``{"model": ...}`` for the raw SDK, ``{}`` for ours."""


@dataclass
class Pair:
    """A raw SDK client and an otel-llm client, on the same server and model."""

    shape: str
    is_async: bool
    server: MockLLMServer
    settings: LLMSettings
    raw: Any
    ours: Any

    @property
    def api(self) -> str:
        return SELECTED[self.shape][0]

    @property
    def sent_model(self) -> str:
        """What reaches the server as the model: the model name, or the Azure deployment."""
        return SELECTED[self.shape][3]

    def client(self, settings: LLMSettings) -> Any:
        """Another otel-llm client of this pair's API and kind, with other settings."""
        factory = get_async_llm_client_smart if self.is_async else get_llm_client_smart
        return factory(self.api, settings=settings)

    async def both(self, call: Call) -> Compared:
        start = len(self.server.requests)
        raw = await call(self.raw, {"model": self.sent_model})
        middle = len(self.server.requests)
        ours = await call(self.ours, {})
        requests = self.server.requests
        return Compared(raw, ours, sent(requests[start:middle]), sent(requests[middle:]))


def raw_client(server: MockLLMServer, shape: str, is_async: bool) -> Any:
    if shape == "openai":
        sdk: Any = openai.AsyncOpenAI if is_async else openai.OpenAI
        return sdk(base_url=server.base_url, api_key=KEY, max_retries=0)
    azure: Any = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
    return azure(azure_endpoint=server.azure_endpoint, api_version=API_VERSION, api_key=KEY, max_retries=0)


@pytest.fixture
def settings(server: MockLLMServer) -> LLMSettings:
    settings: LLMSettings = shapes_settings(server, API_VERSION)
    return settings


@pytest.fixture(
    params=[("openai", False), ("openai", True), ("azure", False), ("azure", True)],
    ids=["openai-sync", "openai-async", "azure-sync", "azure-async"],
)
async def pair(
    request: pytest.FixtureRequest, server: MockLLMServer, settings: LLMSettings, anyio_backend: str
) -> AsyncIterator[Pair]:
    shape, is_async = request.param
    raw = raw_client(server, shape, is_async)
    factory = get_async_llm_client_smart if is_async else get_llm_client_smart
    yield Pair(shape, is_async, server, settings, raw, factory(SELECTED[shape][0], settings=settings))
    await resolve(raw.close())


# -- 1. chat completions ------------------------------------------------------------


async def test_chat_create(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        return await chat(client, temperature=0.2, **model)

    run = await pair.both(call)
    assert type(run.ours) is type(run.raw) is ChatCompletion
    run.assert_same()


@pytest.mark.parametrize("stream_options", [None, {"include_usage": True}], ids=["usage-hidden", "usage-asked"])
async def test_chat_stream(pair: Pair, stream_options: dict[str, bool] | None) -> None:
    asked = {"stream_options": stream_options} if stream_options else {}

    async def call(client: Any, model: dict[str, str]) -> Any:
        stream = await chat(client, stream=True, **asked, **model)
        return isinstance(stream, openai.Stream | openai.AsyncStream), await collect(stream)

    run = await pair.both(call)
    assert normalised(run.ours) == normalised(run.raw)  # a usage chunk only when the caller asked for it
    assert run.raw[0] is True
    assert run.raw[1][-1].usage is None if stream_options is None else run.raw[1][-1].usage is not None
    assert run.ours_sent == (asking_usage(run.raw_sent) if stream_options is None else run.raw_sent)


# -- 2. the Responses API ---------------------------------------------------------------


async def test_responses_create(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        return await resolve(client.responses.create(input=TEXT, instructions="Be brief.", **model))

    run = await pair.both(call)
    assert run.ours.output_text == run.raw.output_text
    run.assert_same()


async def test_responses_create_stream(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        return await collect(await resolve(client.responses.create(input=TEXT, stream=True, **model)))

    run = await pair.both(call)
    assert [event.type for event in run.ours] == [event.type for event in run.raw]
    assert run.raw[-1].type == "response.completed"
    assert normalised(run.ours[-1].response) == normalised(run.raw[-1].response)
    run.assert_same()


async def test_responses_stream_manager(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        async with entered(client.responses.stream(input=TEXT, **model)) as stream:
            events = await collect(stream)
            return events, await resolve(stream.get_final_response())

    run = await pair.both(call)
    (raw_events, raw_final), (events, final) = run.raw, run.ours
    assert [event.type for event in events] == [event.type for event in raw_events]
    assert final.output_text == raw_final.output_text != ""
    run.assert_same()


# -- 3. structured outputs ---------------------------------------------------------------


async def test_chat_parse(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        return await resolve(client.chat.completions.parse(messages=MESSAGES, response_format=Keywords, **model))

    run = await pair.both(call)
    parsed = run.ours.choices[0].message.parsed
    assert isinstance(parsed, Keywords)
    assert parsed == run.raw.choices[0].message.parsed
    run.assert_same()


async def test_responses_parse(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        return await resolve(client.responses.parse(input=TEXT, text_format=Keywords, **model))

    run = await pair.both(call)
    assert isinstance(run.ours.output_parsed, Keywords)
    assert run.ours.output_parsed == run.raw.output_parsed
    run.assert_same()


# -- 4. the chat stream helper -----------------------------------------------------------


async def test_chat_stream_manager(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        async with entered(client.chat.completions.stream(messages=MESSAGES, **model)) as stream:
            events = await collect(stream)
            return events, await resolve(stream.get_final_completion())

    run = await pair.both(call)
    (raw_events, raw_final), (events, final) = run.raw, run.ours
    assert [event.type for event in events] == [event.type for event in raw_events]
    assert final.choices[0].message.content == raw_final.choices[0].message.content != ""
    assert normalised(run.ours) == normalised(run.raw)
    assert run.ours_sent == asking_usage(run.raw_sent)


# -- 5, 6. raw and streamed responses ------------------------------------------------------


def assert_raw_response(response: Any, raw_response: Any) -> None:
    """``response`` is the SDK's raw-response type, with the headers of the server's answer to this very request."""
    assert isinstance(response, type(raw_response))
    headers, raw_headers = response.headers, raw_response.headers
    assert RATE_LIMIT_HEADERS <= set(raw_headers)
    assert {name for name in headers if name.startswith("x-ratelimit-")} == RATE_LIMIT_HEADERS
    assert headers["x-request-id"].startswith("req_") and headers["x-request-id"] != raw_headers["x-request-id"]
    # counted per model: ours is the answer after the raw SDK's
    assert int(headers["x-ratelimit-remaining-requests"]) == int(raw_headers["x-ratelimit-remaining-requests"]) - 1


RAW_CHAT = {
    "resource": lambda client: client.chat.completions.with_raw_response,
    "client": lambda client: client.with_raw_response.chat.completions,
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("where", list(RAW_CHAT))
async def test_chat_with_raw_response(pair: Pair, where: str, stream: bool) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        response = await resolve(RAW_CHAT[where](client).create(messages=MESSAGES, stream=stream, **model))
        return response, await events_if_stream(await resolve(response.parse()))

    run = await pair.both(call)
    (raw_response, raw_parsed), (response, parsed) = run.raw, run.ours
    assert_raw_response(response, raw_response)
    assert normalised(parsed) == normalised(raw_parsed)
    assert run.ours_sent == run.raw_sent  # a raw response's stream is asked for nothing more


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_chat_with_streaming_response(pair: Pair, stream: bool) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        create = client.chat.completions.with_streaming_response.create
        async with entered(create(messages=MESSAGES, stream=stream, **model)) as response:
            return response, await events_if_stream(await resolve(response.parse()))

    run = await pair.both(call)
    (raw_response, raw_parsed), (response, parsed) = run.raw, run.ours
    assert_raw_response(response, raw_response)
    assert normalised(parsed) == normalised(raw_parsed)
    assert run.ours_sent == run.raw_sent


async def test_chat_with_streaming_response_lines(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        create = client.chat.completions.with_streaming_response.create
        async with entered(create(messages=MESSAGES, stream=True, **model)) as response:
            lines = await collect(response.iter_lines())
        # read as the SDK reads them: a missing "usage" and "usage": null are the same chunk
        return [ChatCompletionChunk.model_validate_json(line[6:]) for line in lines if line.startswith("data: {")]

    run = await pair.both(call)
    assert len(run.raw) > 3
    assert normalised(run.ours) == normalised(run.raw)


RAW_CALLS = {
    "responses": lambda client, model: client.responses.with_raw_response.create(input=TEXT, **model),
    "responses-stream": lambda client, model: client.with_raw_response.responses.create(
        input=TEXT, stream=True, **model
    ),
    "embeddings": lambda client, model: client.embeddings.with_raw_response.create(input=["one", "two"], **model),
}


@pytest.mark.parametrize("method", list(RAW_CALLS))
async def test_with_raw_response(pair: Pair, method: str) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        response = await resolve(RAW_CALLS[method](client, model))
        return response, await events_if_stream(await resolve(response.parse()))

    run = await pair.both(call)
    (raw_response, raw_parsed), (response, parsed) = run.raw, run.ours
    assert_raw_response(response, raw_response)
    assert type(parsed) is type(raw_parsed)
    assert normalised(parsed) == normalised(raw_parsed)
    assert len(run.raw_sent) == 1 and run.ours_sent == run.raw_sent


# -- 7. what is passed through -------------------------------------------------------------


PASSED_THROUGH = {
    "models.list": lambda client: client.models.list(),
    "models.retrieve": lambda client: client.models.retrieve("gpt-4.1-mini"),
    "files.list": lambda client: client.files.list(),
    "batches.list": lambda client: client.batches.list(),
}


def assert_alias_shape(pair: Pair, requests: list[Sent], path: str) -> None:
    """The requests went to the selected alias's server, in its URL shape, unchanged."""
    [(method, sent_path, query, body)] = requests
    assert method == "GET" and body is None
    if pair.shape == "openai":
        assert (sent_path, query) == (f"/v1/{path}", {})
    else:
        assert (sent_path, query) == (f"/openai/{path}", {"api-version": API_VERSION})


@pytest.mark.parametrize("method", list(PASSED_THROUGH))
async def test_passed_through(pair: Pair, method: str) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        return await resolve(PASSED_THROUGH[method](client))

    run = await pair.both(call)
    assert type(run.ours) is type(run.raw)
    assert run.ours.model_dump() == run.raw.model_dump()  # nothing is unique: compared as they are
    assert run.ours_sent == run.raw_sent
    path = {"models.retrieve": "models/gpt-4.1-mini"}.get(method, method.split(".")[0])
    assert_alias_shape(pair, run.ours_sent, path)


async def test_responses_retrieve(pair: Pair) -> None:
    stored = await resolve(pair.raw.responses.create(input=TEXT, model=pair.sent_model))

    async def call(client: Any, model: dict[str, str]) -> Any:
        return await resolve(client.responses.retrieve(stored.id))

    run = await pair.both(call)
    assert run.ours.model_dump() == run.raw.model_dump()
    assert run.ours.id == stored.id and run.ours.output_text == stored.output_text
    assert run.ours_sent == run.raw_sent
    assert_alias_shape(pair, run.ours_sent, f"responses/{stored.id}")


# -- 8. with_options ----------------------------------------------------------------------------


async def test_with_options_keeps_the_selection(pair: Pair) -> None:
    copy = pair.ours.with_options(timeout=9)
    assert type(copy) is type(pair.ours)
    assert copy.selection == pair.ours.selection
    assert copy.timeout == 9

    async def call(client: Any, model: dict[str, str]) -> Any:
        return await chat(client.with_options(timeout=9), **model)

    run = await pair.both(call)
    run.assert_same()
    assert pair.server.requests[-1].model == pair.sent_model


async def test_with_options_default_headers(pair: Pair) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        tagged = client.with_options(default_headers={"X-Test": "1"})
        return await chat(tagged, **model), await resolve(tagged.models.list())

    run = await pair.both(call)
    run.assert_same(requests=2)
    assert [request.headers.get("x-test") for request in pair.server.requests] == ["1"] * 4


@pytest.mark.parametrize(
    ("option", "value"), [("api_key", "sk-other-0123456789"), ("base_url", "http://example.invalid/v1")]
)
def test_with_options_refuses_what_the_alias_configures(pair: Pair, option: str, value: str) -> None:
    with pytest.raises(TypeError, match=rf"\b{option}\b"):
        pair.ours.with_options(**{option: value})


@pytest.mark.parametrize(
    "timeout",
    [
        0.3,
        httpx2.Timeout(0.3),
    ],
    ids=["seconds", "httpx-timeout"],
)
async def test_with_options_timeout_bounds_a_slow_call(pair: Pair, timeout: float | httpx2.Timeout) -> None:
    ours = pair.client(pair.settings.model_copy(update={"retry_attempts": 1})).with_options(timeout=timeout)
    pair.server.add_faults(pair.sent_model, Fault.delay(2), Fault.delay(2))

    with pytest.raises(openai.APITimeoutError):
        await chat(pair.raw.with_options(timeout=timeout), model=pair.sent_model)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await chat(ours)
    assert time.monotonic() - started < 1.9
    assert [request.model for request in pair.server.requests] == [pair.sent_model] * 2


async def test_with_options_max_retries_is_ignored(pair: Pair) -> None:
    ours = pair.client(pair.settings.model_copy(update={"retry_attempts": 1})).with_options(max_retries=3)
    pair.server.add_faults(pair.sent_model, *[Fault.status(503)] * 4)

    with pytest.raises(openai.InternalServerError):
        await chat(ours)
    assert len(pair.server.requests) == 1  # the SDK does not retry behind otel-llm's back


# -- errors keep the SDK's types ----------------------------------------------------------------


ERRORS = {
    "generating": lambda client, model: client.responses.create(input=TEXT, max_output_tokens=1, **model),
    "passed-through": lambda client, model: client.models.retrieve("no-such-model"),
}


@pytest.mark.parametrize("method", list(ERRORS))
async def test_errors_are_the_sdks(pair: Pair, method: str) -> None:
    async def call(client: Any, model: dict[str, str]) -> Any:
        with pytest.raises(openai.APIStatusError) as caught:
            await resolve(ERRORS[method](client, model))
        return caught.value

    run = await pair.both(call)
    assert type(run.ours) is type(run.raw) and type(run.raw) in (openai.BadRequestError, openai.NotFoundError)
    assert (run.ours.status_code, run.ours.body, str(run.ours)) == (run.raw.status_code, run.raw.body, str(run.raw))
    assert len(run.raw_sent) == 1 and run.ours_sent == run.raw_sent


# -- 9. client lifetime -------------------------------------------------------------------------


async def test_leaving_with_client_keeps_the_shared_pool(pair: Pair) -> None:
    await chat(pair.ours)
    opened = pair.server.connections_opened
    async with entered(pair.ours) as client:
        assert client is pair.ours
        await chat(client)
    response = await chat(pair.ours)

    assert response.choices[0].message.content
    connections = [request.connection for request in pair.server.requests]
    assert len(connections) == 3 and len(set(connections)) == 1
    assert pair.server.connections_opened == opened


async def test_close_clients_closes_the_shared_pool(pair: Pair) -> None:
    await chat(pair.ours)
    await chat(pair.ours)
    opened = pair.server.connections_opened
    close_clients()
    response = await chat(pair.ours)

    assert response.choices[0].message.content
    first, second, third = (request.connection for request in pair.server.requests)
    assert first == second != third
    assert pair.server.connections_opened == opened + 1


# -- 10. the client is the SDK's class, bound to a selection ----------------------------------


def test_the_client_is_the_sdk_class(pair: Pair) -> None:
    ours = pair.ours
    assert type(ours) is OUR_CLASSES[pair.shape, pair.is_async]
    assert isinstance(ours, type(pair.raw))  # openai.OpenAI, AzureOpenAI, AsyncOpenAI or AsyncAzureOpenAI
    assert isinstance(ours, openai.AsyncOpenAI if pair.is_async else openai.OpenAI)
    assert not isinstance(ours, openai.OpenAI if pair.is_async else openai.AsyncOpenAI)
    assert isinstance(ours, openai.AzureOpenAI | openai.AsyncAzureOpenAI) == (pair.shape == "azure")
    api, alias, source, _ = SELECTED[pair.shape]
    assert ours.selection == Selection(api, alias, source)  # type: ignore[arg-type]


def call_span(spans: InMemorySpanExporter, api: str) -> Any:
    [span] = [s for s in spans.get_finished_spans() if s.kind == SpanKind.INTERNAL and s.name == f"chat {api}"]
    return span


@pytest.mark.parametrize("override", [True, False], ids=["override-on", "override-off"])
async def test_an_explicit_model_counts_as_request_model(
    pair: Pair, spans: InMemorySpanExporter, override: bool
) -> None:
    client = pair.client(pair.settings.model_copy(update={"enable_llm_model_override": override}))
    other = "big" if pair.shape == "azure" else "azure"  # the other provider shape
    await chat(client, model=other)

    [request] = pair.server.requests
    attributes = call_span(spans, pair.api).attributes
    if override:
        assert request.model == {"big": "gpt-4.1", "azure": "gpt-4o-2"}[other]
        assert request.shape != pair.shape
        assert (attributes["otel_llm.selection.source"], attributes["otel_llm.model.alias"]) == ("request", other)
    else:
        assert (request.model, request.shape) == (pair.sent_model, pair.shape)
        _, alias, source, _ = SELECTED[pair.shape]
        assert (attributes["otel_llm.selection.source"], attributes["otel_llm.model.alias"]) == (source, alias)
    assert client.selection == pair.ours.selection  # the client's own selection is not changed by a call

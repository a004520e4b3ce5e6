"""The embedded OpenAI-compatible server, proven through real HTTP with the real SDK."""

from __future__ import annotations

import base64
import enum
import json
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx2
import openai
import pytest
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageParam,
)
from pydantic import BaseModel
from sdk_clients import API_VERSION, AUTH

from otel_llm.testing import Fault, MockLLMServer, RecordedRequest
from otel_llm.testing._responses import rate_limit_headers


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def chat(sdk: openai.OpenAI, text: str = "hello", model: str = "gpt-4.1-mini", **kwargs: Any) -> ChatCompletion:
    response: ChatCompletion = sdk.chat.completions.create(model=model, messages=user(text), **kwargs)
    return response


def sse_payloads(body: bytes) -> list[str]:
    """The ``data:`` payloads of an event stream, in order."""
    events = body.decode().split("\n\n")
    assert events[-1] == ""
    assert all(event.startswith("data: ") for event in events[:-1])
    return [event.removeprefix("data: ") for event in events[:-1]]


# -- chat ------------------------------------------------------------------


def test_chat_completion_is_typed_with_documented_usage(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Say hello to the world"}]},
    ]
    response = client.chat.completions.create(model="gpt-4.1-mini", messages=messages)  # type: ignore[arg-type]

    assert isinstance(response, ChatCompletion)
    assert response.id.startswith("chatcmpl-")
    assert response.object == "chat.completion"
    assert response.model == "gpt-4.1-mini"
    assert response.system_fingerprint
    [choice] = response.choices
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.content is not None
    assert (
        choice.message.content.split()
        == (["mock", "reply"] + ["Say", "hello", "to", "the", "world"] * 3)[: llm_server.reply_words]
    )
    usage = response.usage
    assert usage is not None
    assert usage.prompt_tokens == (3 + 3) + (3 + 5) + 3  # 3 per message + words, + 3 priming
    assert usage.completion_tokens == llm_server.reply_words == 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 0
    # deterministic: same prompt, same answer
    assert client.chat.completions.create(model="gpt-4.1-mini", messages=messages).choices[0].message.content == (  # type: ignore[arg-type]
        choice.message.content
    )


def test_cached_tokens_on_a_repeated_long_prompt(client: openai.OpenAI) -> None:
    long_prompt = " ".join(f"w{i}" for i in range(1100))  # 1100 + 3 + 3 = 1106 tokens

    def cached(text: str) -> tuple[int, int]:
        usage = chat(client, text).usage
        assert usage is not None and usage.prompt_tokens_details is not None
        return usage.prompt_tokens, usage.prompt_tokens_details.cached_tokens or 0

    assert cached(long_prompt) == (1106, 0)
    assert cached(long_prompt) == (1106, 1024)  # 128-token steps
    assert cached(long_prompt + " more") == (1107, 0)  # different messages
    assert cached("short") == (7, 0)
    assert cached("short") == (7, 0)  # under 1024 tokens: never cached


def test_max_tokens_cuts_the_reply_and_n_multiplies_choices(client: openai.OpenAI) -> None:
    cut = chat(client, max_tokens=3)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "mock reply hello"
    assert cut.usage is not None and cut.usage.completion_tokens == 3

    cut = chat(client, max_completion_tokens=4)
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens == 4

    not_cut = chat(client, max_tokens=100)
    assert not_cut.choices[0].finish_reason == "stop"

    two = chat(client, n=2)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.usage is not None and two.usage.completion_tokens == 32


def test_invalid_requests_get_openai_400(client: openai.OpenAI, http: httpx2.Client) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=[])
    assert err.value.param == "messages"

    response = http.post("/v1/chat/completions", content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"

    response = http.post("/v1/chat/completions", json={"messages": user("hi")}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


# -- streaming -------------------------------------------------------------


def test_stream_has_one_chunk_per_word_and_no_usage_by_default() -> None:
    with (
        MockLLMServer(reply_words=20) as server,
        openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0) as sdk,
    ):
        chunks = list(sdk.chat.completions.create(model="gpt-4.1-mini", messages=user("count"), stream=True))
        full = chat(sdk, "count").choices[0].message.content

    assert all(isinstance(chunk, ChatCompletionChunk) for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [chunk.choices[0].delta.content for chunk in chunks[1:-1]]
    assert len(content) == 20
    assert content[0] == "mock" and all(piece is not None and piece.startswith(" ") for piece in content[1:])
    assert "".join(piece or "" for piece in content) == full
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].choices[0].delta.content is None
    assert all(chunk.usage is None for chunk in chunks)


def test_stream_with_include_usage_ends_with_a_usage_only_chunk(client: openai.OpenAI, http: httpx2.Client) -> None:
    stream = client.chat.completions.create(
        model="gpt-4.1-mini", messages=user("a b c"), stream=True, stream_options={"include_usage": True}, max_tokens=5
    )
    chunks = list(stream)
    assert chunks[-2].choices[0].finish_reason == "length"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (3 + 3 + 3, 5, 14)
    assert len(chunks) == 1 + 5 + 1 + 1

    # on the wire, every earlier chunk carries "usage": null, as OpenAI sends it
    raw = http.post(
        "/v1/chat/completions",
        headers=AUTH,
        json={"model": "m", "messages": user("hi"), "stream": True, "stream_options": {"include_usage": True}},
    )
    payloads = sse_payloads(raw.content)
    assert payloads[-1] == "[DONE]"
    objects = [json.loads(p) for p in payloads[:-1]]
    assert all("usage" in o and o["usage"] is None for o in objects[:-1])
    assert objects[-1]["choices"] == [] and objects[-1]["usage"]["completion_tokens"] == 16


def test_stream_is_chunked_and_keeps_the_connection_alive(llm_server: MockLLMServer, http: httpx2.Client) -> None:
    body = {"model": "m", "messages": user("hi"), "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as response:
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
        assert response.headers["content-type"].startswith("text/event-stream")
        data = response.read()
    assert data.endswith(b"data: [DONE]\n\n")
    assert len(sse_payloads(data)) == 1 + 16 + 1 + 1

    assert http.post("/v1/chat/completions", json={**body, "stream": False}, headers=AUTH).status_code == 200
    first, second = llm_server.requests
    assert first.connection == second.connection
    assert llm_server.connections_opened == 1


def test_sync_sdk_stream_closes_its_connection(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    """SDK behaviour callers should know: the sync Stream stops reading at ``[DONE]`` and
    closes the response before the chunked body's end, so the pooled connection is discarded
    (the async Stream drains it and reuses it)."""
    list(client.chat.completions.create(model="m", messages=user("hi"), stream=True))
    chat(client, model="m")
    chat(client, model="m")
    first, second, third = llm_server.requests
    assert first.connection != second.connection
    assert second.connection == third.connection
    assert llm_server.connections_opened == 2


@pytest.mark.anyio
async def test_async_sdk_stream_reuses_its_connection(llm_server: MockLLMServer) -> None:
    async with openai.AsyncOpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=user("hi"), stream=True)
        assert len([chunk async for chunk in stream]) == 18
        await sdk.chat.completions.create(model="m", messages=user("hi"))
    assert len({request.connection for request in llm_server.requests}) == 1


# -- structured outputs and reasoning (chat) -------------------------------


class Status(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


class Owner(BaseModel):
    login: str
    karma: float


class Ticket(BaseModel):
    title: str
    number: int
    status: Status
    owner: Owner
    watchers: list[Owner]
    labels: list[str]
    urgent: bool
    assignee: str | None = None


def test_chat_parse_returns_the_pydantic_model(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    completion = client.chat.completions.parse(
        model="gpt-4.1-mini", messages=user("File a ticket"), response_format=Ticket
    )
    message = completion.choices[0].message
    assert message.parsed == Ticket(
        title="mock",
        number=0,
        status=Status.OPEN,
        owner=Owner(login="mock", karma=0.0),
        watchers=[Owner(login="mock", karma=0.0)],
        labels=["mock"],
        urgent=True,
        assignee="mock",
    )
    request = llm_server.requests[-1].body
    assert request is not None and request["response_format"]["type"] == "json_schema"
    assert message.content is not None
    assert completion.usage is not None and completion.usage.completion_tokens == len(message.content.split())

    stream = client.chat.completions.create(
        model="gpt-4.1-mini", messages=user("File a ticket"), stream=True, response_format=request["response_format"]
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream]
    assert "".join(pieces) == message.content
    assert len([piece for piece in pieces if piece]) == len(message.content.split())  # one delta per word


def test_chat_structured_reply_cut_by_max_tokens_fails_to_parse(client: openai.OpenAI) -> None:
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model="m", messages=user("ticket"), response_format=Ticket, max_tokens=3)


def test_chat_json_object_mode(client: openai.OpenAI) -> None:
    content = chat(client, "reply in json", response_format={"type": "json_object"}).choices[0].message.content
    assert content is not None
    assert json.loads(content) == {"reply": " ".join(["mock", "reply", *(["reply", "in", "json"] * 5)[:14]])}
    with pytest.raises(openai.BadRequestError) as no_json:
        chat(client, "reply", response_format={"type": "json_object"})
    assert no_json.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as invalid:
        chat(client, response_format={"type": "xml"})
    assert invalid.value.param == "response_format"


def test_chat_reasoning_effort_adds_reasoning_tokens(client: openai.OpenAI) -> None:
    def usage(**kwargs: Any) -> tuple[int, int, str | None]:
        response = chat(client, **kwargs)
        assert response.usage is not None and response.usage.completion_tokens_details is not None
        details = response.usage.completion_tokens_details
        return response.usage.completion_tokens, details.reasoning_tokens or 0, response.choices[0].finish_reason

    assert usage(reasoning_effort="low") == (16 + 8, 8, "stop")
    assert usage(reasoning_effort="medium") == (16 + 16, 16, "stop")
    assert usage(reasoning_effort="high") == (16 + 32, 32, "stop")
    assert usage(reasoning_effort="minimal") == (16, 0, "stop")
    assert usage(reasoning_effort="medium", n=2) == (2 * (16 + 16), 32, "stop")
    # the limit covers reasoning first: 10 - 8 leaves two words
    assert usage(reasoning_effort="low", max_completion_tokens=10) == (10, 8, "length")
    assert chat(client, reasoning_effort="low", max_completion_tokens=10).choices[0].message.content == "mock reply"
    with pytest.raises(openai.BadRequestError) as invalid:
        chat(client, reasoning_effort="maximal")
    assert invalid.value.param == "reasoning_effort"


# -- embeddings ------------------------------------------------------------


def test_embeddings_base64_by_default_and_float_on_request(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    default = client.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
    assert isinstance(default, CreateEmbeddingResponse)
    assert llm_server.requests[-1].body is not None
    assert llm_server.requests[-1].body["encoding_format"] == "base64"  # the SDK's default, decoded by it
    assert [len(item.embedding) for item in default.data] == [8, 8]
    assert [item.index for item in default.data] == [0, 1]
    assert default.model == "text-embedding-3-small"
    assert (default.usage.prompt_tokens, default.usage.total_tokens) == (3, 3)

    floats = client.embeddings.create(model="text-embedding-3-small", input="one two", encoding_format="float")
    assert floats.data[0].embedding == default.data[0].embedding  # same text, same vector, both encodings
    assert default.data[0].embedding != default.data[1].embedding
    assert sum(v * v for v in floats.data[0].embedding) == pytest.approx(1.0, abs=1e-5)

    shorter = client.embeddings.create(model="text-embedding-3-small", input=[[1, 2, 3]], dimensions=5)
    assert len(shorter.data[0].embedding) == 5
    assert shorter.usage.prompt_tokens == 3  # a token array counts one token per number


def test_embeddings_base64_is_little_endian_float32(http: httpx2.Client) -> None:
    response = http.post(
        "/v1/embeddings", headers=AUTH, json={"model": "e", "input": "x", "encoding_format": "base64", "dimensions": 4}
    )
    encoded = response.json()["data"][0]["embedding"]
    assert isinstance(encoded, str)
    vector = struct.unpack("<4f", base64.b64decode(encoded))
    floats = http.post("/v1/embeddings", headers=AUTH, json={"model": "e", "input": "x", "dimensions": 4}).json()
    assert list(vector) == floats["data"][0]["embedding"]


# -- Azure shape, auth, routing --------------------------------------------


def test_azure_shape_is_routed_and_recorded(azure: openai.AzureOpenAI, llm_server: MockLLMServer) -> None:
    response = azure.chat.completions.create(model="gpt-4o-2", messages=user("hi"))
    assert response.model == "gpt-4o-2"
    embedded = azure.embeddings.create(model="embed-dep", input="hi")
    assert len(embedded.data[0].embedding) == 8

    chat_request, embed_request = llm_server.requests
    assert isinstance(chat_request, RecordedRequest)
    assert chat_request.method == "POST"
    assert chat_request.path == "/openai/deployments/gpt-4o-2/chat/completions"
    assert chat_request.query == {"api-version": API_VERSION}
    assert chat_request.headers["api-key"] == "test-key"
    assert "authorization" not in chat_request.headers
    assert (chat_request.shape, chat_request.endpoint, chat_request.model) == ("azure", "chat.completions", "gpt-4o-2")
    assert (embed_request.shape, embed_request.endpoint, embed_request.model) == ("azure", "embeddings", "embed-dep")
    assert embed_request.path == "/openai/deployments/embed-dep/embeddings"


def test_openai_shape_is_recorded(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    chat(client, "hi", temperature=0.5)
    [request] = llm_server.requests
    assert (request.path, request.query, request.shape, request.endpoint) == (
        "/v1/chat/completions",
        {},
        "openai",
        "chat.completions",
    )
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.body == {"model": "gpt-4.1-mini", "messages": user("hi"), "temperature": 0.5}
    assert request.model == "gpt-4.1-mini"
    with pytest.raises(AttributeError):
        request.model = "other"  # type: ignore[misc]


def test_azure_without_api_version_is_404(http: httpx2.Client) -> None:
    response = http.post(
        "/openai/deployments/d/chat/completions", json={"messages": user("hi")}, headers={"api-key": "k"}
    )
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}


def test_missing_credentials_is_401(http: httpx2.Client, llm_server: MockLLMServer) -> None:
    for path in ("/v1/chat/completions", f"/openai/deployments/d/chat/completions?api-version={API_VERSION}"):
        response = http.post(path, json={"model": "m", "messages": user("hi")})
        assert response.status_code == 401
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "invalid_api_key"
    assert len(llm_server.requests) == 2  # rejected requests are recorded too


def test_unknown_path_and_method(http: httpx2.Client, llm_server: MockLLMServer) -> None:
    response = http.post("/chat/completions", json={}, headers=AUTH)
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert "/v1/responses" in response.json()["error"]["message"]
    assert http.get("/v1/chat/completions", headers=AUTH).status_code == 405
    assert llm_server.requests == []  # only known routes are recorded
    assert llm_server.connections_opened == 1  # errors keep the connection alive


# -- routes that do not generate -------------------------------------------


def test_models_list_and_retrieve(client: openai.OpenAI, azure: openai.AzureOpenAI, llm_server: MockLLMServer) -> None:
    assert [model.id for model in client.models.list()] == ["gpt-4.1-mini", "gpt-4.1", "text-embedding-3-small"]
    chat(client, model="my-model")
    azure.chat.completions.create(model="my-deployment", messages=user("hi"))
    chat(client, model="gpt-4.1")  # already listed
    listed = list(client.models.list())
    assert [model.id for model in listed] == [
        "gpt-4.1-mini",
        "gpt-4.1",
        "text-embedding-3-small",
        "my-model",
        "my-deployment",
    ]
    assert all(isinstance(model, Model) and model.object == "model" and model.owned_by for model in listed)
    assert client.models.retrieve("my-model") == listed[3]
    assert azure.models.retrieve("gpt-4.1").id == "gpt-4.1"
    assert [model.id for model in azure.models.list()] == [model.id for model in listed]
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("never-used")
    assert missing.value.code == "model_not_found"

    requests = [r for r in llm_server.requests if r.method == "GET"]
    assert [(r.path, r.endpoint, r.shape, r.model) for r in requests[:2]] == [
        ("/v1/models", "models", "openai", None),
        ("/v1/models", "models", "openai", None),
    ]
    assert requests[3].path == "/openai/models/gpt-4.1" and requests[3].query == {"api-version": API_VERSION}


def test_files_and_batches_are_empty_pages(
    client: openai.OpenAI, azure: openai.AzureOpenAI, http: httpx2.Client, llm_server: MockLLMServer
) -> None:
    for sdk in (client, azure):
        files = sdk.files.list()
        assert list(files) == [] and not files.has_next_page()
        batches = sdk.batches.list()
        assert list(batches) == [] and not batches.has_next_page()
    assert http.get("/v1/files", headers=AUTH).json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    assert [(r.endpoint, r.shape) for r in llm_server.requests] == [
        ("files", "openai"),
        ("batches", "openai"),
        ("files", "azure"),
        ("batches", "azure"),
        ("files", "openai"),
    ]
    assert http.post("/v1/files", headers=AUTH, json={}).status_code == 405  # uploads are not served
    assert http.get("/openai/files", headers={"api-key": "k"}).status_code == 404  # no api-version


# -- rate-limit headers ----------------------------------------------------


def test_rate_limit_headers_count_down_per_model(client: openai.OpenAI) -> None:
    def limits(raw: Any) -> dict[str, str]:
        return {name: value for name, value in raw.headers.items() if name.startswith("x-ratelimit-")}

    first = client.chat.completions.with_raw_response.create(model="gpt-4.1-mini", messages=user("hi"))
    assert first.parse().choices[0].message.content
    assert limits(first) == {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-limit-tokens": "10000000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-remaining-tokens": str(10_000_000 - 23),  # 7 prompt + 16 completion tokens
        "x-ratelimit-reset-requests": "6ms",  # 10000 a minute: one request refills in 6 ms
        "x-ratelimit-reset-tokens": "0s",
    }
    assert first.headers["x-request-id"].startswith("req_")

    second = client.responses.with_raw_response.create(model="gpt-4.1-mini", input=" ".join(["w"] * 1100))
    assert second.parse().status == "completed"
    assert limits(second)["x-ratelimit-remaining-requests"] == "9998"
    assert limits(second)["x-ratelimit-remaining-tokens"] == str(10_000_000 - 23 - (1106 + 16))
    assert limits(second)["x-ratelimit-reset-requests"] == "12ms"
    assert limits(second)["x-ratelimit-reset-tokens"] == "7ms"  # 1145 tokens at 10M a minute

    other = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="one two")
    assert limits(other)["x-ratelimit-remaining-requests"] == "9999"  # per model
    assert limits(other)["x-ratelimit-remaining-tokens"] == str(10_000_000 - 2)

    stream = client.chat.completions.with_raw_response.create(model="gpt-4.1-mini", messages=user("hi"), stream=True)
    assert limits(stream)["x-ratelimit-remaining-requests"] == "9997"
    listing = client.models.with_raw_response.list()
    assert limits(listing)["x-ratelimit-remaining-requests"] == "10000"  # listings count nothing


def test_rate_limit_reset_durations_are_go_style() -> None:
    assert rate_limit_headers(0, 0)["x-ratelimit-reset-requests"] == "0s"
    assert rate_limit_headers(250, 0)["x-ratelimit-reset-requests"] == "1.5s"
    assert rate_limit_headers(10_000, 10_000_000)["x-ratelimit-reset-tokens"] == "1m0s"
    assert rate_limit_headers(20_000, 0)["x-ratelimit-remaining-requests"] == "0"


# -- faults ----------------------------------------------------------------


def test_status_faults_map_to_sdk_exceptions(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults(
        "gpt-4.1-mini",
        Fault.status(429, retry_after=1.5, retry_after_ms=1500),
        Fault.status(503),
        Fault.status(500, message="boom"),
        Fault.status(400, error_code="content_filter"),
    )
    with pytest.raises(openai.RateLimitError) as rate_limited:
        chat(client)
    assert rate_limited.value.response.headers["retry-after"] == "1.5"
    assert rate_limited.value.response.headers["retry-after-ms"] == "1500"
    assert rate_limited.value.code == "rate_limit_exceeded"

    with pytest.raises(openai.InternalServerError) as unavailable:
        chat(client)
    assert unavailable.value.status_code == 503
    assert unavailable.value.type == "server_error"
    assert "retry-after" not in unavailable.value.response.headers

    with pytest.raises(openai.InternalServerError, match="boom"):
        chat(client)

    with pytest.raises(openai.BadRequestError) as filtered:
        chat(client)
    assert filtered.value.code == "content_filter"

    assert chat(client).choices[0].finish_reason == "stop"  # queue drained
    assert len({r.connection for r in llm_server.requests}) == 1  # error answers keep the connection


def test_drop_closes_without_response(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.drop())
    with pytest.raises(openai.APIConnectionError) as err:
        chat(client)
    assert not isinstance(err.value, openai.APITimeoutError)
    assert chat(client).choices  # next request is served (on a new connection)
    assert llm_server.connections_opened == 2


def test_delay_longer_than_timeout_is_a_timeout(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.delay(0.3), Fault.delay(0.1))
    with pytest.raises(openai.APITimeoutError):
        chat(client.with_options(timeout=0.05))
    started = time.perf_counter()
    assert chat(client).choices  # shorter than the timeout: answered late
    assert time.perf_counter() - started >= 0.1


def test_client_going_away_is_silent_and_harmless(
    client: openai.OpenAI, llm_server: MockLLMServer, capfd: pytest.CaptureFixture[str]
) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.delay(0.1), Fault.cut_stream(after_chunks=0))
    with pytest.raises(openai.APITimeoutError):
        chat(client.with_options(timeout=0.02))
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=user("hi"), stream=True)
    with pytest.raises(openai.APIConnectionError):
        list(stream)
    time.sleep(0.2)  # meanwhile the delayed handler sees its client gone and answers nothing
    assert chat(client).choices
    assert capfd.readouterr().err == ""


def test_malformed_body_raises_json_decode_error(
    client: openai.OpenAI, http: httpx2.Client, llm_server: MockLLMServer
) -> None:
    """SDK behaviour callers should know: an undecodable 200 body is not an ``openai``
    exception but the raw ``json.JSONDecodeError`` (a ``ValueError``), plain or streamed."""
    llm_server.add_faults("gpt-4.1-mini", Fault.malformed(), Fault.malformed(), Fault.malformed())
    with pytest.raises(json.JSONDecodeError):
        chat(client)
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=user("hi"), stream=True)
    with pytest.raises(json.JSONDecodeError):
        next(iter(stream))
    stream.close()

    raw = http.post("/v1/chat/completions", headers=AUTH, json={"model": "gpt-4.1-mini", "messages": user("hi")})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        raw.json()


def test_cut_stream_raises_connection_error_mid_iteration(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.cut_stream(after_chunks=2), Fault.cut_stream(after_chunks=2))
    received: list[ChatCompletionChunk] = []
    stream = client.chat.completions.create(model="gpt-4.1-mini", messages=user("hi"), stream=True)
    with pytest.raises(openai.APIConnectionError) as err:
        received.extend(stream)  # keeps what arrived before the error
    assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)  # incomplete chunked read
    assert [c.choices[0].delta.content for c in received] == ["", "mock", " reply"]  # role + 2 content chunks
    assert all(c.choices[0].finish_reason is None for c in received)

    with pytest.raises(openai.APIConnectionError):  # nothing to cut: dropped
        chat(client)


def test_faults_are_fifo_per_model(client: openai.OpenAI, azure: openai.AzureOpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("a", Fault.status(429), Fault.status(500))
    llm_server.add_faults("azure-dep", Fault.status(503))
    assert chat(client, model="b").choices  # other model: untouched
    with pytest.raises(openai.RateLimitError):
        chat(client, model="a")
    llm_server.add_faults("a", Fault.status(400))  # appended while serving
    with pytest.raises(openai.InternalServerError):
        azure.chat.completions.create(model="azure-dep", messages=user("hi"))
    with pytest.raises(openai.InternalServerError):
        chat(client, model="a")
    with pytest.raises(openai.BadRequestError):
        chat(client, model="a")
    assert chat(client, model="a").choices
    assert azure.chat.completions.create(model="azure-dep", messages=user("hi")).choices


def test_reset_clears_requests_faults_and_connections(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.status(500))
    with pytest.raises(openai.InternalServerError):
        chat(client)
    llm_server.add_faults("gpt-4.1-mini", Fault.status(500))
    assert llm_server.requests and llm_server.connections_opened == 1
    llm_server.reset()
    assert llm_server.requests == [] and llm_server.connections_opened == 0
    assert chat(client).choices  # the queued fault is gone
    assert len(llm_server.requests) == 1


def test_fault_arguments_are_validated(llm_server: MockLLMServer) -> None:
    with pytest.raises(ValueError):
        Fault.status(200)
    with pytest.raises(ValueError):
        Fault.status(429, retry_after=-1)
    with pytest.raises(ValueError):
        Fault.delay(float("nan"))
    with pytest.raises(ValueError):
        Fault.cut_stream(after_chunks=-1)
    with pytest.raises(TypeError):
        llm_server.add_faults("m", "429")  # type: ignore[arg-type]
    assert Fault.status(429, retry_after=2) == Fault.status(429, retry_after=2)  # frozen value objects


# -- concurrency and lifecycle ---------------------------------------------


def test_sixteen_concurrent_threads_are_all_answered(client: openai.OpenAI, llm_server: MockLLMServer) -> None:
    llm_server.add_faults("gpt-4.1-mini", Fault.delay(0.05), Fault.delay(0.05))

    def call(i: int) -> str | None:
        return chat(client, f"token{i}", max_tokens=3).choices[0].message.content

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(call, range(64)))
    assert replies == [f"mock reply token{i}" for i in range(64)]
    assert len(llm_server.requests) == 64
    assert 1 < llm_server.connections_opened <= 64


def test_lifecycle_and_addresses() -> None:
    server = MockLLMServer(reply_words=2, embedding_dimensions=3)
    assert repr(server) == "MockLLMServer(not started)"
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.start() is server
    try:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.base_url == server.url + "/v1"
        assert server.azure_endpoint == server.url
        assert server.url in repr(server)
        with openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as sdk:
            assert chat(sdk).choices[0].message.content == "mock reply"
            server.stop()  # also closes the pooled keep-alive connection
            with pytest.raises(openai.APIConnectionError):
                chat(sdk)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.stop()
    server.stop()  # idempotent
    assert "stopped" in repr(server)


def test_constructor_validates(llm_server: MockLLMServer) -> None:
    with pytest.raises(ValueError):
        MockLLMServer(reply_words=0)
    with pytest.raises(ValueError):
        MockLLMServer(embedding_dimensions=0)


def test_llm_server_fixture_is_started(llm_server: MockLLMServer) -> None:
    assert (
        httpx2.post(f"{llm_server.base_url}/embeddings", headers=AUTH, json={"model": "e", "input": "x"}).status_code
        == 200
    )


def test_fault_rate_faults_about_that_share_of_requests(llm_server: MockLLMServer, client: openai.OpenAI) -> None:
    llm_server.set_fault_rate("flaky", 0.3, [Fault.status(503), Fault.status(429)], seed=7)
    failed = 0
    for _ in range(200):
        try:
            client.chat.completions.create(model="flaky", messages=[{"role": "user", "content": "hi"}])
        except (openai.InternalServerError, openai.RateLimitError):
            failed += 1
    assert 40 <= failed <= 80  # 30 % of 200, give or take
    client.chat.completions.create(
        model="steady", messages=[{"role": "user", "content": "hi"}]
    )  # other models untouched
    with pytest.raises(ValueError, match="rate must be between 0 and 1"):
        llm_server.set_fault_rate("flaky", 1.5, [Fault.drop()])

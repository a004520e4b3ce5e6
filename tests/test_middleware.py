"""otel_llm.middleware: each served request selects by its own headers, through real servers
(FastAPI on uvicorn, Flask on waitress) calling the embedded LLM server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from middleware_apps import THREADS, Gate, fastapi_app, flask_app, get_all, uvicorn_serving, waitress_serving

from otel_llm import LLMSettings, get_llm_client_smart, select_model
from otel_llm._selection import request_headers
from otel_llm.middleware import ASGIMiddleware, WSGIMiddleware
from otel_llm.testing import MockLLMServer, RecordedRequest

MODELS = {"m0": "gpt-4.1-mini", "m1": "gpt-4.1", "m2": "gpt-4o", "m3": "gpt-4o-mini", "m4": "gpt-4.1-nano"}
"""Five aliases on the embedded server, each answering as a model of its own."""
SPLIT_MODELS = {"a": "gpt-4.1-mini", "b": "gpt-4.1"}
PATHS = {
    "asgi": ("/async", "/sync", "/tasks", "/startup"),  # in a handler, its threadpool, two tasks, a start-up client
    "wsgi": ("/sync", "/startup", "/stream"),  # in a handler, a start-up client, a body streamed after the view
}
CONCURRENT = 50
Serve = Callable[..., str]


def configure(monkeypatch: pytest.MonkeyPatch, server: MockLLMServer, models: Mapping[str, str], **env: str) -> None:
    """The process-wide configuration: ``models`` (alias -> model) on ``server``, and ``env``."""
    endpoints = {
        alias: {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_LLM_KEY"}
        for alias, model in models.items()
    }
    monkeypatch.setenv("LLM_MODELS", json.dumps(endpoints))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def headers_on(monkeypatch: pytest.MonkeyPatch, server: MockLLMServer) -> None:
    configure(monkeypatch, server, MODELS, LLM_MODEL_DEFAULT="m0", ENABLE_LLM_MODEL_HEADER="true")


@pytest.fixture
def serve() -> Iterator[Callable[[str, str, Mapping[str, Gate]], str]]:
    """Serve the app of a kind (``asgi``: FastAPI on uvicorn, ``wsgi``: Flask on waitress) for an API.

    The app is made when called, after the test's configuration, as a service
    makes it at start-up; the servers stop when the test ends, however it ends.
    """
    with contextlib.ExitStack() as servers:

        def start(kind: str, api: str, gates: Mapping[str, Gate]) -> str:
            if kind == "asgi":
                return servers.enter_context(uvicorn_serving(fastapi_app(api, gates)))
            return servers.enter_context(waitress_serving(flask_app(api, gates)))

        yield start


def held_at_once(kind: str, requests: int) -> int:
    """How many requests a gate holds until all are in flight: uvicorn takes them all, waitress one per thread."""
    return requests if kind == "asgi" else THREADS


def llm_calls(requests: list[RecordedRequest]) -> dict[int, list[str]]:
    """The models the LLM calls went to, per id of the incoming request that made them."""
    calls: dict[int, list[str]] = {}
    for request in requests:
        assert request.body is not None and request.model is not None
        found = re.fullmatch(r"request (\d+) task \d", request.body["messages"][-1]["content"])
        assert found, request.body
        calls.setdefault(int(found[1]), []).append(request.model)
    return calls


def cross_talk(calls: dict[int, list[str]], expected: Mapping[int, str]) -> list[tuple[int, str, str]]:
    """The LLM calls that went elsewhere than the model their incoming request selected."""
    return [
        (request_id, expected[request_id], model)
        for request_id, models in calls.items()
        for model in models
        if model != expected[request_id]
    ]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
@pytest.mark.usefixtures("headers_on")
def test_concurrent_requests_each_select_by_their_own_header(
    kind: str, server: MockLLMServer, serve: Serve, api: str
) -> None:
    gate = Gate(held_at_once(kind, CONCURRENT))
    url = serve(kind, api, {"overlap": gate})
    paths = PATHS[kind]
    aliases = {n: f"m{n % len(MODELS)}" for n in range(CONCURRENT)}

    responses = get_all(
        url, [(paths[n % len(paths)], {"id": n, "gate": "overlap"}, {"X-LLM-Model": aliases[n]}) for n in aliases]
    )

    assert gate.opened.is_set()
    expected = {n: MODELS[alias] for n, alias in aliases.items()}
    for n, response in enumerate(responses):
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body["models"]) == {expected[n]}
        if paths[n % len(paths)] == "/stream":
            assert body["in_view"] is False  # its LLM call ran as the server iterated the body, the view gone
    calls = llm_calls(server.requests)
    assert calls.keys() == expected.keys()
    assert sum(map(len, calls.values())) == CONCURRENT + sum(paths[n % len(paths)] == "/tasks" for n in aliases)
    assert cross_talk(calls, expected) == []


@pytest.mark.usefixtures("headers_on")
def test_waitress_threads_keep_no_headers_after_a_request(server: MockLLMServer, serve: Serve, api: str) -> None:
    threads = THREADS  # each batch holds every worker thread at once, so each thread serves one of each
    url = serve("wsgi", api, {"with": Gate(threads), "after": Gate(threads)})
    with_header = [("/sync", {"id": n, "gate": "with"}, {"X-LLM-Model": f"m{1 + n % 4}"}) for n in range(threads)]
    assert all(response.status_code == 200 for response in get_all(url, with_header))

    # /leftover is served without the middleware, so it sees what a request may have left on its thread.
    after = get_all(url, [("/leftover", {"id": threads + n, "gate": "after"}, {}) for n in range(threads)])

    assert [response.json() for response in after] == [{"headers": "None", "models": [MODELS["m0"]]}] * threads


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_split_key_header_assigns_each_key_its_alias_every_time(
    kind: str, monkeypatch: pytest.MonkeyPatch, server: MockLLMServer, serve: Serve
) -> None:
    configure(monkeypatch, server, SPLIT_MODELS, LLM_SPLITS=json.dumps({"keywords": {"a": 50, "b": 50}}))
    settings = LLMSettings()
    keys = 20
    expected = {
        n: SPLIT_MODELS[select_model("keywords", split_key=f"user-{n}", settings=settings).model] for n in range(keys)
    }
    assert set(expected.values()) == set(SPLIT_MODELS.values())  # both sides of the split are tried
    gate = Gate(held_at_once(kind, keys))
    url = serve(kind, "keywords", {"overlap": gate})

    responses = get_all(
        url,
        [
            (path, {"id": n, "gate": "overlap"}, {"X-LLM-Split-Key": f"user-{n}"})
            for path in PATHS[kind] * 2
            for n in range(keys)
        ],
    )

    assert gate.opened.is_set() and all(response.status_code == 200 for response in responses)
    calls = llm_calls(server.requests)
    assert all(len(models) >= 2 * len(PATHS[kind]) for models in calls.values())
    assert cross_talk(calls, expected) == []


@pytest.mark.parametrize(
    ("kind", "path"), [("asgi", "/async"), ("asgi", "/startup"), ("wsgi", "/sync"), ("wsgi", "/startup")]
)
@pytest.mark.usefixtures("headers_on")
def test_an_unknown_alias_in_the_header_is_a_400(
    kind: str, path: str, server: MockLLMServer, serve: Serve, api: str
) -> None:
    url = serve(kind, api, {})

    [response] = get_all(url, [(path, {"id": 0}, {"X-LLM-Model": "gpt-5-turbo-max"})])

    assert response.status_code == 400
    assert "known aliases: m0, m1, m2, m3, m4" in response.json()["error"]
    assert server.requests == []


# -- the middleware alone, called as a server calls it ------------------------


def http_scope(*headers: tuple[bytes, bytes], kind: str = "http") -> dict[str, Any]:
    return {"type": kind, "headers": [(b"accept", b"*/*"), *headers, (b"user-agent", b"test")]}


async def receive() -> dict[str, Any]:
    return {"type": "http.request"}


async def send(message: Any) -> None:
    pass


def through_asgi(scope: dict[str, Any], seen: Callable[[], Any]) -> Any:
    """What ``seen()`` gives inside an app wrapped in the middleware, for one connection of ``scope``."""
    found = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        found.append(seen())

    asyncio.run(ASGIMiddleware(app)(scope, receive, send))
    [value] = found
    return value


def settings() -> LLMSettings:
    return LLMSettings(
        models={alias: {"provider": "openai", "model": model} for alias, model in MODELS.items()},
        api_models={"LLM_MODEL_KEYWORDS": "m3"},
        enable_llm_model_header=True,
    )


def test_asgi_keeps_only_the_two_selection_headers_the_first_of_each_read_only() -> None:
    headers = through_asgi(
        http_scope((b"X-LLM-Model", b"m1"), (b"x-llm-split-key", b"user-1"), (b"x-llm-model", b"m2")),
        request_headers.get,
    )

    assert dict(headers) == {"x-llm-model": "m1", "x-llm-split-key": "user-1"}
    with pytest.raises(TypeError):
        headers["x-llm-model"] = "m2"
    assert through_asgi(http_scope(), request_headers.get) is None  # nothing to read: selection skips headers
    assert through_asgi(http_scope((b"x-llm-model", b"m4"), kind="websocket"), request_headers.get) == {
        "x-llm-model": "m4"
    }


def test_explicit_headers_win_over_the_middleware() -> None:
    def selections() -> list[tuple[str, str]]:
        chosen = [
            select_model("keywords", settings=settings()),
            select_model("keywords", headers={"X-LLM-Model": "m2"}, settings=settings()),
            select_model("keywords", headers={}, settings=settings()),
            get_llm_client_smart("keywords", headers=[("x-llm-model", "m4")], settings=settings()).selection,
        ]
        return [(selection.model, selection.source) for selection in chosen]

    assert through_asgi(http_scope((b"x-llm-model", b"m1")), selections) == [
        ("m1", "header"),
        ("m2", "header"),
        ("m3", "env"),
        ("m4", "header"),
    ]


def test_without_the_middleware_selection_reads_no_headers() -> None:
    selection = select_model("keywords", settings=settings())

    assert request_headers.get() is None
    assert (selection.model, selection.source) == ("m3", "env")


@pytest.mark.parametrize("kind", ["lifespan", "some-future-protocol"])
def test_other_scopes_pass_through_untouched(kind: str) -> None:
    scope = {"type": kind, "headers": [(b"x-llm-model", b"m1")]}
    seen = []

    async def app(*arguments: Any) -> None:
        seen.append((arguments, request_headers.get()))

    asyncio.run(ASGIMiddleware(app)(scope, receive, send))

    assert seen == [((scope, receive, send), None)]


def test_asgi_leaves_the_callers_context_as_it_was_even_when_the_app_raises() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert request_headers.get() == {"x-llm-model": "m1"}
        raise RuntimeError("boom")

    async def serve_in_place() -> Any:
        with pytest.raises(RuntimeError):
            await ASGIMiddleware(app)(http_scope((b"x-llm-model", b"m1")), receive, send)
        return request_headers.get()

    assert asyncio.run(serve_in_place()) is None


def test_wsgi_body_is_produced_and_closed_with_the_headers_after_the_app_returned() -> None:
    seen = []

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            seen.append(("body", request_headers.get()))
            yield b"reply"
        finally:
            seen.append(("close", request_headers.get()))

    body = WSGIMiddleware(app)({"HTTP_X_LLM_MODEL": "m1", "HTTP_X_LLM_SPLIT_KEY": "user-1"}, lambda *_: None)
    assert seen == [] and request_headers.get() is None
    chunks = [next(iter(body))]
    body.close()  # type: ignore[attr-defined]  # the server closes it before the generator ends

    assert chunks == [b"reply"]
    sent = {"x-llm-model": "m1", "x-llm-split-key": "user-1"}
    assert seen == [("body", sent), ("close", sent)]
    assert request_headers.get() is None


class FileWrapper:
    """A server's ``wsgi.file_wrapper``: the server sends the file its own way when it gets this back."""

    def __init__(self, file: Any) -> None:
        self.file = file


@pytest.mark.parametrize("made", [[b"reply"], (b"reply",), FileWrapper(None)], ids=["list", "tuple", "file"])
def test_wsgi_body_with_no_app_code_left_to_run_is_returned_as_it_is(made: Any) -> None:
    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return made

    assert WSGIMiddleware(app)({"wsgi.file_wrapper": FileWrapper}, lambda *_: None) is made

"""The web apps of the middleware tests (FastAPI, Flask), the real servers that serve them
(uvicorn, waitress), and a gate that holds handlers until several are in flight at once."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import flask
import httpx2
import uvicorn
import waitress
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from openai.types.chat import ChatCompletionMessageParam

from otel_llm import UnknownModelError, get_async_llm_client_smart, get_llm_client_smart
from otel_llm._selection import request_headers
from otel_llm.middleware import ASGIMiddleware, WSGIMiddleware

THREADS = 8
"""Worker threads of waitress: as many WSGI requests as can be in flight at once."""
WAIT_S = 10.0
"""Longest a gate or a server start may take before the test fails (never reached when all is well)."""


class Gate:
    """Holds the first ``size`` handlers that reach it until all of them are there, then lets every one pass.

    When it opens, ``size`` requests are in flight at the same time, each with
    its own headers set: a value shared between requests would show. Sync
    handlers wait in their threads, async ones on their event loop.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.opened = threading.Event()
        self._arrived = 0
        self._lock = threading.Lock()
        self._loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def wait(self) -> None:
        self._arrive()
        if not self.opened.wait(WAIT_S):
            raise TimeoutError(f"the gate of {self.size} did not open: {self._arrived} arrived")

    async def wait_async(self) -> None:
        event = asyncio.Event()
        if not self._arrive((asyncio.get_running_loop(), event)):
            await asyncio.wait_for(event.wait(), WAIT_S)

    def _arrive(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None) -> bool:
        """Count one arrival; whether the gate is open now."""
        with self._lock:
            self._arrived += 1
            if self._arrived == self.size:
                self.opened.set()
                for loop, event in self._loops:
                    loop.call_soon_threadsafe(event.set)
            elif waiter is not None and not self.opened.is_set():
                self._loops.append(waiter)
            return self.opened.is_set()


def prompt(request_id: int, task: int = 0) -> list[ChatCompletionMessageParam]:
    """The message of one LLM call: it carries the id of the incoming request that made it."""
    return [{"role": "user", "content": f"request {request_id} task {task}"}]


def fastapi_app(api: str, gates: Mapping[str, Gate]) -> FastAPI:
    """Endpoints that call the LLM of ``api`` in every way a FastAPI service does; none passes headers."""
    app = FastAPI()
    app.add_middleware(ASGIMiddleware)
    at_start_up = get_async_llm_client_smart(api)  # made before any request: it selects again at each call

    @app.exception_handler(UnknownModelError)
    async def unknown_model(request: Request, error: UnknownModelError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=400)

    async def hold(gate: str | None) -> None:
        if gate:
            await gates[gate].wait_async()

    @app.get("/async")
    async def in_handler(id: int, gate: str | None = None) -> dict[str, Any]:
        client = get_async_llm_client_smart(api)
        await hold(gate)
        reply = await client.chat.completions.create(messages=prompt(id))
        return {"models": [reply.model]}

    @app.get("/sync")
    def in_threadpool(id: int, gate: str | None = None) -> dict[str, Any]:
        client = get_llm_client_smart(api)
        if gate:
            gates[gate].wait()
        reply = client.chat.completions.create(messages=prompt(id))
        return {"models": [reply.model]}

    @app.get("/tasks")
    async def in_tasks(id: int, gate: str | None = None) -> dict[str, Any]:
        await hold(gate)

        async def call(task: int) -> str:
            reply = await get_async_llm_client_smart(api).chat.completions.create(messages=prompt(id, task))
            return reply.model

        return {"models": list(await asyncio.gather(call(1), call(2)))}

    @app.get("/startup")
    async def with_start_up_client(id: int, gate: str | None = None) -> dict[str, Any]:
        await hold(gate)
        reply = await at_start_up.chat.completions.create(messages=prompt(id))
        return {"models": [reply.model]}

    return app


def flask_app(api: str, gates: Mapping[str, Gate]) -> WSGIApplication:
    """The WSGI twin of :func:`fastapi_app`, with a streamed body; ``/leftover`` is served without the middleware."""
    app = flask.Flask(__name__)
    at_start_up = get_llm_client_smart(api)

    @app.errorhandler(UnknownModelError)
    def unknown_model(error: UnknownModelError) -> tuple[dict[str, str], int]:
        return {"error": str(error)}, 400

    def hold() -> None:
        gate = flask.request.args.get("gate")
        if gate:
            gates[gate].wait()

    def request_id() -> int:
        return int(flask.request.args["id"])

    @app.get("/sync")
    def in_handler() -> dict[str, Any]:
        client = get_llm_client_smart(api)
        hold()
        return {"models": [client.chat.completions.create(messages=prompt(request_id())).model]}

    @app.get("/startup")
    def with_start_up_client() -> dict[str, Any]:
        hold()
        return {"models": [at_start_up.chat.completions.create(messages=prompt(request_id())).model]}

    @app.get("/stream")
    def streamed() -> flask.Response:
        messages, gate = prompt(request_id()), flask.request.args.get("gate")

        def body() -> Iterator[str]:
            # Runs while the server iterates the body: the view and its request context are gone.
            if gate:
                gates[gate].wait()
            reply = get_llm_client_smart(api).chat.completions.create(messages=messages)
            yield json.dumps({"models": [reply.model], "in_view": flask.has_request_context()})

        return flask.Response(body(), mimetype="application/json")

    @app.get("/leftover")
    def leftover() -> dict[str, Any]:
        hold()
        reply = at_start_up.chat.completions.create(messages=prompt(request_id()))
        return {"headers": repr(request_headers.get()), "models": [reply.model]}

    wrapped = WSGIMiddleware(app)

    def serve(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return (app if environ["PATH_INFO"] == "/leftover" else wrapped)(environ, start_response)

    return serve


@contextmanager
def uvicorn_serving(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn (lifespan on) on a free loopback port; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="on", http="h11", loop="asyncio", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_S
        while not server.started:  # uvicorn offers no event to wait on
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)
        sock.close()


@contextmanager
def waitress_serving(app: Any, threads: int = THREADS) -> Iterator[str]:
    """Serve ``app`` with waitress (``threads`` worker threads) on a free loopback port; yields its URL."""
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=threads, asyncore_loop_timeout=0.1)
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:

        def close_all() -> None:  # the listening socket, the trigger, connections left open
            for dispatcher in list(server._map.values()):
                dispatcher.close()

        server.trigger.pull_trigger(close_all)  # in the server's thread, which selects on them
        thread.join(WAIT_S)
        server.task_dispatcher.shutdown()


def get_all(url: str, requests: list[tuple[str, dict[str, Any], dict[str, str]]]) -> list[httpx2.Response]:
    """Send every ``(path, query, headers)`` at once, each from its own thread."""
    with (
        httpx2.Client(base_url=url, timeout=30, trust_env=False) as client,
        ThreadPoolExecutor(len(requests)) as pool,
    ):
        return list(pool.map(lambda request: client.get(request[0], params=request[1], headers=request[2]), requests))

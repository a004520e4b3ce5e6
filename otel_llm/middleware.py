"""Request-scoped selection: the served request's headers become the default
``headers`` of :func:`otel_llm.select_model` and of the client factories.

Selection reads two headers only, ``X-LLM-Model`` and ``X-LLM-Split-Key``, so
each request's headers are scanned once, here, and just those two are kept in
a small read-only mapping (nothing at all when neither was sent, so that
selection skips headers as it does outside a request): a request pays for one
pass over its header names, and each selection made while it is served looks
in a dict of at most two entries, not through every header the client sent.

The mapping lives in a context variable, not on the app or the thread, so each
request, the asyncio tasks it starts and the threads a framework runs its sync
handlers in (they copy the context) see that request's headers and no other's.
A thread you start yourself does not inherit them: start it with
``contextvars.copy_context().run``.

Use::

    app.add_middleware(ASGIMiddleware)  # FastAPI, Starlette
    app.wsgi_app = WSGIMiddleware(app.wsgi_app)  # Flask
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, MutableMapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._selection import MODEL_HEADER, SPLIT_KEY_HEADER, request_headers

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]

# The ASGI types, as Starlette spells them, so that the middleware is itself an ASGI app to type checkers.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CONNECTIONS = frozenset({"http", "websocket"})
_ASGI_NAMES = {MODEL_HEADER.encode(): MODEL_HEADER, SPLIT_KEY_HEADER.encode(): SPLIT_KEY_HEADER}
_NAME_LENGTHS = frozenset(len(name) for name in _ASGI_NAMES)


class ASGIMiddleware:
    """Wraps an ASGI app (FastAPI, Starlette, ...): each HTTP request and WebSocket selects by its own headers."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in _CONNECTIONS:  # lifespan, and scope types to come: no request to select by
            await self.app(scope, receive, send)
            return
        token = request_headers.set(_from_asgi(scope.get("headers", ())))
        try:
            await self.app(scope, receive, send)
        finally:
            # The caller's task may go on after the app (an outer middleware, a
            # test client calling the app in place): leave it as it was.
            request_headers.reset(token)


class WSGIMiddleware:
    """Wraps a WSGI app (Flask, Django, ...): each request selects by its own headers, while its body streams too."""

    __slots__ = ("app",)

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # A body may be produced while the server iterates it, after the app has
        # returned; so the request gets a context of its own for the call, each
        # step and close(), and the server's thread never holds the headers.
        context = contextvars.copy_context()
        context.run(request_headers.set, _from_environ(environ))
        body = context.run(self.app, environ, start_response)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if type(body) in (list, tuple) or (isinstance(file_wrapper, type) and isinstance(body, file_wrapper)):
            # Produced already, or a file the server may send its own way: no app code left to run.
            return body
        return _Body(body, context)


class _Body:
    """The app's response body, iterated and closed in its request's context (``close()`` kept, PEP 3333)."""

    __slots__ = ("_body", "_context", "_iterator")

    def __init__(self, body: Iterable[bytes], context: contextvars.Context) -> None:
        self._body = body
        self._context = context
        self._iterator: Iterator[bytes] | None = None

    def __iter__(self) -> _Body:
        return self

    def __next__(self) -> bytes:
        iterator = self._iterator
        if iterator is None:
            iterator = self._iterator = self._context.run(iter, self._body)
        return self._context.run(next, iterator)

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)


def _from_asgi(raw: Iterable[tuple[bytes, bytes]]) -> Mapping[str, str] | None:
    """The two selection headers among an ASGI scope's raw ``(name, value)`` pairs."""
    found: dict[str, str] = {}
    for name, value in raw:
        # ASGI servers send names lower-case, hand-made scopes may not: only a name of
        # the right length is lower-cased to compare.
        if len(name) in _NAME_LENGTHS and (key := _ASGI_NAMES.get(name.lower())) is not None and key not in found:
            found[key] = value.decode("latin-1")  # the first one wins, as when select_model reads pairs
    return MappingProxyType(found) if found else None


def _from_environ(environ: WSGIEnvironment) -> Mapping[str, str] | None:
    """The two selection headers of a WSGI request (native strings, PEP 3333)."""
    model = environ.get("HTTP_X_LLM_MODEL")
    split_key = environ.get("HTTP_X_LLM_SPLIT_KEY")
    if model is None and split_key is None:
        return None
    found: dict[str, str] = {}
    if model is not None:
        found[MODEL_HEADER] = model
    if split_key is not None:
        found[SPLIT_KEY_HEADER] = split_key
    return MappingProxyType(found)

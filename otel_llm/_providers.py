"""The ``openai`` SDK clients behind the aliases, built once and shared.

One client (one connection pool) per server, key and HTTP-span setting: asking
for a client per request is a dictionary lookup. Async clients are kept per
event loop, because an ``httpx2`` async pool cannot outlive the loop it was
opened on.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import openai

from ._endpoints import Endpoint, key_env
from ._errors import ConfigError
from ._transport import async_http_client, sync_http_client

__all__ = ["Provider", "async_client", "close_clients", "sync_client"]

_Client = TypeVar("_Client", openai.OpenAI, openai.AsyncOpenAI)

_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Provider(Generic[_Client]):
    """An SDK client and the server it talks to (``server.address`` / ``server.port``)."""

    client: _Client
    address: str
    port: int

    @classmethod
    def of(cls, client: _Client) -> Provider[_Client]:
        url = client.base_url
        return cls(client, url.host, url.port or (443 if url.scheme == "https" else 80))


def _build_sync(endpoint: Endpoint, api_key: str, http_spans: bool) -> Provider[openai.OpenAI]:
    sdk_client = endpoint.sdk_clients[0]
    # Our attempt loop retries and shows every attempt: the SDK's own retries are off.
    http_client = sync_http_client(http_spans=http_spans)
    return Provider.of(sdk_client(api_key=api_key, max_retries=0, http_client=http_client, **endpoint.client_options))


def _build_async(endpoint: Endpoint, api_key: str, http_spans: bool) -> Provider[openai.AsyncOpenAI]:
    sdk_client = endpoint.sdk_clients[1]
    http_client = async_http_client(http_spans=http_spans)
    return Provider.of(sdk_client(api_key=api_key, max_retries=0, http_client=http_client, **endpoint.client_options))


class _ClientCache(Generic[_Client]):
    def __init__(self, build: Callable[[Endpoint, str, bool], Provider[_Client]]) -> None:
        self._build: Callable[[Endpoint, str, bool], Provider[_Client]] = build
        self._by_endpoint: dict[tuple[Endpoint, str | None, bool], Provider[_Client]] = {}
        self._by_server: dict[Hashable, Provider[_Client]] = {}

    def get(self, alias: str, endpoint: Endpoint, http_spans: bool) -> Provider[_Client]:
        api_key = os.environ.get(key_env(endpoint))
        client = self._by_endpoint.get((endpoint, api_key, http_spans))
        if client is None:
            client = self._add(alias, endpoint, api_key, http_spans)
        return client

    def take_all(self) -> list[_Client]:
        """Forget every client; the distinct ones, for closing."""
        with _lock:
            clients = list({id(p.client): p.client for p in self._by_server.values()}.values())
            self._by_server.clear()
            self._by_endpoint.clear()
        return clients

    def _add(self, alias: str, endpoint: Endpoint, api_key: str | None, http_spans: bool) -> Provider[_Client]:
        if not api_key:
            raise ConfigError(f"{key_env(endpoint)} is not set: alias {alias!r} reads its API key from it")
        # Aliases on the same server with the same key share one client.
        server = (type(endpoint), *sorted(endpoint.client_options.items()), api_key, http_spans)
        with _lock:
            client = self._by_server.get(server)
            if client is None:
                client = self._by_server[server] = self._build(endpoint, api_key, http_spans)
            self._by_endpoint[(endpoint, api_key, http_spans)] = client
        return client


_sync_clients = _ClientCache(_build_sync)
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ClientCache[openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def sync_client(alias: str, endpoint: Endpoint, http_spans: bool = True) -> Provider[openai.OpenAI]:
    """The shared synchronous client for ``endpoint``."""
    return _sync_clients.get(alias, endpoint, http_spans)


def async_client(alias: str, endpoint: Endpoint, http_spans: bool = True) -> Provider[openai.AsyncOpenAI]:
    """The shared async client for ``endpoint`` on the running event loop."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        with _lock:
            clients = _async_clients.setdefault(loop, _ClientCache(_build_async))
    return clients.get(alias, endpoint, http_spans)


def close_clients() -> None:
    """Close every cached SDK client and its connection pool (at shutdown).

    Clients asked for later are built anew. Async clients are closed on their
    own event loop when it still runs, else dropped with it.
    """
    for client in _sync_clients.take_all():
        client.close()
    for loop, clients in list(_async_clients.items()):
        for async_sdk in clients.take_all():
            if not loop.is_closed():
                _close_on(loop, async_sdk)


_closing: set[asyncio.Task[None]] = set()


def _close_on(loop: asyncio.AbstractEventLoop, client: openai.AsyncOpenAI) -> None:
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task = loop.create_task(client.close())
        _closing.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_closing.discard)
    elif loop.is_running():
        asyncio.run_coroutine_threadsafe(client.close(), loop)
    else:
        loop.run_until_complete(client.close())

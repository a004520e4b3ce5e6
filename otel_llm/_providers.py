"""The ``openai`` SDK clients behind the aliases, built once and shared.

One client (one connection pool) per server and key: asking for a client per
request is a dictionary lookup. Async clients are kept per event loop, because
an ``httpx2`` async pool cannot outlive the loop it was opened on.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

import openai

from ._endpoints import Endpoint, key_env
from ._errors import ConfigError

__all__ = ["async_client", "sync_client"]

_Client = TypeVar("_Client", openai.OpenAI, openai.AsyncOpenAI)

_lock = threading.Lock()


class _ClientCache(Generic[_Client]):
    def __init__(self, sync: bool) -> None:
        self._sdk_index = 0 if sync else 1
        self._by_endpoint: dict[tuple[Endpoint, str | None], _Client] = {}
        self._by_server: dict[Hashable, _Client] = {}

    def get(self, alias: str, endpoint: Endpoint) -> _Client:
        api_key = os.environ.get(key_env(endpoint))
        client = self._by_endpoint.get((endpoint, api_key))
        if client is None:
            client = self._build(alias, endpoint, api_key)
        return client

    def _build(self, alias: str, endpoint: Endpoint, api_key: str | None) -> _Client:
        if not api_key:
            raise ConfigError(f"{key_env(endpoint)} is not set: alias {alias!r} reads its API key from it")
        options: dict[str, Any] = endpoint.client_options
        # Aliases on the same server with the same key share one client.
        server = (type(endpoint), *sorted(options.items()), api_key)
        with _lock:
            client = self._by_server.get(server)
            if client is None:
                sdk_client = endpoint.sdk_clients[self._sdk_index]
                # Our attempt loop retries and shows every attempt: the SDK's own retries are off.
                client = sdk_client(api_key=api_key, max_retries=0, **options)  # type: ignore[assignment]
                self._by_server[server] = client  # type: ignore[assignment]
            self._by_endpoint[(endpoint, api_key)] = client  # type: ignore[assignment]
        return client  # type: ignore[return-value]


_sync_clients: _ClientCache[openai.OpenAI] = _ClientCache(sync=True)
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ClientCache[openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)


def sync_client(alias: str, endpoint: Endpoint) -> openai.OpenAI:
    """The shared synchronous client for ``endpoint``."""
    return _sync_clients.get(alias, endpoint)


def async_client(alias: str, endpoint: Endpoint) -> openai.AsyncOpenAI:
    """The shared async client for ``endpoint`` on the running event loop."""
    loop = asyncio.get_running_loop()
    clients = _async_clients.get(loop)
    if clients is None:
        with _lock:
            clients = _async_clients.setdefault(loop, _ClientCache(sync=False))
    return clients.get(alias, endpoint)

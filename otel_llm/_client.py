"""Drop-in clients: an ``openai.OpenAI`` (or ``AzureOpenAI``, or their async twins)
bound to one API's selection.

The client is the SDK's own class, with every resource, argument and type
of it; only its request path differs. Every SDK method ends in
``client.request(cast_to, options, stream=..., stream_cls=...)``. There a
request that generates (``POST`` to chat completions, the Responses API or
embeddings) becomes a logical call: selection, attempts, fallbacks and
telemetry, each attempt sent through the SDK client of the alias it tries.
Any other request (``models``, ``files``, ``responses.retrieve``, ...) goes to
the selected alias's SDK client unchanged. A method the SDK adds next year
ends in the same place, so it works the day it ships.

The client itself sends nothing: it holds no connection pool, and leaving
``with client:`` closes nothing (other requests share the pools).
``close_clients()`` closes the shared SDK clients at shutdown.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import httpx2
import openai
from openai._models import FinalRequestOptions

from . import _resources as resources
from ._apis import API_BY_PATH
from ._call import LogicalCall, run_async, run_sync
from ._derived import derived
from ._endpoints import AzureEndpoint, Endpoint, key_env
from ._errors import ConfigError
from ._live import get_settings
from ._providers import async_client, sync_client
from ._selection import CONFIGURED_SOURCES, Headers, Selection, select_model, split_key_in
from ._settings import LLMSettings

__all__ = [
    "AsyncAzureLLMClient",
    "AsyncLLMClient",
    "AzureLLMClient",
    "LLMClient",
    "get_async_llm_client_smart",
    "get_llm_client_smart",
]

# Clients per settings object: selections are few (APIs x aliases x sources);
# past this many, clients are built per request instead of kept.
_MAX_CLIENTS = 4096
# What with_options() may change: the rest (key, URL, HTTP client) is the alias's configuration.
_CLIENT_OPTIONS = frozenset(
    {"timeout", "max_retries", "default_headers", "set_default_headers", "default_query", "set_default_query"}
)


def get_llm_client_smart(
    api_name: str,
    request_model: str | None = None,
    headers: Headers | None = None,
    settings: LLMSettings | None = None,
    split_key: str | None = None,
) -> LLMClient:
    """A client for ``api_name`` whose calls go to the selected model.

    Cheap enough to call per request: the client of each selection is built
    once, and the ``openai`` clients behind it are cached per endpoint and key.
    A client whose selection came from the configuration (``LLM_MODEL_<API>``,
    a split, the default) selects again at each call, so one made at start-up
    follows ``reload_settings()`` and file reloads, draws a keyless split per
    call, and honours the ``X-LLM-Model`` header of the request being served.
    One chosen by a request or header keeps its alias.
    """
    client: LLMClient = _client_for(api_name, request_model, headers, settings, split_key, False)
    return client


def get_async_llm_client_smart(
    api_name: str,
    request_model: str | None = None,
    headers: Headers | None = None,
    settings: LLMSettings | None = None,
    split_key: str | None = None,
) -> AsyncLLMClient:
    """The async twin of :func:`get_llm_client_smart`."""
    client: AsyncLLMClient = _client_for(api_name, request_model, headers, settings, split_key, True)
    return client


def _client_for(
    api_name: str,
    request_model: str | None,
    headers: Headers | None,
    settings: LLMSettings | None,
    split_key: str | None,
    is_async: bool,
) -> Any:
    follows = settings is None
    settings = settings or get_settings()
    selection = select_model(api_name, request_model, headers, settings, split_key)
    if selection.source in CONFIGURED_SOURCES:
        # An explicit key, or the one in explicit headers, is the client's; one
        # in the served request's headers is read again at each call.
        if split_key is None and headers is not None:
            split_key = split_key_in(headers)
        key: tuple[Any, ...] = (selection, is_async, follows, split_key)
    else:
        key = (selection, is_async)
    clients = derived(settings).clients
    client = clients.get(key)
    if client is None:
        endpoint = settings.endpoints[selection.model]
        chosen = _Chosen(selection, settings, follows, split_key)
        client = _CLASSES[isinstance(endpoint, AzureEndpoint), is_async].bound_to(chosen, endpoint)
        if len(clients) < _MAX_CLIENTS:
            clients[key] = client
    return client


class _Chosen:
    """How a client's calls are selected: once, for a request or header choice;
    at each call, for a configured one (from the process-wide settings when
    none were given, so that reloads reach it)."""

    __slots__ = ("follows", "reselects", "selection", "settings", "split_key")

    def __init__(self, selection: Selection, settings: LLMSettings, follows: bool, split_key: str | None) -> None:
        self.selection = selection
        self.settings = settings
        self.reselects = selection.source in CONFIGURED_SOURCES
        self.follows = follows and self.reselects
        self.split_key = split_key

    def current(self) -> tuple[Selection, LLMSettings]:
        """The selection and settings of a call starting now."""
        if not self.reselects:
            return self.selection, self.settings
        settings = get_settings() if self.follows else self.settings
        return select_model(self.selection.api_name, settings=settings, split_key=self.split_key), settings


class _ApiKey:
    """The SDK's key callable: read from the alias's variable whenever the SDK needs it."""

    __slots__ = ("_variable",)

    def __init__(self, variable: str) -> None:
        self._variable = variable

    def __call__(self) -> str:
        key = os.environ.get(self._variable)
        if not key:
            raise ConfigError(f"{self._variable} is not set: the selected alias reads its API key from it")
        return key

    def __repr__(self) -> str:
        return f"<API key from {self._variable}>"


@functools.cache
def _idle_http_client(is_async: bool) -> httpx2.Client | httpx2.AsyncClient:
    """The HTTP client our clients hold but never send through (the SDK wants one)."""
    return openai.DefaultAsyncHttpxClient() if is_async else openai.DefaultHttpxClient()


class _Bound:
    """What the sync and async clients share: the selection, and how a request is routed."""

    _chosen: _Chosen
    _own_timeout: float | httpx2.Timeout | openai.NotGiven | None
    """The timeout ``with_options`` set, or ``NOT_GIVEN`` for the SDK's default."""
    _has_client_options: bool
    """Whether ``with_options`` set headers or query parameters to add to every request."""
    _is_async: ClassVar[bool]
    if TYPE_CHECKING:  # the SDK client's, which every subclass also is
        timeout: float | httpx2.Timeout | None
        _custom_headers: Mapping[str, str]
        _custom_query: Mapping[str, object]

    @classmethod
    def bound_to(cls, chosen: _Chosen, endpoint: Endpoint) -> Any:
        client = cls(  # type: ignore[call-arg]
            api_key=_ApiKey(key_env(endpoint)),
            max_retries=0,
            http_client=_idle_http_client(cls._is_async),
            **endpoint.client_options,
        )
        client._bind(chosen)
        return client

    def _bind(self, chosen: _Chosen) -> None:
        self._chosen = chosen
        self._own_timeout = openai.NOT_GIVEN if self.timeout == openai.DEFAULT_TIMEOUT else self.timeout
        self._has_client_options = bool(self._custom_headers or self._custom_query)

    def _route(self, options: FinalRequestOptions) -> LogicalCall | None:
        """The logical call of a generating request; ``None`` for a request to pass through.

        Either way the request gets what ``with_options`` set, since another
        SDK client sends it.
        """
        if self._has_client_options:
            headers = options.headers if not isinstance(options.headers, openai.NotGiven) else {}
            options.headers = {**self._custom_headers, **headers}
            options.params = {**self._custom_query, **options.params}
        api = API_BY_PATH.get(options.url) if options.method == "post" else None
        if api is not None and isinstance(options.json_data, dict):
            return LogicalCall(api, *self._chosen.current(), options, self._own_timeout)
        if isinstance(options.timeout, openai.NotGiven):
            options.timeout = self.timeout
        return None

    def _selected_sdk_client(self) -> Any:
        """The SDK client of the selected alias (on the running event loop, for async)."""
        selection, settings = self._chosen.current()
        provider = async_client if self._is_async else sync_client
        return provider(selection.model, settings.endpoints[selection.model], settings.http_spans).client

    def _copy(self, **options: Any) -> Any:
        unsupported = sorted(set(options) - _CLIENT_OPTIONS)
        if unsupported:
            raise TypeError(
                f"with_options({', '.join(unsupported)}=...) is not supported by an otel-llm client: "
                "the endpoint, key and HTTP client come from the alias's configuration (LLM_MODELS)"
            )
        options.pop("max_retries", None)  # retries are otel-llm's own; the SDK's stay off
        copy = super().copy(**options)  # type: ignore[misc]  # the SDK client's, after this class in the MRO
        copy._bind(self._chosen)
        return copy

    if not TYPE_CHECKING:  # type checkers keep the SDK's signatures of copy() and with_options()
        copy = with_options = _copy

    @property
    def selection(self) -> Selection:
        """The selection this client was made with (a configured one is made again at each call)."""
        return self._chosen.selection

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.selection!r})"


class LLMClient(_Bound, openai.OpenAI):
    """An ``openai.OpenAI`` bound to one API: its generating calls go to the selected model.

    ``model`` may be left out of every generating call; a ``model`` passed to
    a call counts as ``request_model`` (honoured when ``ENABLE_LLM_MODEL_OVERRIDE`` is on).
    """

    _is_async = False

    @functools.cached_property
    def chat(self) -> resources.Chat:
        return resources.Chat(self)

    @functools.cached_property
    def embeddings(self) -> resources.Embeddings:
        return resources.Embeddings(self)

    @functools.cached_property
    def responses(self) -> resources.Responses:
        return resources.Responses(self)

    @functools.cached_property
    def with_raw_response(self) -> resources.LLMClientWithRawResponse:
        return resources.LLMClientWithRawResponse(self)

    @functools.cached_property
    def with_streaming_response(self) -> resources.LLMClientWithStreamedResponse:
        return resources.LLMClientWithStreamedResponse(self)

    def _request(
        self, cast_to: Any, options: FinalRequestOptions, *, stream: bool = False, stream_cls: Any = None
    ) -> Any:
        call = self._route(options)
        if call is None:
            return self._selected_sdk_client().request(cast_to, options, stream=stream, stream_cls=stream_cls)
        return run_sync(call, cast_to, stream, stream_cls)

    if not TYPE_CHECKING:  # type checkers keep the SDK's overloads
        request = _request

    def close(self) -> None:
        """Nothing to close: the SDK clients behind this one are shared (see ``close_clients()``)."""


class AzureLLMClient(LLMClient, openai.AzureOpenAI):
    """An :class:`LLMClient` whose selected alias is an Azure OpenAI deployment."""


class AsyncLLMClient(_Bound, openai.AsyncOpenAI):
    """The async twin of :class:`LLMClient`: an ``openai.AsyncOpenAI`` bound to one API."""

    _is_async = True

    @functools.cached_property
    def chat(self) -> resources.AsyncChat:
        return resources.AsyncChat(self)

    @functools.cached_property
    def embeddings(self) -> resources.AsyncEmbeddings:
        return resources.AsyncEmbeddings(self)

    @functools.cached_property
    def responses(self) -> resources.AsyncResponses:
        return resources.AsyncResponses(self)

    @functools.cached_property
    def with_raw_response(self) -> resources.AsyncLLMClientWithRawResponse:
        return resources.AsyncLLMClientWithRawResponse(self)

    @functools.cached_property
    def with_streaming_response(self) -> resources.AsyncLLMClientWithStreamedResponse:
        return resources.AsyncLLMClientWithStreamedResponse(self)

    async def _request(
        self, cast_to: Any, options: FinalRequestOptions, *, stream: bool = False, stream_cls: Any = None
    ) -> Any:
        call = self._route(options)
        if call is None:
            return await self._selected_sdk_client().request(cast_to, options, stream=stream, stream_cls=stream_cls)
        return await run_async(call, cast_to, stream, stream_cls)

    if not TYPE_CHECKING:  # type checkers keep the SDK's overloads
        request = _request

    async def close(self) -> None:
        """Nothing to close: the SDK clients behind this one are shared (see ``close_clients()``)."""


class AsyncAzureLLMClient(AsyncLLMClient, openai.AsyncAzureOpenAI):
    """An :class:`AsyncLLMClient` whose selected alias is an Azure OpenAI deployment."""


_CLASSES: dict[tuple[bool, bool], type[_Bound]] = {
    (False, False): LLMClient,
    (True, False): AzureLLMClient,
    (False, True): AsyncLLMClient,
    (True, True): AsyncAzureLLMClient,
}

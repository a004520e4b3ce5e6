"""Drop-in clients: ``client.chat.completions.create`` and ``client.embeddings.create``
with the ``openai`` SDK's arguments and return types, for one API of a service.

``model`` may be left out: the selection fills it. A ``model`` passed to a call
counts as ``request_model`` (honoured when ``ENABLE_LLM_MODEL_OVERRIDE`` is on).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, overload

import openai
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam

from ._call import CHAT, EMBEDDINGS, LogicalCall, Operation, run_async, run_sync
from ._selection import Headers, Selection, select_model
from ._settings import LLMSettings, get_settings

__all__ = ["AsyncLLMClient", "LLMClient", "get_async_llm_client_smart", "get_llm_client_smart"]


def get_llm_client_smart(
    api_name: str,
    request_model: str | None = None,
    headers: Headers | None = None,
    settings: LLMSettings | None = None,
) -> LLMClient:
    """A client for ``api_name`` whose calls go to the selected model.

    Cheap enough to call per request: the ``openai`` clients behind it are
    cached per endpoint and key.
    """
    settings = settings or get_settings()
    return LLMClient(select_model(api_name, request_model, headers, settings), settings)


def get_async_llm_client_smart(
    api_name: str,
    request_model: str | None = None,
    headers: Headers | None = None,
    settings: LLMSettings | None = None,
) -> AsyncLLMClient:
    """The async twin of :func:`get_llm_client_smart`."""
    settings = settings or get_settings()
    return AsyncLLMClient(select_model(api_name, request_model, headers, settings), settings)


class _BaseClient:
    __slots__ = ("_settings", "selection")

    def __init__(self, selection: Selection, settings: LLMSettings) -> None:
        self.selection = selection
        """The selection behind this client."""
        self._settings = settings

    def _call(self, operation: Operation, model: str | None, kwargs: dict[str, Any]) -> LogicalCall:
        return LogicalCall(operation, self.selection, self._settings, model, kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.selection!r})"


class LLMClient(_BaseClient):
    """Synchronous drop-in for an ``openai.OpenAI`` client, bound to one API."""

    __slots__ = ("chat", "embeddings")

    def __init__(self, selection: Selection, settings: LLMSettings) -> None:
        super().__init__(selection, settings)
        self.chat = _Chat(self)
        self.embeddings = _Embeddings(self)


class AsyncLLMClient(_BaseClient):
    """Async drop-in for an ``openai.AsyncOpenAI`` client, bound to one API."""

    __slots__ = ("chat", "embeddings")

    def __init__(self, selection: Selection, settings: LLMSettings) -> None:
        super().__init__(selection, settings)
        self.chat = _AsyncChat(self)
        self.embeddings = _AsyncEmbeddings(self)


class _Chat:
    __slots__ = ("completions",)

    def __init__(self, client: LLMClient) -> None:
        self.completions = _Completions(client)


class _AsyncChat:
    __slots__ = ("completions",)

    def __init__(self, client: AsyncLLMClient) -> None:
        self.completions = _AsyncCompletions(client)


class _Completions:
    __slots__ = ("_client",)

    def __init__(self, client: LLMClient) -> None:
        self._client = client

    @overload
    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | None = None,
        stream: Literal[False] | None = None,
        **kwargs: Any,
    ) -> ChatCompletion: ...
    @overload
    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | None = None,
        stream: Literal[True],
        **kwargs: Any,
    ) -> openai.Stream[ChatCompletionChunk]: ...
    def create(self, *, model: str | None = None, **kwargs: Any) -> ChatCompletion | openai.Stream[ChatCompletionChunk]:
        """``openai.OpenAI().chat.completions.create``, on the selected model."""
        return run_sync(self._client._call(CHAT, model, kwargs))  # type: ignore[no-any-return]


class _AsyncCompletions:
    __slots__ = ("_client",)

    def __init__(self, client: AsyncLLMClient) -> None:
        self._client = client

    @overload
    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | None = None,
        stream: Literal[False] | None = None,
        **kwargs: Any,
    ) -> ChatCompletion: ...
    @overload
    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str | None = None,
        stream: Literal[True],
        **kwargs: Any,
    ) -> openai.AsyncStream[ChatCompletionChunk]: ...
    async def create(
        self, *, model: str | None = None, **kwargs: Any
    ) -> ChatCompletion | openai.AsyncStream[ChatCompletionChunk]:
        """``openai.AsyncOpenAI().chat.completions.create``, on the selected model."""
        return await run_async(self._client._call(CHAT, model, kwargs))  # type: ignore[no-any-return]


class _Embeddings:
    __slots__ = ("_client",)

    def __init__(self, client: LLMClient) -> None:
        self._client = client

    def create(self, *, input: Any, model: str | None = None, **kwargs: Any) -> CreateEmbeddingResponse:
        """``openai.OpenAI().embeddings.create``, on the selected model."""
        kwargs["input"] = input
        return run_sync(self._client._call(EMBEDDINGS, model, kwargs))  # type: ignore[no-any-return]


class _AsyncEmbeddings:
    __slots__ = ("_client",)

    def __init__(self, client: AsyncLLMClient) -> None:
        self._client = client

    async def create(self, *, input: Any, model: str | None = None, **kwargs: Any) -> CreateEmbeddingResponse:
        """``openai.AsyncOpenAI().embeddings.create``, on the selected model."""
        kwargs["input"] = input
        return await run_async(self._client._call(EMBEDDINGS, model, kwargs))  # type: ignore[no-any-return]

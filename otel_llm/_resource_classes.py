"""The SDK's generating resources with ``model`` optional: what ``otel_llm._resources`` hands out.

Imported on first use, by :mod:`otel_llm._resources` (whose docstring tells what
these classes change, and whose stub gives their types).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import cached_property
from typing import Any

from openai._client import (
    AsyncOpenAIWithRawResponse,
    AsyncOpenAIWithStreamedResponse,
    OpenAIWithRawResponse,
    OpenAIWithStreamedResponse,
)
from openai.resources import chat, embeddings, responses

from ._resources import SELECTED_MODEL


def _generating(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with what otel-llm decides left out: ``model`` and ``timeout``."""

    @functools.wraps(method)
    def call(self: Any, *args: Any, model: Any = SELECTED_MODEL, timeout: Any = None, **kwargs: Any) -> Any:
        return method(self, *args, model=model, timeout=timeout, **kwargs)

    return call


def _generating_or_resumed(method: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`_generating` for ``responses.stream``, whose resumed streams (``response_id=``) take no model."""
    generating = _generating(method)

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        return (method if "response_id" in kwargs else generating)(self, *args, **kwargs)

    return call


class Completions(chat.Completions):
    create = _generating(chat.Completions.create)
    parse = _generating(chat.Completions.parse)
    stream = _generating(chat.Completions.stream)


class AsyncCompletions(chat.AsyncCompletions):
    create = _generating(chat.AsyncCompletions.create)
    parse = _generating(chat.AsyncCompletions.parse)
    stream = _generating(chat.AsyncCompletions.stream)


class Chat(chat.Chat):
    @cached_property
    def completions(self) -> Completions:
        return Completions(self._client)


class AsyncChat(chat.AsyncChat):
    @cached_property
    def completions(self) -> AsyncCompletions:
        return AsyncCompletions(self._client)


class Embeddings(embeddings.Embeddings):
    create = _generating(embeddings.Embeddings.create)


class AsyncEmbeddings(embeddings.AsyncEmbeddings):
    create = _generating(embeddings.AsyncEmbeddings.create)


class Responses(responses.Responses):
    create = _generating(responses.Responses.create)
    parse = _generating(responses.Responses.parse)
    stream = _generating_or_resumed(responses.Responses.stream)


class AsyncResponses(responses.AsyncResponses):
    create = _generating(responses.AsyncResponses.create)
    parse = _generating(responses.AsyncResponses.parse)
    stream = _generating_or_resumed(responses.AsyncResponses.stream)


# The raw-response wrappers are the SDK's: wrapping the methods above, they
# make ``model`` optional too. The stub gives them their types.
ChatWithRawResponse = chat.ChatWithRawResponse
AsyncChatWithRawResponse = chat.AsyncChatWithRawResponse
ChatWithStreamingResponse = chat.ChatWithStreamingResponse
AsyncChatWithStreamingResponse = chat.AsyncChatWithStreamingResponse
CompletionsWithRawResponse = chat.CompletionsWithRawResponse
AsyncCompletionsWithRawResponse = chat.AsyncCompletionsWithRawResponse
CompletionsWithStreamingResponse = chat.CompletionsWithStreamingResponse
AsyncCompletionsWithStreamingResponse = chat.AsyncCompletionsWithStreamingResponse
EmbeddingsWithRawResponse = embeddings.EmbeddingsWithRawResponse
AsyncEmbeddingsWithRawResponse = embeddings.AsyncEmbeddingsWithRawResponse
EmbeddingsWithStreamingResponse = embeddings.EmbeddingsWithStreamingResponse
AsyncEmbeddingsWithStreamingResponse = embeddings.AsyncEmbeddingsWithStreamingResponse
LLMClientWithRawResponse = OpenAIWithRawResponse
AsyncLLMClientWithRawResponse = AsyncOpenAIWithRawResponse
LLMClientWithStreamedResponse = OpenAIWithStreamedResponse
AsyncLLMClientWithStreamedResponse = AsyncOpenAIWithStreamedResponse

"""The SDK's generating resources, with ``model`` optional: the selection fills it.

At run time these are the ``openai`` SDK's own resource classes, with one
change: the methods whose ``model`` the SDK requires default it to
:data:`SELECTED_MODEL`, a marker the client's request path replaces with the
model of each attempt (a ``model`` the caller passes counts as
``request_model``). Everything else, the raw-response wrappers included, is
the SDK's unchanged; the types of this module are in ``_resources.pyi``,
generated from the SDK by ``scripts/generate_resources_stub.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import cached_property
from typing import Any, Final

from openai._client import (
    AsyncOpenAIWithRawResponse,
    AsyncOpenAIWithStreamedResponse,
    OpenAIWithRawResponse,
    OpenAIWithStreamedResponse,
)
from openai.resources import chat, embeddings, responses

__all__ = ["SELECTED_MODEL", "is_selected"]


class _Selected(str):
    """The type of :data:`SELECTED_MODEL`: told apart from any name a caller could pass."""

    __slots__ = ()


SELECTED_MODEL: Final = _Selected("(selected by otel-llm)")
"""The ``model`` a generating method sends when the caller gave none."""


def is_selected(model: object) -> bool:
    """Whether a request body's ``model`` is left to the selection."""
    return model is None or isinstance(model, _Selected)


def _model_optional(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with ``model`` defaulting to :data:`SELECTED_MODEL`.

    A stream that resumes a stored response (``response_id=``) takes no model.
    """

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        if "model" not in kwargs and "response_id" not in kwargs:
            kwargs["model"] = SELECTED_MODEL
        return method(self, *args, **kwargs)

    return call


class Completions(chat.Completions):
    create = _model_optional(chat.Completions.create)
    parse = _model_optional(chat.Completions.parse)
    stream = _model_optional(chat.Completions.stream)


class AsyncCompletions(chat.AsyncCompletions):
    create = _model_optional(chat.AsyncCompletions.create)
    parse = _model_optional(chat.AsyncCompletions.parse)
    stream = _model_optional(chat.AsyncCompletions.stream)


class Chat(chat.Chat):
    @cached_property
    def completions(self) -> Completions:
        return Completions(self._client)


class AsyncChat(chat.AsyncChat):
    @cached_property
    def completions(self) -> AsyncCompletions:
        return AsyncCompletions(self._client)


class Embeddings(embeddings.Embeddings):
    create = _model_optional(embeddings.Embeddings.create)


class AsyncEmbeddings(embeddings.AsyncEmbeddings):
    create = _model_optional(embeddings.AsyncEmbeddings.create)


class Responses(responses.Responses):
    stream = _model_optional(responses.Responses.stream)


class AsyncResponses(responses.AsyncResponses):
    stream = _model_optional(responses.AsyncResponses.stream)


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

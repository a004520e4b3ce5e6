"""Response shapes real providers send that plain OpenAI does not.

Client code that only ever saw OpenAI's own shapes breaks on Azure's content
filter chunks, on proxies that put the usage in a choice or drop the finish
reason, and on servers that leave out the model. A :class:`Quirk` makes the mock
answer one model that way until it is cleared (see
:meth:`MockLLMServer.set_quirks <otel_llm.testing.MockLLMServer.set_quirks>`).

Counts below are what the raw SDK yields for the default 16-word chat stream
(``n=1``): 18 chunks without quirks (role, 16 words, finish), 19 with
``stream_options={"include_usage": True}`` (the usage chunk).
"""

from __future__ import annotations

from enum import StrEnum, auto

__all__ = ["Quirk"]


class Quirk(StrEnum):
    """One provider's deviation from OpenAI's response shapes, applied to every answer for a model.

    :attr:`NO_MODEL` shapes chat, Responses and embeddings answers; the others, chat completions only.
    """

    PROMPT_FILTER_CHUNK = auto()
    """Azure: a chat stream starts with a chunk carrying only ``prompt_filter_results``
    (``"choices": []``, ``"id": ""``, ``"model": ""``, ``"object": ""``, ``"created": 0``; the SDK
    keeps the results in ``chunk.model_extra``); non-streamed chat bodies carry the same top-level
    list. 19 chunks (20 with usage): the first has no ``choices[0]``."""
    USAGE_IN_EMPTY_CHOICE = auto()
    """Some proxies: the usage chunk has ``"choices": [{"delta": {}, "index": 0}]`` instead of
    ``[]``, so ``chunk.choices[0]`` exists there, with ``finish_reason`` and ``delta.content``
    ``None``. 18 chunks (19 with usage)."""
    NO_FINISH_REASON = auto()
    """Some OpenAI-compatible servers: the last empty-delta chunk (and a non-streamed choice)
    has ``"finish_reason": null``; usage and ``[DONE]`` still follow. 18 chunks (19 with usage).
    It also nulls the finish reason of :attr:`CONTENT_FILTERED` answers."""
    NO_MODEL = auto()
    """Bodies leave out the ``model`` key: chat bodies and every chunk, Responses bodies and the
    ``response`` of their events, embeddings. The SDK does not validate, so its ``model`` is
    ``None`` despite its ``str`` type. Chunk counts unchanged."""
    CONTENT_FILTERED = auto()
    """Azure's output filter: every choice has ``"finish_reason": "content_filter"``, a
    ``content_filter_results`` object (``violence`` filtered) and no ``message`` key (the SDK's
    ``message`` is ``None``; ``parse()`` raises ``openai.ContentFilterFinishReasonError``); usage
    counts the prompt and 0 completion tokens. A stream sends the role chunk, then per choice an
    empty-delta chunk with that finish reason and those results: 2 chunks (3 with usage)."""

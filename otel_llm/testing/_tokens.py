"""The mock server's token arithmetic: deterministic, so tests can predict usage.

Real tokenizers depend on the model and change between releases; tests that
check token metrics or cost need numbers they can compute by hand instead:

- a *token* is one whitespace-separated word of text;
- ``prompt_tokens`` of a chat request = for each message, 3 + the words of its
  text content (a string, or the ``text`` of its text parts), plus 3 for the
  reply priming (the shape of OpenAI's own formula);
- ``input_tokens`` of a Responses request = the same formula over the messages
  the model sees, in order: ``instructions`` (one message, when given), the
  conversation of ``previous_response_id`` (its input messages and its reply,
  not its instructions, as OpenAI does not carry them over), then ``input``
  (a string is one user message; every item of a list counts as a message,
  its text being its string content or the ``text`` of its parts, such as
  ``input_text``);
- ``completion_tokens`` (chat) / ``output_tokens`` (Responses) = the reasoning
  tokens + the words of the reply; for chat, summed over the ``n`` choices;
- reasoning tokens, only when the request names an effort (chat
  ``reasoning_effort``, Responses ``reasoning.effort``): ``none`` and
  ``minimal`` 0, ``low`` 8, ``medium`` 16, ``high`` 32, ``xhigh`` 64 (per
  choice); reported as ``reasoning_tokens`` and included in the output count,
  as OpenAI does;
- an output limit (``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``)
  bounds reasoning + reply words, reasoning first: reasoning is cut to the
  limit, then the reply to what is left (possibly nothing);
- a structured reply (JSON schema or JSON object) is JSON as ``json.dumps``
  writes it by default (``", "`` and ``": "`` separators, ASCII-escaped) and
  counts its whitespace-separated words, like text;
- embeddings: ``prompt_tokens`` = the words of every input (a token array counts
  one token per number);
- ``cached_tokens``: when the same messages were already answered by the same
  server and ``prompt_tokens >= 1024``, the prompt tokens rounded down to a
  multiple of 128 (OpenAI caches prompts of 1024+ tokens in 128-token steps);
  otherwise 0. Chat and Responses share what was seen: the same messages count
  as seen whichever API answered them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CACHE_MIN_TOKENS",
    "CACHE_STEP_TOKENS",
    "REASONING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_REPLY_PRIMING",
    "cached_tokens",
    "count_words",
    "input_messages",
    "message_text",
    "prompt_tokens",
    "reasoning_tokens",
    "reply_words",
    "split_tokens",
    "within_limit",
]

TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128
REASONING_TOKENS: dict[str, int] = {"none": 0, "minimal": 0, "low": 8, "medium": 16, "high": 32, "xhigh": 64}

_TOKEN = re.compile(r"\s*\S+")


def count_words(text: str) -> int:
    """Tokens in ``text``: its whitespace-separated words."""
    return len(text.split())


def split_tokens(text: str) -> list[str]:
    """The tokens of ``text``, each with the whitespace before it, so that they join back to ``text``.

    These are the stream deltas, and what an output limit cuts.
    """
    return _TOKEN.findall(text)


def message_text(message: Any) -> str:
    """The text content of one chat message or Responses input item (string content or text parts)."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def input_messages(value: str | list[Any]) -> list[Any]:
    """The messages of a Responses ``input``: a string is one user message, a list its items."""
    return [{"role": "user", "content": value}] if isinstance(value, str) else list(value)


def prompt_tokens(messages: Iterable[Any]) -> int:
    """``prompt_tokens`` / ``input_tokens`` of a request's messages (see the module docstring)."""
    return sum(TOKENS_PER_MESSAGE + count_words(message_text(m)) for m in messages) + TOKENS_REPLY_PRIMING


def cached_tokens(prompt: int, *, seen_before: bool) -> int:
    """``cached_tokens`` for a prompt of ``prompt`` tokens."""
    if not seen_before or prompt < CACHE_MIN_TOKENS:
        return 0
    return min(prompt, prompt // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS)


def reasoning_tokens(effort: Any) -> int | None:
    """Reasoning tokens for a reasoning ``effort`` (0 when none is named); ``None`` for an unknown effort."""
    if effort is None:
        return 0
    return REASONING_TOKENS.get(effort) if isinstance(effort, str) else None


def within_limit(tokens: Sequence[str], reasoning: int, limit: int | None) -> tuple[list[str], int, bool]:
    """The reply tokens and reasoning tokens an output ``limit`` leaves, and whether it cut anything.

    Reasoning comes first, as in a reasoning model, so a small limit can leave no reply at all.
    """
    if limit is None:
        return list(tokens), reasoning, False
    kept_reasoning = min(reasoning, limit)
    kept = list(tokens[: limit - kept_reasoning])
    return kept, kept_reasoning, len(kept) < len(tokens) or kept_reasoning < reasoning


def reply_words(messages: Sequence[Any], count: int) -> list[str]:
    """The deterministic reply: ``mock reply`` then the last user message's words, cycled.

    Echoing the prompt lets concurrent tests check that each answer belongs to
    its own request.
    """
    user_words: list[str] = []
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            user_words = message_text(message).split()
            break
    pool = ["mock", "reply", *(user_words or ["word"])]
    head, tail = pool[:2], pool[2:]
    words = head[:count]
    while len(words) < count:
        words.append(tail[(len(words) - len(head)) % len(tail)])
    return words

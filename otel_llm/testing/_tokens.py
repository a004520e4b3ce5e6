"""The mock server's token arithmetic: deterministic, so tests can predict usage.

Real tokenizers depend on the model and change between releases; tests that
check token metrics or cost need numbers they can compute by hand instead:

- a *token* is one whitespace-separated word of text;
- ``prompt_tokens`` of a chat request = for each message, 3 + the words of its
  text content (a string, or the ``text`` of its text parts), plus 3 for the
  reply priming (the shape of OpenAI's own formula);
- ``completion_tokens`` = the words of the reply, summed over the ``n`` choices;
- embeddings: ``prompt_tokens`` = the words of every input (a token array counts
  one token per number);
- ``cached_tokens``: when the same messages were already answered by the same
  server and ``prompt_tokens >= 1024``, the prompt tokens rounded down to a
  multiple of 128 (OpenAI caches prompts of 1024+ tokens in 128-token steps);
  otherwise 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CACHE_MIN_TOKENS",
    "CACHE_STEP_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_REPLY_PRIMING",
    "cached_tokens",
    "count_words",
    "message_text",
    "prompt_tokens",
    "reply_words",
]

TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
CACHE_MIN_TOKENS = 1024
CACHE_STEP_TOKENS = 128


def count_words(text: str) -> int:
    """Tokens in ``text``: its whitespace-separated words."""
    return len(text.split())


def message_text(message: Any) -> str:
    """The text content of one chat message (string content or text parts)."""
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


def prompt_tokens(messages: Iterable[Any]) -> int:
    """``prompt_tokens`` of a chat request (see the module docstring)."""
    return sum(TOKENS_PER_MESSAGE + count_words(message_text(m)) for m in messages) + TOKENS_REPLY_PRIMING


def cached_tokens(prompt: int, *, seen_before: bool) -> int:
    """``prompt_tokens_details.cached_tokens`` for a prompt of ``prompt`` tokens."""
    if not seen_before or prompt < CACHE_MIN_TOKENS:
        return 0
    return min(prompt, prompt // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS)


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

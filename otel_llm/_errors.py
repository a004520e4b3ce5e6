"""The errors of ``otel_llm``.

Configuration and selection errors are ``ValueError`` so that code already
catching bad input keeps working. Provider failures keep the ``openai`` SDK's
own exception types; a truncated stream is an ``openai.APIError`` too.
"""

from __future__ import annotations

from collections.abc import Iterable

import httpx2
import openai

__all__ = [
    "BudgetExceededError",
    "ConfigError",
    "ModelNotAllowedError",
    "StateUnavailableError",
    "StreamTruncatedError",
    "UnknownModelError",
]

_WHERE = {"request": "the request_model argument", "header": "the X-LLM-Model header"}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the variable and the problem."""


class UnknownModelError(ValueError):
    """A requested model names no configured alias.

    The rejected value is kept on the exception for the caller's own error
    response; it is quoted in the message only shortened, because it is typed
    by whoever sent the request.
    """

    def __init__(self, value: str, source: str, known: Iterable[str]) -> None:
        self.value = value
        self.source = source
        self.known = tuple(sorted(known))
        super().__init__(
            f"unknown model {_shown(value)!r} from {_WHERE.get(source, source)}; "
            f"known aliases: {', '.join(self.known) or '(none configured)'}"
        )


class ModelNotAllowedError(UnknownModelError):
    """A requested alias exists but ``LLM_ALLOWED_MODELS`` does not let a request choose it for this API.

    A subclass of :class:`UnknownModelError`, so one handler turns both into a
    client error (HTTP 400).
    """

    def __init__(self, value: str, source: str, api_name: str, allowed: Iterable[str]) -> None:
        super().__init__(value, source, allowed)
        self.api_name = api_name
        self.allowed = self.known
        """The aliases a request may choose for this API."""
        self.args = (
            f"model {_shown(value)!r} from {_WHERE.get(source, source)} is not allowed for API {api_name!r} "
            f"(LLM_ALLOWED_MODELS); allowed: {', '.join(self.allowed) or '(none)'}",
        )


def _shown(value: str) -> str:
    return value if len(value) <= 64 else value[:61] + "..."


class StreamTruncatedError(openai.APIError):
    """A streamed answer is incomplete: it ended with neither a finish reason nor
    the ``[DONE]`` terminator (a Responses stream: without its terminal event),
    or it stalled for longer than ``LLM_STREAM_IDLE_TIMEOUT_S``.

    An ``openai.APIError``, so existing ``except openai.APIError`` handlers see it.
    """

    def __init__(self, request: httpx2.Request, *, stalled_s: float | None = None) -> None:
        self.stalled_s = stalled_s
        """The idle timeout it stalled past; ``None`` when the stream ended early."""
        if stalled_s is None:
            reason = "the stream ended before the answer was complete (no finish reason, no [DONE])"
        else:
            reason = f"the stream stalled: no chunk for {stalled_s:g} s (LLM_STREAM_IDLE_TIMEOUT_S)"
        super().__init__(f"{reason}: the text received is truncated", request, body=None)


class BudgetExceededError(openai.OpenAIError):
    """An attempt did not fit its API's budget (``LLM_BUDGETS``) and the budget names no ``then`` alias
    (or that one did not fit either): nothing was sent.

    An ``openai.OpenAIError``, so existing handlers of the SDK's errors see it.
    """

    def __init__(self, api_name: str, usd: float, window: str, needed_usd: float, remaining_usd: float) -> None:
        self.api_name = api_name
        self.usd = usd
        self.window = window
        super().__init__(
            f"API {api_name!r} is over its budget of ${usd:g} per {window} (LLM_BUDGETS): this attempt could cost up "
            f"to ${needed_usd:.6f} and ${max(remaining_usd, 0):.6f} is left in this {window}"
        )


class StateUnavailableError(openai.OpenAIError):
    """The shared state server (``LLM_STATE_URL``) did not serve an operation.

    Raised to the caller when ``LLM_STATE_FAILURE`` is ``closed``. The message
    names the server by host and port only: the URL may hold credentials.
    An ``openai.OpenAIError``, so existing handlers of the SDK's errors see it.
    """

    def __init__(self, server: str, reason: str, error_type: str = "unavailable") -> None:
        self.server = server
        """``host:port`` of the state server."""
        self.reason = reason
        """Why: the client's error, or that the server is skipped during a back-off."""
        self.error_type = error_type
        """The client's error class (``ConnectionError``...): ``error.type`` of ``otel_llm.state.errors``."""
        super().__init__(f"the state server {server} is unavailable: {reason}")

"""What is worth another attempt, and how long to wait for it (tenacity strategies).

Retryable: HTTP 408, 409, 429 and 5xx, timeouts, connection errors, and a
stream that ended before its first chunk. Anything else (400, 401, 403, 404,
422, a content filter, a body that does not parse) would fail the same way
again, and is raised at once.
"""

from __future__ import annotations

import email.utils
import time
from datetime import UTC, datetime

import openai
from tenacity import RetryCallState, wait_random_exponential
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from ._errors import StreamTruncatedError

__all__ = ["is_retryable", "retry_after", "stop_for_call", "wait_for_provider"]

_RETRYABLE_STATUS = frozenset({408, 409, 429})


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, openai.APIStatusError):
        return error.status_code in _RETRYABLE_STATUS or error.status_code >= 500
    # APITimeoutError is an APIConnectionError.
    return isinstance(error, (openai.APIConnectionError, StreamTruncatedError))


def retry_after(error: BaseException | None) -> float | None:
    """Seconds the provider asked us to wait (``retry-after-ms`` or ``Retry-After``), if it did."""
    if not isinstance(error, openai.APIStatusError):
        return None
    headers = error.response.headers
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:  # an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


class wait_for_provider(wait_base):
    """The provider's ``Retry-After`` when it sent one, else exponential backoff with full jitter."""

    def __init__(self, max_wait: float) -> None:
        self._backoff = wait_random_exponential(multiplier=0.5, max=max_wait)

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        hinted = retry_after(outcome.exception() if outcome is not None else None)
        return self._backoff(retry_state) if hinted is None else hinted


class stop_for_call(stop_base):
    """Stop retrying a model when its attempts are spent, when the provider asks
    for a longer wait than ``max_wait`` (the next model is tried at once), or
    when the wait would reach the call's deadline."""

    def __init__(self, attempts: int, max_wait: float, deadline: float) -> None:
        self._attempts = attempts
        self._max_wait = max_wait
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return (
            retry_state.attempt_number >= self._attempts
            or retry_state.upcoming_sleep > self._max_wait
            or time.monotonic() + retry_state.upcoming_sleep >= self._deadline
        )

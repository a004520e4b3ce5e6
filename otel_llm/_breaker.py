"""A circuit breaker per alias: a model that keeps failing is skipped for a while.

After ``LLM_BREAKER_FAILURES`` retryable failures in a row an alias opens:
calls go straight to its fallback for ``LLM_BREAKER_COOLDOWN_S``. Then one
call probes it (half-open): success closes the breaker, failure opens it
again. The state lives in the process and is shared by its threads and
event loops; an alias that is the last of its chain is tried even when open,
since nothing better is left.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

__all__ = ["Breaker", "BreakerState", "breaker_for", "reset_breakers"]

BreakerState = Literal["closed", "open", "half_open"]


class Breaker:
    """One alias's breaker; each method returns the state it moved to, if it moved."""

    __slots__ = ("_changed_at", "_failures", "_lock", "state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state: BreakerState = "closed"
        self._failures = 0
        self._changed_at = 0.0

    def allow(self, cooldown_s: float) -> tuple[bool, BreakerState | None]:
        """Whether a call may try this alias now."""
        if self.state == "closed":
            return True, None
        with self._lock:
            # Open past its cool-down: this call probes. Half-open with a probe
            # that never reported back (its call ran out of time first): probe again.
            if time.monotonic() - self._changed_at < cooldown_s:
                return False, None
            moved: BreakerState | None = None if self.state == "half_open" else "half_open"
            self.state = "half_open"
            self._changed_at = time.monotonic()
            return True, moved

    def success(self) -> BreakerState | None:
        """The model answered (an error that is not retryable is an answer too)."""
        if self.state == "closed" and not self._failures:
            return None
        with self._lock:
            self._failures = 0
            if self.state == "closed":
                return None
            self.state = "closed"
            return "closed"

    def failure(self, threshold: int) -> BreakerState | None:
        """A retryable failure."""
        with self._lock:
            self._failures += 1
            if self.state == "half_open" or (self.state == "closed" and self._failures >= threshold):
                self.state = "open"
                self._changed_at = time.monotonic()
                return "open"
            return None


_lock = threading.Lock()
_breakers: dict[str, Breaker] = {}


def breaker_for(alias: str) -> Breaker:
    breaker = _breakers.get(alias)
    if breaker is None:
        with _lock:
            breaker = _breakers.setdefault(alias, Breaker())
    return breaker


def reset_breakers() -> None:
    """Forget every breaker's state (for tests, and after a configuration change)."""
    with _lock:
        _breakers.clear()

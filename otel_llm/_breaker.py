"""A circuit breaker per endpoint: a model that keeps failing is skipped for a while.

After ``LLM_BREAKER_FAILURES`` retryable failures in a row an endpoint opens:
calls go straight to their fallback for ``LLM_BREAKER_COOLDOWN_S``. Then one
call probes it (half-open): success closes the breaker, failure opens it
again. The state is kept per endpoint (provider, server, deployment or
model), not per alias: aliases of one endpoint share what they learn, and a
reloaded configuration keeps the state of the endpoints it still has. This
is the state machine; where the state lives (this process, or a state server
every replica shares) is :mod:`otel_llm._state`'s. An alias that is the last
of its chain is tried even when open, since nothing better is left.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

__all__ = ["Breaker", "BreakerState"]

BreakerState = Literal["closed", "open", "half_open"]


class Breaker:
    """One endpoint's breaker; each method returns the state it moved to, if it moved."""

    __slots__ = ("_changed_at", "_failures", "_lock", "state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state: BreakerState = "closed"
        self._failures = 0
        self._changed_at = 0.0

    @property
    def clean(self) -> bool:
        """Closed with no failure counted: a success would change nothing."""
        return self.state == "closed" and not self._failures

    def allow(self, cooldown_s: float, now: float | None = None) -> tuple[bool, BreakerState | None]:
        """Whether a call may try this endpoint now.

        ``now`` is the caller's clock (the shared state stores pass a wall clock
        in, so that tests can move it); by default the monotonic clock. One
        breaker must always be given the same clock.
        """
        if self.state == "closed":
            return True, None
        with self._lock:
            at = time.monotonic() if now is None else now
            # Open past its cool-down: this call probes. Half-open with a probe
            # that never reported back (its call ran out of time first): probe again.
            if at - self._changed_at < cooldown_s:
                return False, None
            moved: BreakerState | None = None if self.state == "half_open" else "half_open"
            self.state = "half_open"
            self._changed_at = at
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

    def failure(self, threshold: int, now: float | None = None) -> BreakerState | None:
        """A retryable failure (``now``: as for :meth:`allow`)."""
        with self._lock:
            self._failures += 1
            if self.state == "half_open" or (self.state == "closed" and self._failures >= threshold):
                self.state = "open"
                self._changed_at = time.monotonic() if now is None else now
                return "open"
            return None

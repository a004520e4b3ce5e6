"""Where budgets and circuit breakers keep their state (SPEC §13).

A :class:`StateStore` holds two kinds of state, identical in meaning in the
process (:class:`LocalState`) and on a Redis server shared by every replica
(:class:`otel_llm._redis_state.RedisState`):

- **Budgets.** Amounts are integers in nano-USD (1e-9 USD: exact in a double,
  hence in Lua, up to about $9M). Before an attempt its worst-case cost is
  *reserved*; when the usage arrives the reservation is *settled* to the real
  cost. A reservation carries the time it lapses at: one never settled (its
  process crashed) stops counting then. A budget's state ends with its
  calendar window (``expire_at``).
- **Circuit breakers.** Exactly the state machine of :class:`_breaker.Breaker`.

Times are wall-clock epoch seconds passed in by the caller (an injectable
clock), never read inside a store, so that tests can roll windows over; only
the end of a window on Redis is the server's clock (a key's expiry), and
:class:`LocalState` judges it by the latest ``now`` it was given.

:class:`SharedState` puts a remote store in front of the process's own
:class:`LocalState` and applies ``LLM_STATE_FAILURE`` when the remote cannot
be reached.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from . import _semconv as semconv
from ._breaker import Breaker, BreakerState
from ._errors import StateUnavailableError
from ._guard import guarded

__all__ = [
    "LOCAL_RESERVATION",
    "BreakerCheck",
    "LocalState",
    "SharedState",
    "StateFailure",
    "StateStore",
    "in_background",
    "process_store",
    "reset_breakers",
    "state_store",
]

StateFailure = Literal["open", "closed"]
"""``LLM_STATE_FAILURE``: go on with the process's own state, or fail the operation."""

LOCAL_RESERVATION = "local:"
"""How the ids of :class:`LocalState`'s reservations begin (those of a remote store never do)."""

_T = TypeVar("_T")
_log = logging.getLogger("otel_llm")


class BreakerCheck(NamedTuple):
    """What :meth:`StateStore.breaker_check` found."""

    allowed: bool
    """Whether the call may try the endpoint now."""
    moved: BreakerState | None
    """The state the breaker moved to (``"half_open"``: this call probes), if it moved."""
    clean: bool
    """Closed with no failure counted: reporting a success would change nothing, so the
    caller may skip that write (one round trip to a remote store on the common path)."""


_CLEAN = BreakerCheck(True, None, True)
"""A breaker with nothing against it: closed, no failure counted."""


class StateStore(Protocol):
    """Budgets and circuit breakers; every operation is atomic (one round trip on a remote store)."""

    def reserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """Drop the budget's reservations lapsed by ``now``, then reserve ``amount`` unless
        ``spent + reserved + amount > limit`` (an amount that fits exactly is allowed).

        Returns the new reservation's id (``None``: refused) and what remains,
        ``limit - spent - reserved`` after the operation (negative when a limit
        was lowered below what is already spent). The budget's state expires at
        ``expire_at``, the end of its window.
        """
        ...

    def settle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """Replace ``reservation`` by the real ``cost``: the cost counts even when the reservation
        already lapsed; removing an unknown or lapsed reservation does nothing.

        Returns ``spent + reserved`` after the operation (the store does not know
        the limit: the caller subtracts it from its own). Reservations that
        lapsed but were not dropped yet are still in that figure (``settle`` has
        no ``now``); the next ``reserve`` drops them.
        """
        ...

    def remaining(self, key: str, limit: int, now: float) -> int:
        """``limit - spent - reserved``, lapsed reservations not counted; changes nothing."""
        ...

    def breaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """Whether a call may try the endpoint now, the state the breaker moved to (half-open), and
        whether it is clean (a success need not be reported)."""
        ...

    def breaker_success(self, key: str) -> BreakerState | None:
        """The endpoint answered: the breaker closes and forgets its failures."""
        ...

    def breaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """A retryable failure: ``threshold`` in a row open a closed breaker, one opens a half-open one.

        ``cooldown_s`` lets a remote store keep the key long enough.
        """
        ...

    async def areserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """:meth:`reserve` from a coroutine."""
        ...

    async def asettle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """:meth:`settle` from a coroutine."""
        ...

    async def aremaining(self, key: str, limit: int, now: float) -> int:
        """:meth:`remaining` from a coroutine."""
        ...

    async def abreaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """:meth:`breaker_check` from a coroutine."""
        ...

    async def abreaker_success(self, key: str) -> BreakerState | None:
        """:meth:`breaker_success` from a coroutine."""
        ...

    async def abreaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """:meth:`breaker_failure` from a coroutine."""
        ...

    def close(self) -> None:
        """Close the store's connections, if it has any (they reopen when used again)."""
        ...

    async def aclose(self) -> None:
        """Close the running event loop's connections, before the loop ends (as with ``close_clients``)."""
        ...


def check_amount(name: str, value: int) -> None:
    """Amounts are whole nano-USD, never negative: a float would lose cents, a negative refund a budget."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer of nano-USD, got {value!r}")


# -- in the process --------------------------------------------------------------


@dataclass(slots=True)
class _Budget:
    expire_at: float
    spent: int = 0
    reserved: int = 0
    reservations: dict[str, tuple[int, float]] = field(default_factory=dict)
    """id -> (amount, lapse_at)"""

    def lapsed(self, now: float) -> list[str]:
        return [rid for rid, (_, lapse_at) in self.reservations.items() if lapse_at <= now]


class LocalState:
    """The state of this process only: one lock, no I/O (the async twins call the sync methods).

    Its breakers are :class:`_breaker.Breaker` objects given the caller's
    clock. A breaker that is clean again is forgotten (as a Redis key is
    deleted); unlike on Redis, a breaker left open or with failures is kept
    however long it stays idle.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[str, _Budget] = {}
        self._breakers: dict[str, Breaker] = {}
        self._seq = 0
        self._now = float("-inf")  # the latest ``now`` given: when settle judges a window over
        self._sweep_at = float("inf")  # the earliest end of a window held

    def __repr__(self) -> str:
        return f"LocalState({len(self._budgets)} budgets, {len(self._breakers)} breakers)"

    # -- budgets

    def reserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """See :meth:`StateStore.reserve`."""
        check_amount("amount", amount)
        with self._lock:
            self._saw(now)
            budget = self._budget(key, expire_at)
            for rid in budget.lapsed(now):
                budget.reserved -= budget.reservations.pop(rid)[0]
            reservation: str | None = None
            if budget.spent + budget.reserved + amount <= limit:
                self._seq += 1
                reservation = f"{LOCAL_RESERVATION}{self._seq}"
                budget.reservations[reservation] = (amount, lapse_at)
                budget.reserved += amount
            left = limit - budget.spent - budget.reserved
            self._expire(key, budget, expire_at)
            return reservation, left

    def settle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """See :meth:`StateStore.settle`."""
        check_amount("cost", cost)
        with self._lock:
            budget = self._budget(key, expire_at)
            held = budget.reservations.pop(reservation, None)
            if held is not None:
                budget.reserved -= held[0]
            budget.spent += cost
            used = budget.spent + budget.reserved
            self._expire(key, budget, expire_at)
            return used

    def remaining(self, key: str, limit: int, now: float) -> int:
        """See :meth:`StateStore.remaining`."""
        with self._lock:
            self._saw(now)
            budget = self._budgets.get(key)
            if budget is None:
                return limit
            lapsed = sum(budget.reservations[rid][0] for rid in budget.lapsed(now))
            return limit - budget.spent - (budget.reserved - lapsed)

    def _saw(self, now: float) -> None:
        """Move the store's clock on; forget the budgets whose window ended (memory stays bounded)."""
        if now > self._now:
            self._now = now
        if now >= self._sweep_at:
            self._budgets = {key: b for key, b in self._budgets.items() if b.expire_at > now}
            self._sweep_at = min((b.expire_at for b in self._budgets.values()), default=float("inf"))

    def _budget(self, key: str, expire_at: float) -> _Budget:
        budget = self._budgets.get(key)
        if budget is None or budget.expire_at <= self._now:  # its window ended: a new one starts empty
            budget = self._budgets[key] = _Budget(expire_at)
        return budget

    def _expire(self, key: str, budget: _Budget, expire_at: float) -> None:
        budget.expire_at = expire_at
        if expire_at <= self._now:  # as a Redis key given an expiry in the past: gone at once
            del self._budgets[key]
        elif expire_at < self._sweep_at:
            self._sweep_at = expire_at

    # -- breakers

    def breaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """See :meth:`StateStore.breaker_check`."""
        breaker = self._breakers.get(key)  # every call asks: a clean breaker has no entry, and needs no lock
        if breaker is None:
            return _CLEAN
        with self._lock:
            allowed, moved = breaker.allow(cooldown_s, now)
            return BreakerCheck(allowed, moved, breaker.clean)

    def breaker_success(self, key: str) -> BreakerState | None:
        """See :meth:`StateStore.breaker_success`."""
        with self._lock:
            breaker = self._breakers.pop(key, None)
            return None if breaker is None else breaker.success()

    def breaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """See :meth:`StateStore.breaker_failure`."""
        with self._lock:
            self._saw(now)
            breaker = self._breakers.get(key)
            if breaker is None:
                breaker = self._breakers[key] = Breaker()
            return breaker.failure(threshold, now)

    def clear_breakers(self) -> None:
        """Close every breaker (``reset_breakers``); budgets stay."""
        with self._lock:
            self._breakers.clear()

    def clear(self) -> None:
        """Forget every budget and breaker (for tests and ``reset_breakers``)."""
        with self._lock:
            self._budgets.clear()
            self._breakers.clear()
            self._now = float("-inf")
            self._sweep_at = float("inf")

    # -- async twins: nothing to wait for

    async def areserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """See :meth:`StateStore.reserve`."""
        return self.reserve(key, amount, limit, lapse_at, expire_at, now)

    async def asettle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """See :meth:`StateStore.settle`."""
        return self.settle(key, reservation, cost, expire_at)

    async def aremaining(self, key: str, limit: int, now: float) -> int:
        """See :meth:`StateStore.remaining`."""
        return self.remaining(key, limit, now)

    async def abreaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """See :meth:`StateStore.breaker_check`."""
        return self.breaker_check(key, cooldown_s, now)

    async def abreaker_success(self, key: str) -> BreakerState | None:
        """See :meth:`StateStore.breaker_success`."""
        return self.breaker_success(key)

    async def abreaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """See :meth:`StateStore.breaker_failure`."""
        return self.breaker_failure(key, threshold, cooldown_s, now)

    def close(self) -> None:
        """Nothing to close."""

    async def aclose(self) -> None:
        """Nothing to close."""


# -- a remote store, and what to do when it is not there --------------------------


class _Backoff:
    """After a failure the remote is skipped for a while, so that a dead server does not
    cost every operation its connect timeout; then one operation probes it.

    The pause starts at ``first_s`` and doubles at each failed probe up to
    ``max_s``; any success ends it. Failures of operations already in flight
    when the first one failed do not lengthen it.
    """

    def __init__(self, first_s: float, max_s: float, clock: Callable[[], float]) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._clock = clock
        self._lock = threading.Lock()
        self.pause_s = 0.0
        """0 while the remote serves; else the current pause."""
        self._retry_at = 0.0
        self._probing = False
        self.last: StateUnavailableError | None = None
        """The failure that started or prolonged the pause."""

    def begin(self) -> bool | None:
        """``None``: skip the remote; ``True``: try it as the probe; ``False``: try it, it serves."""
        if not self.pause_s:
            return False
        with self._lock:
            if not self.pause_s:
                return False
            if self._probing or self._clock() < self._retry_at:
                return None
            self._probing = True
            return True

    def failed(self, error: StateUnavailableError, probe: bool) -> bool:
        """Whether this failure is the one that found the remote gone."""
        with self._lock:
            self.last = error
            if probe:
                self._probing = False
            elif self.pause_s:
                return False  # in flight when another failure began the pause: it changes nothing
            found = not self.pause_s
            self.pause_s = min(max(self.pause_s * 2, self._first_s), self._max_s)
            self._retry_at = self._clock() + self.pause_s
            return found

    def succeeded(self, probe: bool) -> bool:
        """Whether the remote is back after a pause."""
        if not self.pause_s and not probe:
            return False
        with self._lock:
            back = bool(self.pause_s)
            self.pause_s = 0.0
            self._probing = False
            return back

    def abandoned(self, probe: bool) -> None:
        """The probe ended otherwise (cancelled, a bug): let another operation probe."""
        if probe:
            with self._lock:
                self._probing = False


class SharedState:
    """A remote store (Redis) with ``LLM_STATE_FAILURE`` applied when it cannot be reached.

    ``remote`` raises :class:`StateUnavailableError` when it cannot serve an
    operation. Then, and for operations skipped during the back-off:

    - ``open``: the operation is done on the process's own ``local`` state and
      ``otel_llm.state.errors`` counts it;
    - ``closed``: it raises :class:`StateUnavailableError` (counted too).

    Reservations stay where they were made. A settle goes to the store that
    holds its reservation: one reserved locally (during an outage) is settled
    locally even once the server is back, so that call's cost never reaches the
    server; one reserved on the server and settled while the server cannot be
    reached (``open``) is settled locally: its cost counts in this process's
    own state, its reservation lapses on the server at its ``lapse_at``, and
    the server's spend stays short by that call's cost. In both cases the
    server under-counts; nothing is queued to be replayed, because an operation
    that timed out may or may not have happened on the server, and replaying a
    settle that did happen would count it twice.
    """

    def __init__(
        self,
        remote: StateStore,
        local: LocalState,
        failure: StateFailure,
        *,
        server: str = "the state server",
        backoff_s: float = 1.0,
        backoff_max_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure not in ("open", "closed"):
            raise ValueError(f"failure must be 'open' or 'closed', got {failure!r}")
        self.remote = remote
        self.local = local
        self.failure: StateFailure = failure
        self.server = server
        """How messages name the remote: ``host:port``, never its URL."""
        self._backoff = _Backoff(backoff_s, backoff_max_s, clock)

    def __repr__(self) -> str:
        return f"SharedState({self.remote!r}, failure={self.failure!r})"

    @property
    def serving(self) -> bool:
        """Whether the remote served the last operation that tried it."""
        return not self._backoff.pause_s

    # -- the two paths

    def _sync(self, remote: Callable[[], _T], local: Callable[[], _T]) -> _T:
        probe = self._backoff.begin()
        if probe is None:
            return self._unserved(None, local)
        try:
            result = remote()
        except StateUnavailableError as error:
            return self._failed(error, probe, local)
        except BaseException:
            self._backoff.abandoned(probe)
            raise
        self._served(probe)
        return result

    async def _async(self, remote: Callable[[], Awaitable[_T]], local: Callable[[], _T]) -> _T:
        probe = self._backoff.begin()
        if probe is None:
            return self._unserved(None, local)
        try:
            result = await remote()
        except StateUnavailableError as error:
            return self._failed(error, probe, local)
        except BaseException:
            self._backoff.abandoned(probe)
            raise
        self._served(probe)
        return result

    def _served(self, probe: bool) -> None:
        if self._backoff.succeeded(probe):
            _log.info("otel-llm: the state server %s serves again", self.server)

    def _failed(self, error: StateUnavailableError, probe: bool, local: Callable[[], _T]) -> _T:
        if self._backoff.failed(error, probe):
            then = (
                "this process goes on with its own state (LLM_STATE_FAILURE=open)"
                if self.failure == "open"
                else "operations that need it fail (LLM_STATE_FAILURE=closed)"
            )
            _log.warning("otel-llm: %s; %s, trying it again in %g s", error, then, self._backoff.pause_s)
        return self._unserved(error, local)

    def _unserved(self, error: StateUnavailableError | None, local: Callable[[], _T]) -> _T:
        last = error or self._backoff.last
        error_type = last.error_type if last is not None else "unavailable"
        guarded(semconv.instruments.state_errors.add, 1, {semconv.ERROR_TYPE: error_type})
        if self.failure == "open":
            return local()
        if error is None:
            error = StateUnavailableError(
                last.server if last is not None else self.server,
                f"not tried during a {self._backoff.pause_s:g} s back-off after {error_type}",
                error_type,
            )
        raise error

    # -- budgets

    def reserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """See :meth:`StateStore.reserve`."""
        return self._sync(
            lambda: self.remote.reserve(key, amount, limit, lapse_at, expire_at, now),
            lambda: self.local.reserve(key, amount, limit, lapse_at, expire_at, now),
        )

    def settle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """See :meth:`StateStore.settle`; a reservation made locally is settled locally."""
        if reservation.startswith(LOCAL_RESERVATION):
            return self.local.settle(key, reservation, cost, expire_at)
        return self._sync(
            lambda: self.remote.settle(key, reservation, cost, expire_at),
            lambda: self.local.settle(key, reservation, cost, expire_at),
        )

    def remaining(self, key: str, limit: int, now: float) -> int:
        """See :meth:`StateStore.remaining`; during an outage (``open``), what this process's own state says."""
        return self._sync(
            lambda: self.remote.remaining(key, limit, now),
            lambda: self.local.remaining(key, limit, now),
        )

    async def areserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """See :meth:`StateStore.reserve`."""
        return await self._async(
            lambda: self.remote.areserve(key, amount, limit, lapse_at, expire_at, now),
            lambda: self.local.reserve(key, amount, limit, lapse_at, expire_at, now),
        )

    async def asettle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """See :meth:`settle`."""
        if reservation.startswith(LOCAL_RESERVATION):
            return self.local.settle(key, reservation, cost, expire_at)
        return await self._async(
            lambda: self.remote.asettle(key, reservation, cost, expire_at),
            lambda: self.local.settle(key, reservation, cost, expire_at),
        )

    async def aremaining(self, key: str, limit: int, now: float) -> int:
        """See :meth:`remaining`."""
        return await self._async(
            lambda: self.remote.aremaining(key, limit, now),
            lambda: self.local.remaining(key, limit, now),
        )

    # -- breakers

    def breaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """See :meth:`StateStore.breaker_check`."""
        return self._sync(
            lambda: self.remote.breaker_check(key, cooldown_s, now),
            lambda: self.local.breaker_check(key, cooldown_s, now),
        )

    def breaker_success(self, key: str) -> BreakerState | None:
        """See :meth:`StateStore.breaker_success`."""
        return self._sync(lambda: self.remote.breaker_success(key), lambda: self.local.breaker_success(key))

    def breaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """See :meth:`StateStore.breaker_failure`."""
        return self._sync(
            lambda: self.remote.breaker_failure(key, threshold, cooldown_s, now),
            lambda: self.local.breaker_failure(key, threshold, cooldown_s, now),
        )

    async def abreaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """See :meth:`StateStore.breaker_check`."""
        return await self._async(
            lambda: self.remote.abreaker_check(key, cooldown_s, now),
            lambda: self.local.breaker_check(key, cooldown_s, now),
        )

    async def abreaker_success(self, key: str) -> BreakerState | None:
        """See :meth:`StateStore.breaker_success`."""
        return await self._async(lambda: self.remote.abreaker_success(key), lambda: self.local.breaker_success(key))

    async def abreaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """See :meth:`StateStore.breaker_failure`."""
        return await self._async(
            lambda: self.remote.abreaker_failure(key, threshold, cooldown_s, now),
            lambda: self.local.breaker_failure(key, threshold, cooldown_s, now),
        )

    def close(self) -> None:
        """See :meth:`StateStore.close`."""
        self.remote.close()

    async def aclose(self) -> None:
        """See :meth:`StateStore.aclose`."""
        await self.remote.aclose()


def state_store(url: str | None, failure: StateFailure = "open", local: LocalState | None = None) -> StateStore:
    """The store ``LLM_STATE_URL`` and ``LLM_STATE_FAILURE`` describe: the process's own without a URL."""
    local = local or LocalState()
    if not url:
        return local
    from ._redis_state import RedisState  # redis is imported only when a server is configured

    remote = RedisState(url)
    return SharedState(remote, local, failure, server=remote.server)


_LOCAL = LocalState()
"""This process's own state: the store without ``LLM_STATE_URL``, and what a shared one falls back on."""


@cache
def process_store(url: str | None, failure: StateFailure) -> StateStore:
    """The store of ``LLM_STATE_URL`` in this process: one per URL and failure mode, all backed by ``_LOCAL``."""
    return state_store(url, failure, _LOCAL)


def reset_breakers() -> None:
    """Close every circuit breaker of this process and forget its failures.

    For test suites (the ``otel_llm.testing.pytest_plugin`` fixtures call it
    between tests) and for an operator who knows a provider is back. Breakers
    on a shared state server are left alone: they expire there by themselves.
    """
    _LOCAL.clear_breakers()


_background: set[asyncio.Task[None]] = set()


def in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run a state operation on the running loop without waiting for it: an async call's settlement or
    breaker report, which its caller, or its stream's last chunk, need not wait for (the loop keeps
    only weak references to its tasks)."""
    task = asyncio.get_running_loop().create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)

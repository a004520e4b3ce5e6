"""Budgets and circuit breakers on a Redis server shared by every replica (SPEC §13).

Every operation is one server-side Lua script: atomic, and one round trip
(``EVALSHA``; redis-py's script objects load a script the server does not know
yet, after a restart for instance, and try again: three round trips, once).

Key layout (``otel_llm:`` is the namespace; the braces are a Redis Cluster hash
tag, so that the two keys of a budget live on one node):

- ``otel_llm:budget:{KEY}``, a hash: ``spent`` and ``reserved`` (nano-USD, the
  sum of the live reservations), ``seq`` (the last reservation number);
- ``otel_llm:budget:{KEY}:reservations``, a sorted set: a member per live
  reservation, ``SEQ:AMOUNT`` (the id handed to the caller, so that a settle
  knows the amount to release), scored by the time it lapses at.
  Both expire at the end of the budget's window (``PEXPIREAT expire_at``, by
  the server's clock); a reservation lapses by the caller's ``now``.
- ``otel_llm:breaker:KEY``, a hash: ``state`` (absent: closed), ``failures``,
  ``changed_at``. A missing key is a closed breaker with no failures: a
  success deletes the key, and checking a closed breaker writes nothing.
  Each write sets its time to live to ``breaker_idle_s`` (at least twice the
  cool-down): a breaker that nobody touched for that long is forgotten,
  closed with no failures, as after a restart of a process. Until then the
  state machine is exactly :class:`otel_llm._breaker.Breaker`'s.

Numbers that reach a Redis command from Lua are formatted with ``%d`` or
passed through as the caller's strings: Lua's default number formatting
(``%.14g``) would round amounts above 1e14 nano-USD ($100k).
"""

from __future__ import annotations

import asyncio
import math
import threading
import weakref
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript, Script
from redis.retry import Retry

from ._breaker import BreakerState
from ._errors import StateUnavailableError
from ._state import BreakerCheck, check_amount

__all__ = ["RedisState", "server_name"]

_Arg = str | int | float

# Drop the budget's lapsed reservations, then reserve unless it would not fit.
# KEYS: budget, reservations. ARGV: amount, limit, lapse_at, expire_at (ms), now.
# Returns {id or false, limit - spent - reserved}.
_RESERVE = """
local budget, reservations = KEYS[1], KEYS[2]
local amount, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local lapsed = redis.call('ZRANGEBYSCORE', reservations, '-inf', ARGV[5])
local freed = 0
for _, id in ipairs(lapsed) do
  freed = freed + tonumber(string.match(id, ':(%d+)$'))
end
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', reservations, '-inf', ARGV[5])
end
local held = redis.call('HMGET', budget, 'spent', 'reserved')
local spent = tonumber(held[1] or '0')
local reserved = tonumber(held[2] or '0') - freed
local id = false
if spent + reserved + amount <= limit then
  id = string.format('%d', redis.call('HINCRBY', budget, 'seq', 1)) .. ':' .. ARGV[1]
  redis.call('ZADD', reservations, ARGV[3], id)
  reserved = reserved + amount
end
redis.call('HSET', budget, 'reserved', string.format('%d', reserved))
redis.call('PEXPIREAT', budget, ARGV[4])
redis.call('PEXPIREAT', reservations, ARGV[4])
return {id, limit - spent - reserved}
"""

# Release the reservation if it is still held, add the real cost.
# KEYS: budget, reservations. ARGV: reservation id, cost, expire_at (ms). Returns spent + reserved.
_SETTLE = """
local budget, reservations = KEYS[1], KEYS[2]
if redis.call('ZREM', reservations, ARGV[1]) == 1 then
  redis.call('HINCRBY', budget, 'reserved', '-' .. string.match(ARGV[1], ':(%d+)$'))
end
local spent = redis.call('HINCRBY', budget, 'spent', ARGV[2])
local reserved = tonumber(redis.call('HGET', budget, 'reserved') or '0')
redis.call('PEXPIREAT', budget, ARGV[3])
redis.call('PEXPIREAT', reservations, ARGV[3])
return spent + reserved
"""

# Read only. KEYS: budget, reservations. ARGV: limit, now. Returns limit - spent - live reservations.
_REMAINING = """
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
local freed = 0
for _, id in ipairs(lapsed) do
  freed = freed + tonumber(string.match(id, ':(%d+)$'))
end
local held = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
return tonumber(ARGV[1]) - tonumber(held[1] or '0') - (tonumber(held[2] or '0') - freed)
"""

# Whether a call may try the endpoint: closed yes; open within its cool-down no; else this call
# probes (half-open). KEYS: breaker. ARGV: cooldown_s, now, ttl (ms). Returns {allowed, moved, clean}.
_BREAKER_ALLOW = """
local held = redis.call('HMGET', KEYS[1], 'state', 'failures', 'changed_at')
local state = held[1] or 'closed'
if state == 'closed' then
  return {1, false, (tonumber(held[2] or '0') == 0) and 1 or 0}
end
if tonumber(ARGV[2]) - tonumber(held[3]) < tonumber(ARGV[1]) then
  return {0, false, 0}
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'changed_at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, (state == 'open') and 'half_open' or false, 0}
"""

# The endpoint answered: closed, failures forgotten (no key). KEYS: breaker. Returns 'closed' or false.
_BREAKER_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('DEL', KEYS[1])
if state and state ~= 'closed' then
  return 'closed'
end
return false
"""

# A retryable failure. KEYS: breaker. ARGV: threshold, now, ttl (ms). Returns 'open' or false.
_BREAKER_FAILURE = """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local moved = false
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[1])) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'changed_at', ARGV[2])
  moved = 'open'
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return moved
"""

_SCRIPTS = {
    "reserve": _RESERVE,
    "settle": _SETTLE,
    "remaining": _REMAINING,
    "breaker_allow": _BREAKER_ALLOW,
    "breaker_success": _BREAKER_SUCCESS,
    "breaker_failure": _BREAKER_FAILURE,
}


class RedisState:
    """A :class:`otel_llm._state.StateStore` on a Redis server, from a ``redis://`` or ``rediss://`` URL.

    Short socket timeouts (``connect_timeout_s``, ``read_timeout_s``) and no
    retries in the client: a server that is gone costs an operation at most
    about one timeout, and :class:`otel_llm._state.SharedState` decides what
    happens then. Every client error is raised as
    :class:`StateUnavailableError`, naming the server by ``host:port``: the URL
    (it may hold a user name and password) is never shown. redis-py
    reconnects by itself once the server is back. Async operations use one
    client per event loop, since a connection cannot outlive its loop.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout_s: float = 0.25,
        read_timeout_s: float = 1.0,
        breaker_idle_s: float = 3600.0,
        namespace: str = "otel_llm:",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"a state server URL is redis://host:port/db or rediss://...; not {parts.scheme!r}://")
        self.server = server_name(url)
        """``host:port``: how messages name the server."""
        self._secrets = [unquote(s) for s in (parts.password, parts.username) if s]
        self._namespace = namespace
        self._breaker_idle_s = breaker_idle_s
        options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout_s,
            "socket_timeout": read_timeout_s,
            "decode_responses": True,
            "health_check_interval": 0,
        }
        self._client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
        self._scripts: dict[str, Script] = {name: self._client.register_script(lua) for name, lua in _SCRIPTS.items()}

        def async_client() -> redis.asyncio.Redis:
            return redis.asyncio.Redis.from_url(url, retry=redis.asyncio.retry.Retry(NoBackoff(), 0), **options)

        self._async_client = async_client  # a closure: the URL is in no attribute
        self._lock = threading.Lock()
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, dict[str, AsyncScript]]
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RedisState({self.server})"

    # -- keys

    def _budget_keys(self, key: str) -> list[str]:
        budget = f"{self._namespace}budget:{{{key}}}"
        return [budget, f"{budget}:reservations"]

    def _breaker_key(self, key: str) -> list[str]:
        return [f"{self._namespace}breaker:{key}"]

    def _ttl_ms(self, cooldown_s: float) -> int:
        return math.ceil(max(self._breaker_idle_s, 2 * cooldown_s) * 1000)

    # -- running a script

    def _call(self, name: str, keys: Sequence[str], args: Sequence[_Arg]) -> Any:
        try:
            return self._scripts[name](keys, args)
        except (redis.RedisError, OSError) as error:
            raise self._unavailable(error) from error

    async def _acall(self, name: str, keys: Sequence[str], args: Sequence[_Arg]) -> Any:
        try:
            return await self._ascripts()[name](keys, args)
        except (redis.RedisError, OSError) as error:
            raise self._unavailable(error) from error

    def _ascripts(self) -> dict[str, AsyncScript]:
        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is None:
            with self._lock:  # loops of other threads may be adding theirs
                for old in [old for old in self._async if old.is_closed()]:
                    del self._async[old]  # its client holds the loop: the weak key alone would not let go
                client = self._async_client()
                found = self._async.setdefault(
                    loop, (client, {name: client.register_script(lua) for name, lua in _SCRIPTS.items()})
                )
        return found[1]

    def _unavailable(self, error: BaseException) -> StateUnavailableError:
        reason = f"{type(error).__name__}: {error}"
        for secret in self._secrets:  # redis-py does not quote them; never let one through
            reason = reason.replace(secret, "***")
        return StateUnavailableError(self.server, reason, type(error).__name__)

    # -- budgets

    def _reserve_args(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[list[str], list[_Arg]]:
        check_amount("amount", amount)
        return self._budget_keys(key), [amount, int(limit), float(lapse_at), _ms(expire_at), float(now)]

    def reserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """See :meth:`otel_llm._state.StateStore.reserve`."""
        reservation, left = self._call("reserve", *self._reserve_args(key, amount, limit, lapse_at, expire_at, now))
        return reservation, int(left)

    async def areserve(
        self, key: str, amount: int, limit: int, lapse_at: float, expire_at: float, now: float
    ) -> tuple[str | None, int]:
        """See :meth:`otel_llm._state.StateStore.reserve`."""
        args = self._reserve_args(key, amount, limit, lapse_at, expire_at, now)
        reservation, left = await self._acall("reserve", *args)
        return reservation, int(left)

    def settle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """See :meth:`otel_llm._state.StateStore.settle`."""
        check_amount("cost", cost)
        return int(self._call("settle", self._budget_keys(key), [reservation, cost, _ms(expire_at)]))

    async def asettle(self, key: str, reservation: str, cost: int, expire_at: float) -> int:
        """See :meth:`otel_llm._state.StateStore.settle`."""
        check_amount("cost", cost)
        return int(await self._acall("settle", self._budget_keys(key), [reservation, cost, _ms(expire_at)]))

    def remaining(self, key: str, limit: int, now: float) -> int:
        """See :meth:`otel_llm._state.StateStore.remaining`."""
        return int(self._call("remaining", self._budget_keys(key), [int(limit), float(now)]))

    async def aremaining(self, key: str, limit: int, now: float) -> int:
        """See :meth:`otel_llm._state.StateStore.remaining`."""
        return int(await self._acall("remaining", self._budget_keys(key), [int(limit), float(now)]))

    # -- breakers

    def breaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """See :meth:`otel_llm._state.StateStore.breaker_check`."""
        args = [float(cooldown_s), float(now), self._ttl_ms(cooldown_s)]
        return _check(self._call("breaker_allow", self._breaker_key(key), args))

    async def abreaker_check(self, key: str, cooldown_s: float, now: float) -> BreakerCheck:
        """See :meth:`otel_llm._state.StateStore.breaker_check`."""
        args = [float(cooldown_s), float(now), self._ttl_ms(cooldown_s)]
        return _check(await self._acall("breaker_allow", self._breaker_key(key), args))

    def breaker_success(self, key: str) -> BreakerState | None:
        """See :meth:`otel_llm._state.StateStore.breaker_success`."""
        return _state(self._call("breaker_success", self._breaker_key(key), []))

    async def abreaker_success(self, key: str) -> BreakerState | None:
        """See :meth:`otel_llm._state.StateStore.breaker_success`."""
        return _state(await self._acall("breaker_success", self._breaker_key(key), []))

    def breaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """See :meth:`otel_llm._state.StateStore.breaker_failure`."""
        args = [int(threshold), float(now), self._ttl_ms(cooldown_s)]
        return _state(self._call("breaker_failure", self._breaker_key(key), args))

    async def abreaker_failure(self, key: str, threshold: int, cooldown_s: float, now: float) -> BreakerState | None:
        """See :meth:`otel_llm._state.StateStore.breaker_failure`."""
        args = [int(threshold), float(now), self._ttl_ms(cooldown_s)]
        return _state(await self._acall("breaker_failure", self._breaker_key(key), args))

    # -- closing

    def close(self) -> None:
        """Close the synchronous client's connections (they reopen if used again)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the running event loop's client."""
        found = self._async.pop(asyncio.get_running_loop(), None)
        if found is not None:
            await found[0].aclose()


def server_name(url: str) -> str:
    """``host:port`` of a state server URL: how messages name it (never with the URL's credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"[{host}]:{parts.port or 6379}" if ":" in host else f"{host}:{parts.port or 6379}"


def _ms(at: float) -> int:
    """Epoch seconds to the epoch milliseconds of ``PEXPIREAT``, rounded up: never expire early."""
    return math.ceil(at * 1000)


def _check(reply: list[Any]) -> BreakerCheck:
    allowed, moved, clean = reply
    return BreakerCheck(bool(allowed), _state(moved), bool(clean))


def _state(reply: Any) -> BreakerState | None:
    if reply in ("open", "half_open", "closed"):
        return reply  # type: ignore[no-any-return]
    return None

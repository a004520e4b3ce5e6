"""Budgets per API (``LLM_BUDGETS``): what an API may spend per calendar window.

Before each attempt its worst case is reserved: the input priced at an upper
bound of its tokens, the output at ``max_tokens`` (or the budget's
``reserve_output_tokens``). An attempt that does not fit is not sent. When
the usage arrives the reservation is settled to the real cost, so a budget is
never overspent by calls racing each other, in one process or, through a
shared state server, in every replica. A reservation never settled (its
process died) lapses after ``LLM_CALL_TIMEOUT_S``.

Amounts are integer nano-dollars, so that sums are exact on every store.
"""

from __future__ import annotations

import calendar
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from ._cost import CostFunction
from ._derived import derived
from ._errors import BudgetExceededError
from ._guard import guarded
from ._semconv import API_NAME, BUDGET_WINDOW, instruments
from ._settings import Budget, BudgetWindow, LLMSettings, api_entry, api_variable
from ._state import StateStore, in_background

__all__ = [
    "NANO_USD",
    "Clock",
    "Spending",
    "budget_for",
    "budget_key",
    "clock",
    "reachable_aliases",
    "upper_bound_cost",
    "upper_bound_tokens",
    "window_of",
]

NANO_USD = 1_000_000_000
"""Nano-dollars per dollar."""

_log = logging.getLogger("otel_llm")

Clock = Callable[[], float]
"""Wall-clock epoch seconds: calendar windows are the same in every replica."""


def window_of(window: BudgetWindow, now: float) -> tuple[str, float]:
    """The calendar window (UTC) holding ``now``: its label and when it ends."""
    moment = datetime.fromtimestamp(now, UTC)
    if window == "minute":
        start = moment.replace(second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H:%M"), start.timestamp() + 60
    if window == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H"), start.timestamp() + 3600
    if window == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start.timestamp() + 86400
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return start.strftime("%Y-%m"), start.timestamp() + days * 86400


def budget_key(api_name: str, budget: Budget, now: float) -> tuple[str, float]:
    """The store key of ``api_name``'s budget in the window holding ``now``, and when that window ends."""
    label, ends_at = window_of(budget.window, now)
    return f"budget:{api_variable(api_name).removeprefix('LLM_MODEL_').lower()}:{budget.window}:{label}", ends_at


_INPUT_FIELDS = ("messages", "input", "instructions", "tools", "functions", "response_format", "text", "prompt")
_OUTPUT_LIMITS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def upper_bound_tokens(body: Mapping[str, Any], reserve_output_tokens: int, generates: bool) -> tuple[int, int]:
    """At most how many input and output tokens a request can use.

    A token is at least one byte of text, so the UTF-8 length of what the
    request sends bounds its input tokens from above, whatever the language
    and tokenizer (for English it is about four times the real count: a
    reservation is a ceiling, and the settlement gives the difference back).
    """
    sent = {name: body[name] for name in _INPUT_FIELDS if body.get(name) is not None}
    input_tokens = len(json.dumps(sent, ensure_ascii=False, default=str).encode())
    if not generates:
        return input_tokens, 0
    for name in _OUTPUT_LIMITS:
        limit = body.get(name)
        if isinstance(limit, int) and limit > 0:
            return input_tokens, limit
    return input_tokens, reserve_output_tokens


def upper_bound_cost(cost: Callable[[int, int, int], float], input_tokens: int, output_tokens: int) -> int:
    """The worst case of an attempt, in nano-dollars (rounded up)."""
    return math.ceil(cost(input_tokens, output_tokens, 0) * NANO_USD)


def reachable_aliases(api_name: str, settings: LLMSettings) -> list[str]:
    """Every alias a call of ``api_name`` can end up on: what selects it, what a request or
    header may choose, the budget's ``then``, and their fallbacks."""
    from ._selection import allowed_aliases, split_of  # selection builds on the settings this module validates

    variable = api_variable(api_name)
    first: list[str] = []
    configured = settings.api_models.get(variable)
    split = split_of(api_name, settings)
    if configured is not None:
        first.append(configured)
    elif split is not None:
        first += split.weights
    elif settings.model_default is not None:
        first.append(settings.model_default)
    if settings.enable_llm_model_override or settings.enable_llm_model_header:
        allowed = allowed_aliases(api_name, settings)
        first += sorted(settings.endpoints) if allowed is None else sorted(allowed)
    budget = api_entry(settings.budgets, api_name)
    if budget is not None and budget.then is not None:
        first.append(budget.then)
    reachable: dict[str, None] = {}
    for alias in first:
        for name in (alias, *settings.fallback_chain(alias)):
            reachable.setdefault(name, None)
    return list(reachable)


_MAX_MEMOISED_APIS = 1024

clock: Clock = time.time
"""Where budgets read the time (tests roll a window over by replacing it)."""


def budget_for(api_name: str, settings: LLMSettings) -> Budget | None:
    """The ``LLM_BUDGETS`` entry of ``api_name``, memoised per settings: every call asks."""
    memo = derived(settings).budgets
    try:
        return memo[api_name]
    except KeyError:
        budget = api_entry(settings.budgets, api_name)
        if len(memo) < _MAX_MEMOISED_APIS:
            memo[api_name] = budget
        return budget


class Spending:
    """One call's budget: a reservation before each attempt, settled when the attempt ends.

    Sync and async calls share everything but the store's round trips. An
    async call settles in a task of its own, so that neither it nor its
    stream's last chunk waits for the state server.
    """

    __slots__ = ("_attributes", "_hold", "_lapse_s", "_store", "api_name", "budget", "limit")

    def __init__(self, api_name: str, budget: Budget, store: StateStore, lapse_s: float) -> None:
        self.api_name = api_name
        self.budget = budget
        self.limit = round(budget.usd * NANO_USD)
        self._store = store
        self._lapse_s = lapse_s
        """How long a reservation holds if never settled: the call's deadline (``LLM_CALL_TIMEOUT_S``)."""
        self._hold: tuple[str, str, int, float] | None = None  # key, reservation, amount, expire_at
        self._attributes = _gauge_attributes(api_name, budget.window)

    def _ask(self, cost: CostFunction, body: Mapping[str, Any], generates: bool) -> tuple[str, int, float, float]:
        input_tokens, output_tokens = upper_bound_tokens(body, self.budget.reserve_output_tokens, generates)
        now = clock()
        key, expire_at = budget_key(self.api_name, self.budget, now)
        return key, upper_bound_cost(cost, input_tokens, output_tokens), expire_at, now

    def reserve(self, cost: CostFunction, body: Mapping[str, Any], generates: bool) -> None:
        """Reserve the attempt's worst case; raises ``BudgetExceededError`` when it does not fit."""
        key, amount, expire_at, now = self._ask(cost, body, generates)
        reservation, remaining = self._store.reserve(key, amount, self.limit, now + self._lapse_s, expire_at, now)
        self._reserved(key, reservation, amount, expire_at, remaining)

    async def areserve(self, cost: CostFunction, body: Mapping[str, Any], generates: bool) -> None:
        key, amount, expire_at, now = self._ask(cost, body, generates)
        reservation, remaining = await self._store.areserve(
            key, amount, self.limit, now + self._lapse_s, expire_at, now
        )
        self._reserved(key, reservation, amount, expire_at, remaining)

    def _reserved(self, key: str, reservation: str | None, amount: int, expire_at: float, remaining: int) -> None:
        guarded(instruments.budget_remaining.set, remaining / NANO_USD, self._attributes)
        if reservation is None:
            raise BudgetExceededError(
                self.api_name, self.budget.usd, self.budget.window, amount / NANO_USD, remaining / NANO_USD
            )
        self._hold = (key, reservation, amount, expire_at)

    def settle(self, cost_usd: float | None, is_async: bool) -> None:
        """The attempt ended: its real cost replaces the reservation (``None``: unknown, so the worst case stays)."""
        hold, self._hold = self._hold, None
        if hold is None:
            return
        key, reservation, amount, expire_at = hold
        # The real cost counts even above the worst case (a request the estimate missed, images say):
        # the spend stays true, and the next reservations see it.
        cost = amount if cost_usd is None else round(cost_usd * NANO_USD)
        if is_async:
            in_background(self._asettle(key, reservation, cost, expire_at))
            return
        try:
            used = self._store.settle(key, reservation, cost, expire_at)
        except Exception:  # the call has its answer: a state server down (closed mode) must not take it away
            _log.warning("otel-llm: could not settle a reservation of API %r", self.api_name, exc_info=True)
            return
        guarded(instruments.budget_remaining.set, (self.limit - used) / NANO_USD, self._attributes)

    async def _asettle(self, key: str, reservation: str, cost: int, expire_at: float) -> None:
        try:
            used = await self._store.asettle(key, reservation, cost, expire_at)
        except Exception:
            _log.warning("otel-llm: could not settle a reservation of API %r", self.api_name, exc_info=True)
            return
        guarded(instruments.budget_remaining.set, (self.limit - used) / NANO_USD, self._attributes)


@lru_cache(maxsize=1024)
def _gauge_attributes(api_name: str, window: str) -> dict[str, str]:
    return {API_NAME: api_name, BUDGET_WINDOW: window}

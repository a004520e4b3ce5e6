"""Telemetry names: the GenAI semantic conventions (semconv 1.41) and ours.

The GenAI names come from ``opentelemetry-semantic-conventions``; the
``otel_llm.*`` names are this package's contract (dashboards query them).
The instruments are created once, on the global meter, at import: the API's
proxy meter forwards to whatever provider the application installs later.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, Iterable
from typing import Any, Final

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.types import Attributes

from ._version import __version__

__all__ = [
    "API_NAME",
    "ATTEMPT",
    "ATTEMPTS",
    "BREAKER_EVENT",
    "BREAKER_STATE",
    "BUDGET_EXCEEDED",
    "BUDGET_REMAINING",
    "BUDGET_WINDOW",
    "CONFIG_RELOADS",
    "COST_USD",
    "DURATION_BUCKETS",
    "ERROR_TYPE",
    "FALLBACK_EVENT",
    "FALLBACK_FROM",
    "FALLBACK_TO",
    "FALLBACK_USED",
    "MODEL_ALIAS",
    "OUTCOME",
    "RELOAD_OUTCOMES",
    "SELECTION_SOURCE",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "STATE_ERRORS",
    "TOKEN_BUCKETS",
    "WAIT_EVENT",
    "WAIT_SECONDS",
    "Instruments",
    "Totals",
    "gen_ai",
    "instruments",
    "tracer",
]

API_NAME: Final = "otel_llm.api.name"
SELECTION_SOURCE: Final = "otel_llm.selection.source"
MODEL_ALIAS: Final = "otel_llm.model.alias"
ATTEMPT: Final = "otel_llm.attempt"
ATTEMPTS: Final = "otel_llm.attempts"
FALLBACK_USED: Final = "otel_llm.fallback.used"
FALLBACK_FROM: Final = "otel_llm.fallback.from"
FALLBACK_TO: Final = "otel_llm.fallback.to"
COST_USD: Final = "otel_llm.cost.usd"
OUTCOME: Final = "otel_llm.outcome"
BREAKER_STATE: Final = "otel_llm.breaker.state"
WAIT_SECONDS: Final = "otel_llm.wait.seconds"
BUDGET_WINDOW: Final = "otel_llm.budget.window"

# Span events on the call span.
FALLBACK_EVENT: Final = "otel_llm.fallback"
WAIT_EVENT: Final = "otel_llm.retry.wait"
BREAKER_EVENT: Final = "otel_llm.breaker"

CALL_DURATION: Final = "otel_llm.call.duration"
FALLBACKS: Final = "otel_llm.fallbacks"
BREAKER_TRANSITIONS: Final = "otel_llm.breaker.transitions"
CONFIG_RELOADS: Final = "otel_llm.config.reloads"
BUDGET_REMAINING: Final = "otel_llm.budget.remaining"
BUDGET_EXCEEDED: Final = "otel_llm.budget.exceeded"
STATE_ERRORS: Final = "otel_llm.state.errors"

RELOAD_OUTCOMES: Final = {outcome: {OUTCOME: outcome} for outcome in ("ok", "rejected")}
"""The attributes of ``otel_llm.config.reloads``, built once."""

# Bucket boundaries advised by the GenAI semantic conventions.
DURATION_BUCKETS: Final = tuple(0.01 * 2**i for i in range(14))  # 0.01 ... 81.92 s
TOKEN_BUCKETS: Final = tuple(4**i for i in range(14))  # 1 ... 67108864

_SCOPE = "otel_llm"


class Totals:
    """Monotonic sums per attribute set, kept here and read by the SDK at export time.

    What an observable counter reports: a call pays one addition under a lock
    instead of a measurement (whose attributes the SDK would clean, copy and
    hash on every call). Attribute sets past ``limit`` go to one overflow set,
    as the SDK does with its own cardinality limit.
    """

    OVERFLOW: Final[Attributes] = {"otel.metric.overflow": True}

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._sums: dict[Hashable, list[Any]] = {}  # key -> [total, attributes]

    def add(self, key: Hashable, amount: float, attributes: Attributes) -> None:
        """Add ``amount`` to the sum of ``attributes``, which ``key`` names (cheaper to hash than a dict).

        A sum only grows: a negative or non-finite amount is dropped, as a counter's would be.
        """
        if not 0 <= amount < math.inf:
            return
        with self._lock:
            entry = self._sums.get(key)
            if entry is None:
                if len(self._sums) >= self._limit:
                    key, attributes = "otel.metric.overflow", self.OVERFLOW
                entry = self._sums.setdefault(key, [0.0, attributes])
            entry[0] += amount

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            return [Observation(total, attributes) for total, attributes in self._sums.values()]


_MAX_COST_SETS = 4096
"""Attribute sets of ``otel_llm.cost.usd`` (APIs x aliases) summed in the process."""


class Instruments:
    """Every metric instrument of the package, created once."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.operation_duration = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration, per attempt.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_usage = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used, per attempt.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.time_to_first_chunk = meter.create_histogram(
            gen_ai_metrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the request to the first chunk of a streamed response.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.call_duration = meter.create_histogram(
            CALL_DURATION,
            unit="s",
            description="Duration of a logical LLM call, all attempts and fallbacks included.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.cost = Totals(_MAX_COST_SETS)
        meter.create_observable_counter(
            COST_USD, [self.cost.observe], unit="{USD}", description="Cost of the LLM calls in US dollars."
        )
        self.fallbacks = meter.create_counter(
            FALLBACKS, unit="{fallback}", description="Moves from a failing model to the next in its chain."
        )
        self.breaker_transitions = meter.create_counter(
            BREAKER_TRANSITIONS, unit="{transition}", description="Circuit breaker state changes, per alias."
        )
        self.config_reloads = meter.create_counter(
            CONFIG_RELOADS, unit="{reload}", description="Tries to load a changed configuration, by outcome."
        )
        self.budget_remaining = meter.create_gauge(
            BUDGET_REMAINING, unit="{USD}", description="What an API may still spend in its budget's window."
        )
        self.budget_exceeded = meter.create_counter(
            BUDGET_EXCEEDED,
            unit="{call}",
            description="Attempts that did not fit their API's budget: redirected to its 'then' alias, or rejected.",
        )
        self.state_errors = meter.create_counter(
            STATE_ERRORS,
            unit="{error}",
            description="Budget and breaker operations the shared state server did not serve, by error type.",
        )


tracer: Final = trace.get_tracer(_SCOPE, __version__)
instruments: Final = Instruments(metrics.get_meter(_SCOPE, __version__))

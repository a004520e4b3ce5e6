"""Telemetry never fails a call (SPEC §4).

Recording runs inside the caller's call: an exception in it (a span processor
or metric reader that raises, a response of an unexpected shape) must not
replace the provider's answer. Each such failure is logged once per place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, overload

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.util._decorator import _agnosticcontextmanager

__all__ = ["NO_SPAN", "GuardedMeterProvider", "GuardedTracerProvider", "guarded", "report_failure"]

_T = TypeVar("_T")
_log = logging.getLogger("otel_llm")
_reported: set[str] = set()


@overload
def guarded(record: Callable[..., _T], *args: Any, default: _T, **kwargs: Any) -> _T: ...
@overload
def guarded(record: Callable[..., None], *args: Any, **kwargs: Any) -> None: ...
def guarded(record: Callable[..., Any], *args: Any, default: Any = None, **kwargs: Any) -> Any:
    """``record(*args, **kwargs)``, or ``default`` when it raised (logged the first time for that function)."""
    try:
        return record(*args, **kwargs)
    except Exception:
        report_failure(record)
        return default


def report_failure(record: Callable[..., Any]) -> None:
    """Log the exception being handled, raised by ``record``: the first time for that function.

    For a hot path that catches the exception itself instead of paying for :func:`guarded`'s call.
    """
    where = getattr(record, "__qualname__", repr(record))
    if where not in _reported:
        _reported.add(where)
        _log.exception("otel-llm: recording telemetry failed in %s; the call goes on without it", where)


# -- the providers given to the httpx2 instrumentation ------------------------------
#
# The HTTP span and metric are recorded inside the request, by a library that
# lets a raising span processor or metric pipeline through: it would fail the
# request. Its tracer and meter are handed out through these guards.


class GuardedTracerProvider(trace.TracerProvider):
    """Tracers whose spans start and end without ever raising."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _GuardedTracer(self._provider.get_tracer(*args, **kwargs))


NO_SPAN: trace.Span = trace.INVALID_SPAN


class _GuardedTracer(trace.Tracer):
    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        span = guarded(self._tracer.start_span, *args, default=NO_SPAN, **kwargs)
        return _GuardedSpan(span)  # type: ignore[return-value]  # a proxy of the span

    @_agnosticcontextmanager
    def start_as_current_span(
        self, name: str, *args: Any, end_on_exit: bool = True, **kwargs: Any
    ) -> Iterator[trace.Span]:
        # Only starting and ending a span reach the span processors. Ended here,
        # under the guard, the span itself can be handed out instead of a proxy
        # whose every method call (the instrumentation makes a dozen) costs.
        span = guarded(self._tracer.start_span, name, *args, default=NO_SPAN, **kwargs)
        try:
            with trace.use_span(span) as current:
                yield current
        finally:
            if end_on_exit:
                guarded(span.end)


class _GuardedSpan(wrapt.ObjectProxy):  # type: ignore[type-arg]
    def end(self, end_time: int | None = None) -> None:
        guarded(self.__wrapped__.end, end_time)


class GuardedMeterProvider(metrics.MeterProvider):
    """Meters whose histograms record without ever raising."""

    def __init__(self, provider: metrics.MeterProvider) -> None:
        self._provider = provider

    def get_meter(self, *args: Any, **kwargs: Any) -> metrics.Meter:
        return _GuardedMeter(self._provider.get_meter(*args, **kwargs))  # type: ignore[return-value]


class _GuardedMeter(wrapt.ObjectProxy):  # type: ignore[type-arg]
    # The instrumentation records one histogram (the request duration).
    def create_histogram(self, *args: Any, **kwargs: Any) -> metrics.Histogram:
        return _GuardedHistogram(self.__wrapped__.create_histogram(*args, **kwargs))  # type: ignore[return-value]


class _GuardedHistogram(wrapt.ObjectProxy):  # type: ignore[type-arg]
    def record(self, *args: Any, **kwargs: Any) -> None:
        guarded(self.__wrapped__.record, *args, **kwargs)

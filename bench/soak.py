"""Soak: logical calls, 8 at a time, in two phases against the embedded server.

    python bench/soak.py [--calls 1000] [--hung-calls 300] [--workers 8] [--seed 1]
                         [--call-timeout 5] [--attempt-timeout 1]

**flaky**: the server faults 30 % of the primary's responses at random (429,
500, 503, a dropped connection, a 2 s delay) and 5 % of the fallback's. Every
call must end with a response or a typed error (none lost); the fallbacks the
SDK counted (``otel_llm.fallbacks``) must equal the ones the server saw: the
calls (told apart by their W3C trace id) that reached the fallback model.

**hung**: the primary accepts every request and never answers. With
``LLM_ATTEMPT_TIMEOUT_S`` set, at least 99 % of the calls are answered (by the
fallback: the primary's breaker opens, and lets one probe through per
cool-down), and none takes longer than ``LLM_CALL_TIMEOUT_S`` + 0.1 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm
from otel_llm import LLMSettings, get_llm_client_smart
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]
FAULTS = [Fault.status(429), Fault.status(500), Fault.status(503), Fault.drop(), Fault.delay(2.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="calls of the flaky phase (default: %(default)s)")
    parser.add_argument("--hung-calls", type=int, default=300, help="calls of the hung phase (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--call-timeout", type=float, default=5.0, help="LLM_CALL_TIMEOUT_S (default: %(default)s)")
    parser.add_argument(
        "--attempt-timeout",
        type=float,
        default=1.0,
        help="LLM_ATTEMPT_TIMEOUT_S of the hung phase (default: %(default)s)",
    )
    args = parser.parse_args()

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    os.environ["SOAK_KEY"] = "soak-key"

    passed = True
    with MockLLMServer() as server:
        models = {
            alias: {
                "provider": "openai",
                "model": f"{alias}-model",
                "base_url": server.base_url,
                "api_key_env": "SOAK_KEY",
            }
            for alias in ("primary", "fallback")
        }
        settings = LLMSettings(
            models=models,
            model_default="primary",
            fallbacks={"primary": ["fallback"]},
            prices={"primary-model": {"input": 1, "output": 2}, "fallback-model": {"input": 1, "output": 2}},
            call_timeout_s=args.call_timeout,
            retry_max_wait_s=0.5,
        )

        server.set_fault_rate("primary-model", 0.30, FAULTS, seed=args.seed)
        server.set_fault_rate("fallback-model", 0.05, FAULTS, seed=args.seed + 1)
        result = _phase(server, settings, spans, args.calls, args.workers)
        sdk_fallbacks = _counter_total(reader, "otel_llm.fallbacks")
        # A call that fell back sent the fallback model at least one request; its trace id tells calls apart.
        server_fallbacks = len({_trace_id(r.headers) for r in server.requests if r.model == "fallback-model"})
        print(f"fallbacks:             otel_llm.fallbacks {sdk_fallbacks:.0f}, server saw {server_fallbacks}")
        passed &= _report(
            "flaky primary",
            result,
            args.call_timeout,
            {"fallback counter equals the server's count": sdk_fallbacks == server_fallbacks},
        )

        server.reset()
        otel_llm.reset_breakers()
        server.set_fault_rate("primary-model", 1.0, [Fault.hang()])
        hung = settings.model_copy(update={"attempt_timeout_s": args.attempt_timeout})
        result = _phase(server, hung, spans, args.hung_calls, args.workers)
        by_fallback = sum(1 for span in result.calls if span.attributes.get("otel_llm.model.alias") == "fallback")
        print(f"answered by fallback:  {by_fallback} of {len(result.calls)}")
        passed &= _report(
            f"hung primary, LLM_ATTEMPT_TIMEOUT_S {args.attempt_timeout:g} s", result, args.call_timeout, {}
        )
    raise SystemExit(0 if passed else 1)


@dataclass
class _Result:
    outcomes: list[str]
    durations: list[float]
    """Sorted."""
    calls: list[ReadableSpan]
    """The call spans: one per call that was recorded."""
    requests: int
    wall: float


def _phase(
    server: MockLLMServer, settings: LLMSettings, spans: InMemorySpanExporter, calls: int, workers: int
) -> _Result:
    spans.clear()

    def one_call(index: int) -> tuple[str, float]:
        start = time.monotonic()
        try:
            get_llm_client_smart("soak", settings=settings).chat.completions.create(messages=MESSAGES)
            outcome = "ok"
        except openai.APIError as error:  # a typed error: reported, not lost
            outcome = type(error).__name__
        return outcome, time.monotonic() - start

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one_call, range(calls)))
    wall = time.monotonic() - started
    call_spans = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.INTERNAL]
    return _Result(
        [outcome for outcome, _ in results],
        sorted(duration for _, duration in results),
        call_spans,
        len(server.requests),
        wall,
    )


def _report(name: str, result: _Result, call_timeout: float, more_checks: dict[str, bool]) -> bool:
    calls = len(result.outcomes)
    attempts = [s.attributes["otel_llm.attempts"] for s in result.calls]
    durations = result.durations
    success = result.outcomes.count("ok") / calls
    print(f"== {name}: {calls} calls, {result.wall:.1f} s; {result.requests} upstream requests")
    print(f"success rate:          {success:.2%}  ({', '.join(_errors(result.outcomes)) or 'no errors'})")
    print(f"attempts per call:     mean {statistics.mean(attempts):.2f}, max {max(attempts)}")
    print(
        f"call time:             p50 {_quantile(durations, 0.5) * 1000:.0f} ms, "
        f"p95 {_quantile(durations, 0.95) * 1000:.0f} ms, max {durations[-1] * 1000:.0f} ms "
        f"(LLM_CALL_TIMEOUT_S {call_timeout:g} s)"
    )
    checks = {
        "no call lost": len(result.calls) == calls,
        "success >= 99 %": success >= 0.99,
        "no call over the deadline by more than 100 ms": durations[-1] <= call_timeout + 0.1,
        **more_checks,
    }
    for check, passed in checks.items():
        print(f"  {'ok    ' if passed else 'FAILED'} {check}")
    return all(checks.values())


def _counter_total(reader: InMemoryMetricReader, name: str) -> float:
    data = reader.get_metrics_data()
    return sum(
        point.value
        for resource_metrics in (data.resource_metrics if data else [])
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    )


def _trace_id(headers: dict[str, str]) -> str:
    return headers.get("traceparent", "").split("-")[1]


def _quantile(values: list[float], q: float) -> float:
    return values[min(int(q * len(values)), len(values) - 1)]


def _errors(outcomes: list[str]) -> list[str]:
    return [f"{outcomes.count(name)} {name}" for name in sorted(set(outcomes) - {"ok"})]


if __name__ == "__main__":
    main()

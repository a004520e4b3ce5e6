"""Soak: 1,000 logical calls, 8 at a time, against a flaky primary and a mostly healthy fallback.

    python bench/soak.py [--calls 1000] [--workers 8] [--seed 1] [--call-timeout 5]

The embedded server faults 30 % of the primary's responses at random (429,
500, 503, a dropped connection, a 2 s delay) and 5 % of the fallback's. Every
call must end with a response or a typed error (none lost); the fallbacks the
SDK counted (``otel_llm.fallbacks``) must equal the ones the server saw: the
calls (told apart by their W3C trace id) that reached the fallback model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm import LLMSettings, get_llm_client_smart
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]
FAULTS = [Fault.status(429), Fault.status(500), Fault.status(503), Fault.drop(), Fault.delay(2.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--call-timeout", type=float, default=5.0, help="LLM_CALL_TIMEOUT_S (default: %(default)s)")
    args = parser.parse_args()

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    os.environ["SOAK_KEY"] = "soak-key"

    with MockLLMServer() as server:
        server.set_fault_rate("primary-model", 0.30, FAULTS, seed=args.seed)
        server.set_fault_rate("fallback-model", 0.05, FAULTS, seed=args.seed + 1)
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

        def one_call(index: int) -> tuple[str, float]:
            start = time.monotonic()
            try:
                get_llm_client_smart("soak", settings=settings).chat.completions.create(messages=MESSAGES)
                outcome = "ok"
            except openai.APIError as error:  # a typed error: reported, not lost
                outcome = type(error).__name__
            return outcome, time.monotonic() - start

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(one_call, range(args.calls)))
        wall = time.monotonic() - started
        requests = server.requests

    outcomes = [outcome for outcome, _ in results]
    durations = sorted(duration for _, duration in results)
    calls = [s for s in spans.get_finished_spans() if s.kind is trace.SpanKind.INTERNAL]
    attempts = [s.attributes["otel_llm.attempts"] for s in calls]
    sdk_fallbacks = _counter_total(reader, "otel_llm.fallbacks")
    # A call that fell back sent the fallback model at least one request; its trace id tells calls apart.
    server_fallbacks = len({_trace_id(r.headers) for r in requests if r.model == "fallback-model"})

    lost = args.calls - len(results)
    success = outcomes.count("ok") / args.calls
    slowest = durations[-1]
    print(f"{args.calls} calls, {args.workers} at a time, {wall:.1f} s; {len(requests)} upstream requests")
    print(f"calls lost:            {lost}")
    print(f"success rate:          {success:.2%}  ({', '.join(_errors(outcomes)) or 'no errors'})")
    print(f"attempts per call:     mean {statistics.mean(attempts):.2f}, max {max(attempts)}")
    print(
        f"call time:             p50 {_quantile(durations, 0.5) * 1000:.0f} ms, "
        f"p95 {_quantile(durations, 0.95) * 1000:.0f} ms, max {slowest * 1000:.0f} ms "
        f"(LLM_CALL_TIMEOUT_S {args.call_timeout:g} s)"
    )
    print(f"fallbacks:             otel_llm.fallbacks {sdk_fallbacks:.0f}, server saw {server_fallbacks}")
    checks = {
        "no call lost": lost == 0,
        "success >= 99 %": success >= 0.99,
        "no call over the deadline by more than 100 ms": slowest <= args.call_timeout + 0.1,
        "fallback counter equals the server's count": sdk_fallbacks == server_fallbacks,
    }
    for name, passed in checks.items():
        print(f"  {'ok    ' if passed else 'FAILED'} {name}")
    raise SystemExit(0 if all(checks.values()) else 1)


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

"""What the OpenTelemetry SDK itself costs per span and per measurement, in instructions under callgrind.

    python bench/bench_sdk_costs.py [--calls 1000 5000] [--jobs 2]

Against a mock that answers in a millisecond, most of what otel-llm adds to a
call is the SDK's work for the spans and measurements SPEC §6 asks for
(``bench_instructions.py --no-sdk`` splits it off). This prints that work
operation by operation, with the providers a service has (a
BatchSpanProcessor whose exporter drops the batches, a metric reader): each
operation runs N1 and then N2 times in a process of its own, and
(total(N2) - total(N1)) / (N2 - N1) is one operation, start-up cancelled out.
The attribute sets are the shapes otel-llm records (five metric attributes,
string values). Run it under two SDK versions to see what an upgrade costs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from _harness import callgrind_instructions, versions

METRIC_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4.1-mini",
    "otel_llm.api.name": "keywords",
    "otel_llm.model.alias": "mini",
}
SPAN_ATTRIBUTES: dict[str, str | int] = {
    **METRIC_ATTRIBUTES,
    "server.address": "api.openai.com",
    "server.port": 443,
    "otel_llm.attempt": 1,
}
OPERATIONS = (
    "span",
    "span, 8 attributes",
    "histogram record, 5 attributes",
    "histogram record, 5 attributes, exemplar",
    "counter add, 5 attributes",
)


def _run(operation: str, count: int) -> None:
    """The measured process: ``count`` operations, after a few to warm up."""
    from _harness import install_sdk
    from opentelemetry import metrics, trace

    provider, _, _ = install_sdk()
    tracer = trace.get_tracer("bench")
    meter = metrics.get_meter("bench")
    histogram = meter.create_histogram("bench.duration", unit="s")
    counter = meter.create_counter("bench.calls")
    sampled = trace.set_span_in_context(tracer.start_span("parent"))  # exemplars sample under a sampled span
    operations: dict[str, Callable[[], object]] = {
        "span": lambda: tracer.start_span("chat keywords").end(),
        "span, 8 attributes": lambda: tracer.start_span("chat keywords", attributes=SPAN_ATTRIBUTES).end(),
        "histogram record, 5 attributes": lambda: histogram.record(0.5, METRIC_ATTRIBUTES),
        "histogram record, 5 attributes, exemplar": lambda: histogram.record(0.5, METRIC_ATTRIBUTES, sampled),
        "counter add, 5 attributes": lambda: counter.add(1, METRIC_ATTRIBUTES),
    }
    act = operations[operation]
    for _ in range(10):
        act()
    for _ in range(count):
        act()
    provider.shutdown()


def _instructions(operation: str, count: int, seed: int) -> int:
    return callgrind_instructions([sys.executable, __file__, "--child", operation, str(count)], seed)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _run(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", nargs=2, type=int, default=[1000, 5000], metavar=("N1", "N2"))
    parser.add_argument("--jobs", type=int, default=2, help="callgrind processes at once")
    args = parser.parse_args()
    first, second = args.calls
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = {
            (operation, count): pool.submit(_instructions, operation, count, 0)
            for operation in OPERATIONS
            for count in (first, second)
        }
        print(f"{versions()}; instructions per operation, (N{second} - N{first}) / {second - first}, callgrind")
        per_operation = {
            operation: (runs[operation, second].result() - runs[operation, first].result()) / (second - first)
            for operation in OPERATIONS
        }
    for operation, instructions in per_operation.items():
        print(f"{operation:<42} {instructions / 1e3:8.1f} k")
    per_attribute = (per_operation["span, 8 attributes"] - per_operation["span"]) / len(SPAN_ATTRIBUTES)
    print(f"{'span attribute (from the two span rows)':<42} {per_attribute / 1e3:8.1f} k")


if __name__ == "__main__":
    main()

"""Memory over many calls: does the resident set stay flat once warm?

    python bench/bench_memory.py [--calls 50000] [--warmup 5000] [--stream-calls 10000]
                                 [--variants raw lean default] [--trace]

Each variant (the raw ``openai`` client for reference; otel-llm with
``LLM_HTTP_SPANS=false``; otel-llm by default) makes its calls in a process of
its own, against the embedded server in another process, with real
OpenTelemetry SDK providers (a BatchSpanProcessor whose exporter drops the
batches, a metric reader collected at each sample as a periodic one would be).
The resident set size (``/proc/self/statm``) is read after the warm-up and at
evenly spaced points up to the last call; the growth from the warm-up to the
end must stay under 5 MB (issue 12). Non-streamed calls first, then streams
(fewer: the raw client opens a new connection for each stream).

``--variants`` can add the references (``httpx2``: the raw client with its HTTP
client instrumented; ``openai-v2``: the official instrumentation).
``--trace`` also runs :mod:`tracemalloc` from the end of the warm-up (which
slows the calls and grows the process itself) and prints the source lines
whose allocations still alive at the end grew the most: where a leak is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tracemalloc

from _harness import REFERENCES, VARIANTS, install_sdk, sdk_call, server_process

GROWTH_LIMIT_MB = 5.0
SAMPLES = 9  # after the warm-up, then evenly up to the last call
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def resident_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES / 1e6


def _measure(variant: str, kind: str, calls: int, warmup: int, base_url: str, trace_lines: int) -> None:
    """The measured process: prints one JSON line, ``[calls made, resident MB]`` pairs and the growing lines."""
    reader = install_sdk()[2]
    call = sdk_call(variant, kind, base_url)
    for _ in range(warmup):
        call()
    if trace_lines:
        tracemalloc.start()
    samples = []
    done = 0
    for sample in range(SAMPLES):
        target = warmup + (calls - warmup) * sample // (SAMPLES - 1)
        for _ in range(target - done):
            call()
        done = target
        reader.get_metrics_data()
        samples.append((done, resident_mb()))
    growing = []
    if trace_lines:
        snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
        alive_mb = sum(trace.size for trace in snapshot.traces) / 1e6
        growing = [f"allocated since the warm-up and still alive: {alive_mb:.2f} MB, most by:"]
        growing += [str(statistic) for statistic in snapshot.statistics("lineno")[:trace_lines]]
    print(json.dumps({"samples": samples, "growing": growing}))


def _run(variant: str, kind: str, calls: int, warmup: int, base_url: str, trace_lines: int) -> dict[str, list]:
    child = [sys.executable, __file__, "--child", variant, kind, str(calls), str(warmup), base_url, str(trace_lines)]
    output = subprocess.run(child, check=True, capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        variant, kind, calls, warmup, base_url, trace_lines = sys.argv[2:8]
        _measure(variant, kind, int(calls), int(warmup), base_url, int(trace_lines))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50_000, help="non-streamed calls, warm-up included")
    parser.add_argument("--warmup", type=int, default=5_000, help="calls before the first sample")
    parser.add_argument("--stream-calls", type=int, default=10_000, help="streams, warm-up included (0: none)")
    parser.add_argument("--stream-warmup", type=int, default=1_000)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS + REFERENCES, default=list(VARIANTS))
    parser.add_argument("--trace", action="store_true", help="print the 15 lines that allocated the most still alive")
    args = parser.parse_args()
    runs = [("chat", args.calls, args.warmup), ("stream", args.stream_calls, args.stream_warmup)]
    passed = True
    with server_process(reply_words=20) as base_url:
        for kind, calls, warmup in runs:
            if calls <= warmup:
                continue
            print(f"{kind}: {calls:,} calls, resident set size (MB) after {warmup:,} and at {SAMPLES - 1} points after")
            for variant in args.variants:
                result = _run(variant, kind, calls, warmup, base_url, 15 if args.trace else 0)
                sizes = [size for _, size in result["samples"]]
                growth = sizes[-1] - sizes[0]
                verdict = ""
                if variant in VARIANTS[1:]:  # otel-llm's
                    verdict = f"  under {GROWTH_LIMIT_MB:g} MB: {'ok' if growth < GROWTH_LIMIT_MB else 'MISSED'}"
                    passed &= growth < GROWTH_LIMIT_MB
                print(f"  {variant:<9} {' '.join(f'{size:6.1f}' for size in sizes)}  growth {growth:+5.1f} MB{verdict}")
                for line in result["growing"]:
                    print(f"      {line}")
    print("memory flat (otel-llm's growth under 5 MB in every run):", "ok" if passed else "MISSED")


if __name__ == "__main__":
    main()

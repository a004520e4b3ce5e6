"""Instructions per call under ``valgrind --tool=callgrind``: otel-llm against the raw SDK.

    python bench/bench_instructions.py [--kinds chat stream responses] [--calls 10 40] [--jobs 2]
                                       [--variants raw lean default httpx2 openai-v2]
    python bench/bench_instructions.py --profile lean [--kinds chat]
    python bench/bench_instructions.py --no-sdk

Timings on a shared machine drown a change of a few percent; instruction
counts do not: the same program with the same inputs executes the same
instructions, whatever else the machine does. Each variant (the raw ``openai``
client, otel-llm with ``LLM_HTTP_SPANS=false``, otel-llm by default) makes N1
and then N2 calls of each kind in a process of its own under callgrind,
against the embedded server in another process (not counted), with the real
OpenTelemetry SDK providers the timing benchmarks install (spans batched to an
exporter that drops them, a metric reader); (total(N2) - total(N1)) / (N2 - N1) is
the cost of one call, start-up and imports cancelled out. The hash seed is
fixed (it decides dict layouts, so counts move by about half a percent from
one seed to another) and the start-up heap is frozen out of the garbage
collector's work. A run takes minutes.

``--variants`` adds the references: ``httpx2`` (the raw client with its HTTP
client instrumented) and ``openai-v2`` (the official instrumentation, which
needs ``pip install -e '.[bench]'``; its streams ask for the usage chunk).

``--no-sdk`` leaves the OpenTelemetry API's no-op providers in place, so
that what is left above raw is otel-llm's own work: the difference to a run
with the SDK is what the SDK's spans and measurements cost.

``--profile VARIANT`` says where they go, in Python terms: the same loop runs
under cProfile for VARIANT and for the raw client, and the functions whose
calls differ are listed by the calls they add per LLM call (call counts are
exact where cProfile's times are not; a Python function call with its body
costs on the order of a thousand instructions).
"""

from __future__ import annotations

import argparse
import gc
import pstats
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _harness import (
    KINDS,
    REFERENCES,
    VARIANTS,
    callgrind_instructions,
    install_sdk,
    sdk_call,
    server_process,
    versions,
)


def _calls(variant: str, kind: str, count: int, base_url: str, sdk: bool) -> None:
    """The measured process: ``count`` calls (after three to warm up), then the spans flushed.

    ``sdk``: with the SDK's providers installed (else the API's no-op ones stay).
    """
    provider = install_sdk()[0] if sdk else None
    call = sdk_call(variant, kind, base_url)
    for _ in range(3):
        call()
    # Keep the start-up heap out of every later collection: else the size of
    # what was imported, not the calls, decides what a collection costs.
    gc.collect()
    gc.freeze()
    for _ in range(count):
        call()
    if provider is not None:
        provider.shutdown()  # the batched spans exported


def _child(variant: str, kind: str, count: int, base_url: str, sdk: bool = True) -> list[str]:
    return [__file__, "--child", variant, kind, str(count), base_url, "sdk" if sdk else "no-sdk"]


def _instructions(variant: str, kind: str, count: int, base_url: str, seed: int, sdk: bool) -> int:
    return callgrind_instructions([sys.executable, *_child(variant, kind, count, base_url, sdk)], seed)


_ADDRESS = re.compile(r" at 0x[0-9a-f]+")


def _profile(variant: str, kind: str, count: int, base_url: str) -> dict[tuple[str, int, str], int]:
    """Calls per function over ``count`` LLM calls of ``variant``, in a process of its own."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "profile"
        profiler = [sys.executable, "-m", "cProfile", "-o", str(out)]
        subprocess.run([*profiler, *_child(variant, kind, count, base_url)], check=True)
        stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    counts: dict[tuple[str, int, str], int] = {}
    for (file, line, name), (_, calls, *_) in stats.items():
        function = (file.rpartition("site-packages/")[2], line, _ADDRESS.sub("", name))  # builtins: no address
        counts[function] = counts.get(function, 0) + calls
    return counts


def _print_profile(variant: str, kind: str, counts: tuple[int, int], base_url: str, rows: int = 200) -> None:
    """The functions whose calls per LLM call differ between ``variant`` and the raw client (N2 - N1 again)."""
    first, second = counts
    per_call: dict[tuple[str, int, str], float] = {}
    for name, sign in ((variant, 1), ("raw", -1)):
        low, high = _profile(name, kind, first, base_url), _profile(name, kind, second, base_url)
        for function in high.keys() | low.keys():
            extra = (high.get(function, 0) - low.get(function, 0)) / (second - first)
            per_call[function] = per_call.get(function, 0.0) + sign * extra
    differing = sorted((calls, function) for function, calls in per_call.items() if abs(calls) > 0.01)
    print(f"{kind}: {variant} makes {sum(c for c, _ in differing):.0f} more function calls per LLM call than raw")
    for calls, (file, line, name) in sorted(differing, key=lambda row: -abs(row[0]))[:rows]:
        print(f"{calls:8.1f}  {file}:{line} {name}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        variant, kind, count, base_url, providers = sys.argv[2:7]
        _calls(variant, kind, int(count), base_url, providers == "sdk")
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--calls", nargs=2, type=int, default=[10, 40], metavar=("N1", "N2"))
    parser.add_argument("--jobs", type=int, default=2, help="callgrind processes at once")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS + REFERENCES, default=list(VARIANTS))
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="PYTHONHASHSEED of the measured processes (another seed moves counts ~0.5%%)",
    )
    parser.add_argument("--profile", choices=VARIANTS[1:], help="list the function calls VARIANT adds to raw's")
    parser.add_argument("--no-sdk", action="store_true", help="keep the API's no-op providers: otel-llm's own work")
    args = parser.parse_args()
    first, second = args.calls
    variants = ["raw", *(variant for variant in args.variants if variant != "raw")]  # the ratios are to raw
    if args.profile:
        with server_process(reply_words=20) as base_url:
            for kind in args.kinds:
                _print_profile(args.profile, kind, (first, second), base_url)
        return
    sdk = not args.no_sdk
    with server_process(reply_words=20) as base_url, ThreadPoolExecutor(args.jobs) as pool:
        runs = {
            (kind, variant, count): pool.submit(_instructions, variant, kind, count, base_url, args.seed, sdk)
            for kind in args.kinds
            for variant in variants
            for count in (first, second)
        }
        providers = "the SDK's providers" if sdk else "the API's no-op providers"
        print(f"{versions()}; instructions per call, (N{second} - N{first}) / {second - first}, callgrind, {providers}")
        for kind in args.kinds:
            per_call = {
                variant: (runs[kind, variant, second].result() - runs[kind, variant, first].result()) / (second - first)
                for variant in variants
            }
            raw = per_call["raw"]
            cells = "  ".join(
                f"{variant} {per_call[variant] / 1e6:7.3f} M ({per_call[variant] / raw:.3f}x)" for variant in variants
            )
            print(f"{kind:<10} {cells}")


if __name__ == "__main__":
    main()

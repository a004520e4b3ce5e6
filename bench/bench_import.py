"""Start-up cost of ``import otel_llm`` against ``import openai``, measured side by side in one run.

    python bench/bench_import.py [--runs 21]

Each round starts one fresh interpreter per statement (``pass``, ``import
openai``, ``import otel_llm``), in an order rotated from round to round so that
the machine's drift falls on all three, and times it from the outside: wall
time, and the CPU time (user + system) the child used, which another load on
the machine inflates less. Prints the medians of each, and otel-llm's extra
time over ``openai`` as the median of the per-round differences, with
quartiles. The goal is at most 150 ms of wall time.

The interpreters run in a temporary folder, so they import the installed
``otel_llm`` (not a checkout's source in the working directory), after one
untimed run each that writes the bytecode caches. Where the time goes:
``python -X importtime -c "import otel_llm" 2> importtime.txt``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

STATEMENTS = {"interpreter": "pass", "import openai": "import openai", "import otel_llm": "import otel_llm"}
GOAL_MS = 150.0


def child_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_ms(statement: str, folder: str, environment: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU milliseconds of one fresh interpreter running ``statement``."""
    cpu_before, start = child_cpu_s(), time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=folder, env=environment, check=True)
    return (time.perf_counter() - start) * 1000, (child_cpu_s() - cpu_before) * 1000


def differences(ours: list[float], theirs: list[float]) -> list[float]:
    """Per-round differences: the quartiles of ``ours - theirs``."""
    return statistics.quantiles([a - b for a, b in zip(ours, theirs)], n=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21, help="rounds (at least 15 on a noisy machine)")
    args = parser.parse_args()

    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    wall: dict[str, list[float]] = {label: [] for label in STATEMENTS}
    cpu: dict[str, list[float]] = {label: [] for label in STATEMENTS}
    with tempfile.TemporaryDirectory() as folder:
        for statement in STATEMENTS.values():
            timed_ms(statement, folder, environment)
        labels = list(STATEMENTS)
        for round_number in range(args.runs):
            shift = round_number % len(labels)
            for label in labels[shift:] + labels[:shift]:
                wall_ms, cpu_ms = timed_ms(STATEMENTS[label], folder, environment)
                wall[label].append(wall_ms)
                cpu[label].append(cpu_ms)

    print(f"python {sys.version.split()[0]}, {args.runs} rounds, a fresh interpreter each; medians in ms:")
    print(f"{'':<20}{'wall':>9}{'cpu':>9}")
    for label in STATEMENTS:
        print(f"{label:<20}{statistics.median(wall[label]):9.1f}{statistics.median(cpu[label]):9.1f}")
    ours, theirs = "import otel_llm", "import openai"
    wall_extra, cpu_extra = differences(wall[ours], wall[theirs]), differences(cpu[ours], cpu[theirs])
    print(f"{'otel_llm - openai':<20}{wall_extra[1]:+9.1f}{cpu_extra[1]:+9.1f}   (median of the per-round differences)")
    low, high = f"{wall_extra[0]:+.1f} to {wall_extra[2]:+.1f}", f"{cpu_extra[0]:+.1f} to {cpu_extra[2]:+.1f}"
    print(f"  quartiles: wall {low}, cpu {high}")
    print(f"goal: otel_llm - openai <= {GOAL_MS:g} ms wall: {'ok' if wall_extra[1] <= GOAL_MS else 'MISSED'}")


if __name__ == "__main__":
    main()

"""Core overhead of otel-llm, measured side by side in one run.

    python bench/bench_core.py [--rounds 30] [--block 20]

Prints the median time of ``select_model`` and of a cached
``get_llm_client_smart``, and the per-call time of a non-streamed chat through
otel-llm against the raw ``openai`` client on the same embedded server (run in
its own process, as a real provider would be). The call comparison uses
interleaved blocks, each otel-llm block between two raw blocks, and reports the
median ratio over the rounds: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import openai

from otel_llm import LLMSettings, get_llm_client_smart, select_model

KEY_VARIABLE = "OTEL_LLM_BENCH_KEY"
MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]
TARGETS_US = {"select_model": 2.0, "get_llm_client_smart (cached)": 20.0}


@contextmanager
def server_process() -> Iterator[str]:
    """The embedded server in its own process; yields its OpenAI base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm", "mock-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        base_url = first_line.split(" on ", 1)[1].split()[0]
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def per_call_us(function: Callable[[], object], calls: int, samples: int) -> float:
    """Median over ``samples`` of the mean time of ``calls`` back-to-back calls."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


def block_seconds(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--block", type=int, default=20, help="calls per block")
    args = parser.parse_args()

    os.environ[KEY_VARIABLE] = "bench-key"
    with server_process() as base_url:
        settings = LLMSettings(
            models={
                "mini": {
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "base_url": base_url,
                    "api_key_env": KEY_VARIABLE,
                }
            },
            model_default="mini",
            api_models={"LLM_MODEL_KEYWORDS": "mini"},
        )
        print(f"python {sys.version.split()[0]}, openai {openai.__version__}, server {base_url}")
        print()
        micro = {
            "select_model": per_call_us(lambda: select_model("keywords", settings=settings), 1000, 200),
            "get_llm_client_smart (cached)": per_call_us(
                lambda: get_llm_client_smart("keywords", settings=settings), 1000, 200
            ),
        }
        for name, median_us in micro.items():
            verdict = "ok" if median_us < TARGETS_US[name] else "MISSED"
            print(f"{name:<32} median {median_us:8.3f} us   (target < {TARGETS_US[name]:g} us: {verdict})")

        raw = openai.OpenAI(base_url=base_url, api_key="bench-key", max_retries=0)

        def raw_call() -> object:
            return raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

        def otel_call() -> object:
            return get_llm_client_smart("keywords", settings=settings).chat.completions.create(messages=MESSAGES)

        for _ in range(args.block):  # warm both pools and code paths
            raw_call()
            otel_call()
        ratios, raw_times, otel_times = [], [], []
        before = block_seconds(raw_call, args.block)
        for _ in range(args.rounds):
            ours = block_seconds(otel_call, args.block)
            after = block_seconds(raw_call, args.block)
            ratios.append(ours / ((before + after) / 2))
            raw_times.append(before)
            otel_times.append(ours)
            before = after
        print()
        print(f"non-streamed chat, {args.rounds} rounds x {args.block} calls, interleaved:")
        print(f"  raw openai   median {statistics.median(raw_times) * 1e6:8.1f} us/call")
        print(f"  otel-llm     median {statistics.median(otel_times) * 1e6:8.1f} us/call")
        quartiles = statistics.quantiles(ratios, n=4)
        print(
            f"  ratio otel-llm / raw: median {statistics.median(ratios):.3f}x "
            f"(quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f})"
        )


if __name__ == "__main__":
    main()

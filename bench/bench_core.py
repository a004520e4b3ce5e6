"""Core overhead of otel-llm, measured side by side in one run.

    python bench/bench_core.py [--rounds 30] [--block 20]

Prints the median time of ``select_model`` and of a cached
``get_llm_client_smart``, and the per-call time of a non-streamed chat through
otel-llm against the raw ``openai`` client on the same embedded server (in its
own process), with no OpenTelemetry SDK installed (the API's no-op tracer and
meter). ``bench_telemetry.py`` measures the same with real SDK providers.
"""

from __future__ import annotations

import argparse
import os

import openai
from _harness import KEY_VARIABLE, MESSAGES, interleaved, per_call_us, server_process, versions

from otel_llm import LLMSettings, get_llm_client_smart, select_model

TARGETS_US = {"select_model": 2.0, "select_model, five-header dict": 1.0, "get_llm_client_smart (cached)": 20.0}
# What a web request carries, without the two selection headers: the usual case.
REQUEST_HEADERS = {
    "host": "api.example.com",
    "user-agent": "python-httpx/0.28",
    "accept": "application/json",
    "content-type": "application/json",
    "authorization": "Bearer not-a-key",
}


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
            enable_llm_model_header=True,
        )
        print(f"{versions()}, server {base_url}")
        print()
        micro = {
            "select_model": per_call_us(lambda: select_model("keywords", settings=settings)),
            "select_model, five-header dict": per_call_us(
                lambda: select_model("keywords", headers=REQUEST_HEADERS, settings=settings)
            ),
            "get_llm_client_smart (cached)": per_call_us(lambda: get_llm_client_smart("keywords", settings=settings)),
        }
        for name, median_us in micro.items():
            verdict = "ok" if median_us < TARGETS_US[name] else "MISSED"
            print(f"{name:<32} median {median_us:8.3f} us   (target < {TARGETS_US[name]:g} us: {verdict})")

        raw = openai.OpenAI(base_url=base_url, api_key="bench-key", max_retries=0)
        comparison = interleaved(
            lambda: raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES),
            lambda: get_llm_client_smart("keywords", settings=settings).chat.completions.create(messages=MESSAGES),
            args.rounds,
            args.block,
        )
        print()
        print(f"{args.rounds} rounds x {args.block} calls, interleaved, no OpenTelemetry SDK installed:")
        print(comparison.line("non-streamed chat"))


if __name__ == "__main__":
    main()

"""Cost of otel-llm's telemetry against the raw ``openai`` client, side by side in one run.

    python bench/bench_telemetry.py [--rounds 40] [--block 10]

Real OpenTelemetry SDK providers are installed (a BatchSpanProcessor with an
exporter that drops the batches, and a metric reader), as in a service. Each
scenario times blocks of otel-llm calls between blocks of raw SDK calls on the
same embedded server (in its own process, replying with 20 words, so a stream
has 20 content chunks) and reports the median ratio over the rounds: this
machine is shared and noisy, so only ratios measured side by side mean much.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

import openai
from _harness import interleaved, redis_process, server_process
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_llm import LLMSettings, get_llm_client_smart

KEY_VARIABLE = "OTEL_LLM_BENCH_KEY"
MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]
INPUT = "Extract the keywords of this job description."
TARGETS = {
    "non-streamed, LLM_HTTP_SPANS=false": 1.10,
    "non-streamed, default (HTTP spans)": 1.25,
    "20-chunk stream, LLM_HTTP_SPANS=false": 1.10,
    "20-chunk stream, default (HTTP spans)": 1.10,
    "Responses API, LLM_HTTP_SPANS=false": 1.10,
    "Responses API, default (HTTP spans)": 1.25,
}


class _DropExporter(SpanExporter):
    """Receives every batch, as an OTLP exporter would, and drops it."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def install_sdk() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DropExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block", type=int, default=10, help="calls per block")
    args = parser.parse_args()

    install_sdk()
    os.environ[KEY_VARIABLE] = "bench-key"
    with server_process(reply_words=20) as base_url, redis_process() as redis_url:
        model = {"provider": "openai", "model": "gpt-4.1-mini", "base_url": base_url, "api_key_env": KEY_VARIABLE}
        default = LLMSettings(models={"mini": model}, model_default="mini")
        lean = LLMSettings(models={"mini": model}, model_default="mini", http_spans=False)
        budget = {"keywords": {"usd": 1e6, "window": "day"}}  # never refuses: what is timed is the accounting
        in_process = LLMSettings(models={"mini": model}, model_default="mini", http_spans=False, budgets=budget)
        shared = LLMSettings(models={"mini": model}, model_default="mini", http_spans=False, state_url=redis_url)
        on_redis = LLMSettings(
            models={"mini": model}, model_default="mini", http_spans=False, budgets=budget, state_url=redis_url
        )
        raw = openai.OpenAI(base_url=base_url, api_key="bench-key", max_retries=0)

        def raw_chat() -> object:
            return raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

        def raw_stream() -> object:
            return list(raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True))

        def raw_responses() -> object:
            return raw.responses.create(model="gpt-4.1-mini", input=INPUT)

        def chat(settings: LLMSettings) -> object:
            return get_llm_client_smart("keywords", settings=settings).chat.completions.create(messages=MESSAGES)

        def stream(settings: LLMSettings) -> object:
            client = get_llm_client_smart("keywords", settings=settings)
            return list(client.chat.completions.create(messages=MESSAGES, stream=True))

        def responses(settings: LLMSettings) -> object:
            return get_llm_client_smart("keywords", settings=settings).responses.create(input=INPUT)

        scenarios = {
            "non-streamed, LLM_HTTP_SPANS=false": (raw_chat, lambda: chat(lean)),
            "non-streamed, default (HTTP spans)": (raw_chat, lambda: chat(default)),
            "20-chunk stream, LLM_HTTP_SPANS=false": (raw_stream, lambda: stream(lean)),
            "20-chunk stream, default (HTTP spans)": (raw_stream, lambda: stream(default)),
            "Responses API, LLM_HTTP_SPANS=false": (raw_responses, lambda: responses(lean)),
            "Responses API, default (HTTP spans)": (raw_responses, lambda: responses(default)),
            "non-streamed, lean, a budget in the process": (raw_chat, lambda: chat(in_process)),
        }
        if redis_url is not None:  # one round trip a call (the breaker), then three (and the budget's two)
            scenarios["non-streamed, lean, breakers on Redis (loopback)"] = (raw_chat, lambda: chat(shared))
            scenarios["non-streamed, lean, breakers and a budget on Redis"] = (raw_chat, lambda: chat(on_redis))
        print(f"openai {openai.__version__}; {args.rounds} rounds x {args.block} calls per block, interleaved")
        for label, (raw_call, our_call) in scenarios.items():
            comparison = interleaved(raw_call, our_call, args.rounds, args.block)
            target = TARGETS.get(label)
            if target is None:
                print(comparison.line(label))
            else:
                verdict = "ok" if comparison.ratio <= target else "MISSED"
                print(f"{comparison.line(label)}  target <= {target:.2f}x: {verdict}")

    # The chat rows again over HTTPS, as with a real provider (the certificate of a private CA, trusted
    # through SSL_CERT_FILE): there each connection the raw SDK's sync streams throw away costs a TLS
    # handshake, which otel-llm's, giving theirs back to the pool, do not pay.
    with server_process(reply_words=20, tls=True) as tls_url:
        tls_model = {**model, "base_url": tls_url}
        tls_lean = LLMSettings(models={"mini": tls_model}, model_default="mini", http_spans=False)
        tls_default = LLMSettings(models={"mini": tls_model}, model_default="mini")
        tls_raw = openai.OpenAI(base_url=tls_url, api_key="bench-key", max_retries=0).chat.completions

        def tls_raw_chat() -> object:
            return tls_raw.create(model="gpt-4.1-mini", messages=MESSAGES)

        def tls_raw_stream() -> object:
            return list(tls_raw.create(model="gpt-4.1-mini", messages=MESSAGES, stream=True))

        for label, (raw_call, our_call) in {
            "HTTPS non-streamed, LLM_HTTP_SPANS=false": (tls_raw_chat, lambda: chat(tls_lean)),
            "HTTPS non-streamed, default (HTTP spans)": (tls_raw_chat, lambda: chat(tls_default)),
            "HTTPS 20-chunk stream, LLM_HTTP_SPANS=false": (tls_raw_stream, lambda: stream(tls_lean)),
            "HTTPS 20-chunk stream, default (HTTP spans)": (tls_raw_stream, lambda: stream(tls_default)),
        }.items():
            print(interleaved(raw_call, our_call, args.rounds, args.block).line(label))


if __name__ == "__main__":
    main()

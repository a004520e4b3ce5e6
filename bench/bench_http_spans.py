"""Instructions per request of the httpx2 instrumentation under ``valgrind --tool=callgrind``, and where they go.

    python bench/bench_http_spans.py [--variants ...] [--calls 10 40] [--pieces 200 1200] [--jobs 2]

A raw ``openai.OpenAI`` client calls the embedded server (in its own process,
20-word replies) with real OpenTelemetry SDK providers installed (a
BatchSpanProcessor with an exporter that drops the batches, a metric reader).
Its HTTP client is otel-llm's own (``sync_http_client``), made with or without
the HTTP span: the difference is what the instrumentation costs a request.
As in bench_instructions.py, each variant makes N1 and then N2 non-streamed
chat calls in a callgrind process of its own, (total(N2) - total(N1)) /
(N2 - N1) is one request, and the hash seed is fixed.

``library-alone`` is the client instrumented by the library with the SDK
providers, nothing of otel-llm's (no guards, header normalisation not
deferred); ``unguarded`` and ``unguarded-tracer`` are otel-llm's way without
one or both guarded providers. The ``without-*`` variants take one piece of work out of the instrumented
client (in the measured process only, by replacing a function of the
instrumentation package): what the count drops by is what that piece costs a
request where it runs, callees included. They are measurements, not options:
their spans lack what the piece made. ``--pieces`` counts each piece alone,
on the request and response of a real call.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from _harness import callgrind_instructions, server_process

MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]


def _instrumentation() -> Any:
    import opentelemetry.instrumentation.httpx as instrumentation

    return instrumentation


def _without(name: str, replacement: Callable[..., Any]) -> Callable[[], None]:
    def patch() -> None:
        setattr(_instrumentation(), name, replacement)

    return patch


def _instrument(client: Any, *, tracer: str = "guarded", meter: str = "guarded", library_alone: bool = False) -> None:
    """The client instrumented as otel-llm does but with other providers, or by the library alone."""
    from opentelemetry import metrics, trace

    from otel_llm import _transport
    from otel_llm._guard import GuardedMeterProvider, GuardedTracerProvider

    tracer_provider = {
        "guarded": GuardedTracerProvider(trace.get_tracer_provider()),
        "global": trace.get_tracer_provider(),
    }[tracer]
    meter_provider = {
        "guarded": GuardedMeterProvider(metrics.get_meter_provider()),
        "global": metrics.get_meter_provider(),
        "no-op": metrics.NoOpMeterProvider(),
    }[meter]
    if not library_alone:
        _transport._defer_header_normalisation()
    _instrumentation().HTTPX2ClientInstrumentor.instrument_client(
        client, tracer_provider=tracer_provider, meter_provider=meter_provider
    )


def _ours(client: Any) -> None:
    from otel_llm import _transport

    _transport._instrument(client)


# variant -> (how its client is instrumented, a patch of the measured process)
VARIANTS: dict[str, tuple[Callable[[Any], None] | None, Callable[[], None] | None]] = {
    "plain": (None, None),
    "ours": (_ours, None),
    "library-alone": (lambda client: _instrument(client, tracer="global", meter="global", library_alone=True), None),
    "unguarded": (lambda client: _instrument(client, tracer="global", meter="global"), None),
    "unguarded-tracer": (lambda client: _instrument(client, tracer="global"), None),
    "without-header-normalisation": (_ours, _without("_normalize_headers", lambda headers, module: {})),
    "without-url-redaction": (_ours, _without("redact_url", lambda url: url)),
    "without-propagation": (_ours, _without("inject", lambda carrier: None)),
    "without-duration-metric": (lambda client: _instrument(client, meter="no-op"), None),
}


def _pieces(base_url: str) -> dict[str, Callable[[], object]]:
    """Each piece of the instrumentation's work on one request, on a request and response of a real call."""
    import httpx2
    import openai
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation._semconv import (
        _client_duration_attrs_new,
        _client_duration_attrs_old,
        _filter_semconv_duration_attrs,
        _OpenTelemetrySemanticConventionStability,
        _OpenTelemetryStabilitySignalType,
        _StabilityMode,
    )
    from opentelemetry.trace import SpanKind
    from opentelemetry.util.http import redact_url

    from otel_llm._guard import GuardedMeterProvider, GuardedTracerProvider

    instrumentation = _instrumentation()
    seen: list[tuple[httpx2.Request, httpx2.Response]] = []

    class Capture(httpx2.BaseTransport):
        def __init__(self) -> None:
            self._transport = httpx2.HTTPTransport()

        def handle_request(self, request: httpx2.Request) -> httpx2.Response:
            response = self._transport.handle_request(request)
            seen.append((request, response))
            return response

    http_client = httpx2.Client(transport=Capture())
    client = openai.OpenAI(base_url=base_url, api_key="bench-key", max_retries=0, http_client=http_client)
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    request, response = seen[0]
    _OpenTelemetrySemanticConventionStability._initialize()
    mode = _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.HTTP
    )
    url = httpx2.URL(str(request.url))
    sdk_tracer = trace.get_tracer("bench")
    guarded_tracer = GuardedTracerProvider(trace.get_tracer_provider()).get_tracer("bench")
    span = sdk_tracer.start_span("POST")  # never ended: a recording span for the attribute pieces
    span_attributes: dict[str, Any] = {}
    metric_attributes: dict[str, Any] = {}
    instrumentation._apply_request_client_attributes_to_span(
        span_attributes, metric_attributes, url, "POST", mode, httpx2
    )
    instrumentation._apply_response_client_attributes_to_metrics(span, metric_attributes, 200, "HTTP/1.1", mode)
    duration_attributes = _filter_semconv_duration_attrs(
        metric_attributes, _client_duration_attrs_old, _client_duration_attrs_new, _StabilityMode.DEFAULT
    )
    histogram_arguments = {"name": "http.client.duration", "unit": "ms"}
    sdk_histogram = metrics.get_meter("bench").create_histogram(**histogram_arguments)
    guarded_histogram = (
        GuardedMeterProvider(metrics.get_meter_provider()).get_meter("bench").create_histogram(**histogram_arguments)
    )

    def span_through(tracer: Any) -> Callable[[], object]:
        def piece() -> None:
            with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=span_attributes):
                pass

        return piece

    def propagation() -> None:
        with trace.use_span(span):
            instrumentation._inject_propagation_headers(request.headers, (request,), {}, httpx2)

    return {
        "extract-parameters (URL parsed again)": lambda: instrumentation._extract_parameters((request,), {}, httpx2),
        "excluded-urls check": lambda: instrumentation._normalize_url(url),
        "request attributes, all": lambda: instrumentation._apply_request_client_attributes_to_span(
            {}, {}, url, "POST", mode, httpx2, request.headers, [], []
        ),
        "  normalise request headers": lambda: instrumentation._normalize_headers(request.headers, httpx2),
        "  redact URL": lambda: redact_url(str(url)),
        "  URL copied": lambda: httpx2.URL(url),
        "propagation (headers copied, injected)": propagation,
        "response span attributes, all": lambda: instrumentation._apply_response_client_attributes_to_span(
            span, 200, "HTTP/1.1", mode, httpx2, response.headers, [], []
        ),
        "  normalise response headers": lambda: instrumentation._normalize_headers(response.headers, httpx2),
        "response metric attributes": lambda: instrumentation._apply_response_client_attributes_to_metrics(
            span, {}, 200, "HTTP/1.1", mode
        ),
        "duration attributes filtered": lambda: _filter_semconv_duration_attrs(
            metric_attributes, _client_duration_attrs_old, _client_duration_attrs_new, _StabilityMode.DEFAULT
        ),
        "span, SDK tracer": span_through(sdk_tracer),
        "span, GuardedTracer": span_through(guarded_tracer),
        "duration recorded, SDK histogram": lambda: sdk_histogram.record(3, attributes=duration_attributes),
        "duration recorded, guarded histogram": lambda: guarded_histogram.record(3, attributes=duration_attributes),
    }


def _piece_calls(piece: str, count: int, base_url: str) -> None:
    """The measured process for one piece: ``count`` runs of it."""
    _install_sdk()
    run = _pieces(base_url)[piece]
    for _ in range(3):
        run()
    gc.collect()
    gc.freeze()
    for _ in range(count):
        run()


def _install_sdk() -> Any:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class DropExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    return provider


def _calls(variant: str, count: int, base_url: str) -> None:
    """The measured process: ``count`` calls (after three to warm up), then the spans flushed."""
    import openai

    from otel_llm import _transport

    provider = _install_sdk()
    instrument, patch = VARIANTS[variant]
    if patch is not None:
        patch()
    http_client = _transport.sync_http_client(http_spans=False)
    if instrument is not None:
        instrument(http_client)
    client = openai.OpenAI(base_url=base_url, api_key="bench-key", max_retries=0, http_client=http_client)

    def call() -> object:
        return client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)

    for _ in range(3):
        call()
    gc.collect()
    gc.freeze()  # the start-up heap out of every later collection, as in bench_instructions.py
    for _ in range(count):
        call()
    provider.shutdown()


def _instructions(child: list[str], seed: int) -> int:
    """The instructions a run of this script with arguments ``child`` executes, under callgrind."""
    return callgrind_instructions([sys.executable, __file__, *child], seed)


def _per_run(
    pool: ThreadPoolExecutor, flag: str, names: Sequence[str], base_url: str, counts: Sequence[int], seed: int
) -> dict[str, float]:
    """Instructions per run of each variant or piece, (total(N2) - total(N1)) / (N2 - N1)."""
    first, second = counts
    runs = {
        (name, count): pool.submit(_instructions, [flag, name, str(count), base_url], seed)
        for name in names
        for count in counts
    }
    return {name: (runs[name, second].result() - runs[name, first].result()) / (second - first) for name in names}


def main() -> None:
    if sys.argv[1] == "--child":
        variant, count, base_url = sys.argv[2:5]
        _calls(variant, int(count), base_url)
        return
    if sys.argv[1] == "--child-piece":
        piece, count, base_url = sys.argv[2:5]
        _piece_calls(piece, int(count), base_url)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--calls", nargs=2, type=int, default=[10, 40], metavar=("N1", "N2"))
    parser.add_argument(
        "--pieces", nargs=2, type=int, metavar=("N1", "N2"), help="also count each piece, run N1 and N2 times"
    )
    parser.add_argument("--jobs", type=int, default=2, help="callgrind processes at once")
    parser.add_argument("--seed", type=int, default=0, help="PYTHONHASHSEED of the measured processes")
    args = parser.parse_args()
    with server_process(reply_words=20) as base_url, ThreadPoolExecutor(args.jobs) as pool:
        if args.pieces:
            pieces = list(_pieces_names(base_url))
            per_piece = _per_run(pool, "--child-piece", pieces, base_url, args.pieces, args.seed)
            print(f"instructions per run of each piece, callgrind, PYTHONHASHSEED={args.seed}")
            for piece, count in per_piece.items():
                print(f"{piece:<44} {count:10,.0f}")
        variants = ["plain", "ours", *(v for v in args.variants if v not in ("plain", "ours"))]
        per_request = _per_run(pool, "--child", variants, base_url, args.calls, args.seed)
    plain, ours = per_request["plain"], per_request["ours"]
    first, second = args.calls
    print(f"instructions per request, (N{second} - N{first}) / {second - first}, callgrind, PYTHONHASHSEED={args.seed}")
    print(f"{'plain (no HTTP span)':<32} {plain:12,.0f}")
    print(f"{'ours (HTTP span, as otel-llm)':<32} {ours:12,.0f}  instrumentation {ours - plain:10,.0f}")
    for variant in variants[2:]:
        change = per_request[variant] - ours
        share = -change / (ours - plain) if ours != plain else 0.0
        print(f"{variant:<32} {per_request[variant]:12,.0f}  vs ours {change:+10,.0f} ({share:6.1%} of it)")


def _pieces_names(base_url: str) -> list[str]:
    _install_sdk()
    return list(_pieces(base_url))


if __name__ == "__main__":
    main()

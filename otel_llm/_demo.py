"""``otel-llm demo``: the whole path with no key and no network.

It starts the embedded server, configures aliases the way a service would
(environment variables), calls the APIs through every selection source, and
shows the telemetry: span trees on the console (or OTLP when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set), then a table of every call with its
tokens and cost, totals per API and per model, and the metrics exported.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricsData, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from ._client import get_llm_client_smart
from ._settings import LLMSettings
from ._setup import configure_telemetry
from ._tables import print_table, usd
from .testing import Fault, MockLLMServer

__all__ = ["run_demo"]

_SERVICE = "otel-llm-demo"
_KEY_VARIABLE = "OTEL_LLM_DEMO_API_KEY"
_MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Extract the keywords of this job description."}
]

_Kind = Literal["chat", "chat stream", "chat parse", "responses", "embeddings"]
Print = Callable[[str], None]


class _Keywords(BaseModel):
    """The structured output of the demo's ``chat parse`` call."""

    keywords: list[str]


@dataclass(frozen=True)
class _Call:
    api: str
    kind: _Kind = "chat"
    request_model: str | None = None
    headers: dict[str, str] | None = None
    failing_model: str | None = None
    """A model the embedded server answers 503 for, during this call."""
    split_key: str | None = None


_CALLS = [
    _Call("keywords"),  # LLM_MODEL_KEYWORDS
    _Call("gap_analysis", "chat stream"),  # LLM_MODEL_GAP_ANALYSIS, an Azure deployment
    _Call("resume_format"),  # nothing set for it: LLM_MODEL_DEFAULT
    _Call("resume_tailor", headers={"X-LLM-Model": "gpt41-mini"}),
    _Call("resume_tailor", request_model="gpt4o-2"),
    _Call("search_index", "embeddings"),
    _Call("keywords", "chat parse"),  # a structured output: the reply parsed into _Keywords
    _Call("job_summary", "responses"),  # the Responses API, on LLM_MODEL_DEFAULT
    _Call("resume_format", failing_model="gpt-4.1"),  # gpt41 fails twice: LLM_FALLBACKS moves to gpt41-mini
    _Call("cover_letter", split_key="user-42"),  # LLM_SPLITS: this user's share of a 50/50 rollout
]


@dataclass(frozen=True)
class _Row:
    api: str
    alias: str
    source: str
    kind: _Kind
    attempts: int
    outcome: str
    latency_ms: float
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


def demo_models(server: MockLLMServer, key_variable: str = _KEY_VARIABLE) -> dict[str, dict[str, str]]:
    """The demo's ``LLM_MODELS``: two OpenAI models, an Azure deployment and an embeddings model on ``server``."""

    def openai_model(model: str) -> dict[str, str]:
        return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": key_variable}

    return {
        "gpt41": openai_model("gpt-4.1"),
        "gpt41-mini": openai_model("gpt-4.1-mini"),
        "gpt4o-2": {
            "provider": "azure",
            "model": "gpt-4o",
            "deployment": "gpt-4o-2",
            "endpoint": server.azure_endpoint,
            "api_version": "2024-10-21",
            "api_key_env": key_variable,
        },
        "embed-small": openai_model("text-embedding-3-small"),
    }


def demo_environment(server: MockLLMServer) -> dict[str, str]:
    """The configuration a service would set, pointing at the embedded server."""
    return {
        "LLM_MODELS": json.dumps(demo_models(server)),
        "LLM_MODEL_DEFAULT": "gpt41",
        "LLM_MODEL_KEYWORDS": "gpt41-mini",
        "LLM_MODEL_GAP_ANALYSIS": "gpt4o-2",
        "LLM_MODEL_SEARCH_INDEX": "embed-small",
        "LLM_SPLITS": json.dumps({"cover_letter": {"gpt41-mini": 50, "gpt4o-2": 50}}),
        "LLM_FALLBACKS": json.dumps({"gpt41": ["gpt41-mini"]}),
        "LLM_RETRY_MAX_WAIT_S": "0.2",
        "ENABLE_LLM_MODEL_OVERRIDE": "true",
        "ENABLE_LLM_MODEL_HEADER": "true",
        _KEY_VARIABLE: "demo-key-not-secret",
    }


def run_demo(print_: Print = print, forever: bool = False) -> list[_Row]:
    """Run the demo calls and print the configuration, the telemetry and a table of the calls.

    ``forever`` repeats the calls (one round a second, until Ctrl-C) to feed a
    monitoring stack; it prints a line a round instead of the span trees.
    """
    calls = _install_telemetry(print_, span_trees=not forever)
    with MockLLMServer() as server, _environment(demo_environment(server)) as environment:
        settings = LLMSettings()  # read from the environment, as in a service
        _print_configuration(server, environment, print_)
        rows = [_run(call, settings, server, calls) for call in _CALLS]
        rounds = 1
        try:
            while forever:
                time.sleep(1)
                rows = [_run(call, settings, server, calls) for call in _CALLS]
                rounds += 1
                cost = sum(row.cost_usd or 0 for row in rows)
                print_(f"round {rounds}: {len(rows)} calls, {sum(r.attempts for r in rows)} attempts, ${cost:.6f}")
        except KeyboardInterrupt:
            pass
    print_("")
    _print_calls(rows, print_)
    print_("")
    print_("The first call to each server includes building its openai client and connection.")
    _shutdown_telemetry()
    return rows


def _install_telemetry(print_: Print, span_trees: bool) -> InMemorySpanExporter:
    """Console exporters (or OTLP, or the application's own); returns where the demo reads its calls' spans."""
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        configure_telemetry(_SERVICE)
        print_(f"Telemetry: OTLP to {os.environ['OTEL_EXPORTER_OTLP_ENDPOINT']} (service {_SERVICE!r})")
    elif isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        resource = Resource.create({"service.name": _SERVICE})
        tracer_provider = TracerProvider(resource=resource)
        if span_trees:
            tracer_provider.add_span_processor(SimpleSpanProcessor(_ConsoleTrees(print_)))
        trace.set_tracer_provider(tracer_provider)
        exporter = ConsoleMetricExporter(formatter=_metrics_summary)
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)  # exported at exit
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
        print_("Telemetry: console (set OTEL_EXPORTER_OTLP_ENDPOINT to send it to a collector)")
    calls = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.add_span_processor(SimpleSpanProcessor(calls))
    return calls


def _shutdown_telemetry() -> None:
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        shutdown = getattr(provider, "shutdown", None)
        if shutdown is not None:
            shutdown()


@contextmanager
def _environment(environment: dict[str, str]) -> Iterator[dict[str, str]]:
    """Replace the shell's otel-llm configuration with ``environment`` while the demo runs."""
    saved = dict(os.environ)
    for name in [name for name in os.environ if name.startswith(("LLM_", "ENABLE_LLM_"))]:
        del os.environ[name]
    os.environ.update(environment)
    try:
        yield environment
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _print_configuration(server: MockLLMServer, environment: dict[str, str], print_: Print) -> None:
    print_(f"Embedded OpenAI-compatible server: {server.base_url}  (Azure shape: {server.azure_endpoint})")
    print_("Configuration, as a service would set it:")
    for name, value in environment.items():
        if name not in ("LLM_MODELS", _KEY_VARIABLE):
            print_(f"  {name}={value}")
    models = json.loads(environment["LLM_MODELS"])
    print_("  LLM_MODELS=" + ", ".join(f"{alias} -> {e['provider']} {e['model']}" for alias, e in models.items()))
    print_(f"  (every alias reads its key from {_KEY_VARIABLE}, set to a placeholder)")
    print_("")


def _run(call: _Call, settings: LLMSettings, server: MockLLMServer, calls: InMemorySpanExporter) -> _Row:
    client = get_llm_client_smart(call.api, call.request_model, call.headers, settings, call.split_key)
    if call.failing_model:
        server.add_faults(call.failing_model, *[Fault.status(503)] * settings.retry_attempts)
    calls.clear()
    start = time.perf_counter()
    if call.kind == "embeddings":
        client.embeddings.create(input=["python", "opentelemetry"])
    elif call.kind == "chat stream":
        for _ in client.chat.completions.create(messages=_MESSAGES, stream=True):
            pass
    elif call.kind == "chat parse":
        client.chat.completions.parse(messages=_MESSAGES, response_format=_Keywords)
    elif call.kind == "responses":
        client.responses.create(input="Summarise this job description in one line.")
    else:
        client.chat.completions.create(messages=_MESSAGES)
    latency_ms = (time.perf_counter() - start) * 1000
    # The numbers come from the call's own span: what the telemetry recorded.
    [span] = [span for span in calls.get_finished_spans() if span.kind is trace.SpanKind.INTERNAL]
    attributes = span.attributes or {}
    return _Row(
        call.api,
        str(attributes.get("otel_llm.model.alias")),
        str(attributes.get("otel_llm.selection.source")),
        call.kind,
        int(attributes.get("otel_llm.attempts", 0)),  # type: ignore[arg-type]
        "fallback" if attributes.get("otel_llm.fallback.used") else "ok",
        latency_ms,
        int(attributes.get("gen_ai.usage.input_tokens", 0)),  # type: ignore[arg-type]
        int(attributes.get("gen_ai.usage.output_tokens", 0)),  # type: ignore[arg-type]
        attributes.get("otel_llm.cost.usd"),  # type: ignore[arg-type]
    )


def _print_calls(rows: list[_Row], print_: Print) -> None:
    header = ("API", "alias", "source", "call", "outcome", "attempts", "latency ms", "tokens in", "tokens out", "cost")
    body = [
        (
            r.api,
            r.alias,
            r.source,
            r.kind,
            r.outcome,
            str(r.attempts),
            f"{r.latency_ms:.1f}",
            str(r.input_tokens),
            str(r.output_tokens),
            usd(r.cost_usd),
        )
        for r in rows
    ]
    print_table(header, body, 5, print_)
    for title, key in (("API", "api"), ("model", "alias")):
        totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
        for row in rows:
            total = totals[getattr(row, key)]
            total[0] += 1
            total[1] += row.input_tokens
            total[2] += row.output_tokens
            total[3] += row.cost_usd or 0.0
        print_("")
        print_table(
            (title, "calls", "tokens in", "tokens out", "cost"),
            [(name, str(int(c)), str(int(i)), str(int(o)), usd(cost)) for name, (c, i, o, cost) in totals.items()],
            1,
            print_,
        )


class _ConsoleTrees(SpanExporter):
    """Prints each call's spans as a tree, one line a span, when the call's span ends."""

    def __init__(self, print_: Print) -> None:
        self._print = print_
        self._pending: dict[int, list[ReadableSpan]] = defaultdict(list)
        self._heading = "Spans, one tree per call:"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            trace_spans = self._pending[span.context.trace_id]
            trace_spans.append(span)
            if span.parent is None:  # the root ends last: the tree is complete
                if self._heading:
                    self._print(self._heading)
                    self._heading = ""
                self._print_tree(span, trace_spans, 0)
                del self._pending[span.context.trace_id]
        return SpanExportResult.SUCCESS

    def _print_tree(self, span: ReadableSpan, spans: list[ReadableSpan], depth: int) -> None:
        milliseconds = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        attributes = span.attributes or {}
        details = " ".join(
            f"{label}={_shown(attributes[key])}" for label, key in _SHOWN_ATTRIBUTES if key in attributes
        )
        self._print(f"  {'  ' * depth}{span.name} [{span.kind.name.lower()}] {milliseconds:.1f} ms  {details}".rstrip())
        for child in sorted(spans, key=lambda s: s.start_time or 0):
            if child.parent is not None and child.parent.span_id == span.context.span_id:
                self._print_tree(child, spans, depth + 1)


# A few attributes per span line, under short labels; the exporters get them all.
_SHOWN_ATTRIBUTES = (
    ("source", "otel_llm.selection.source"),
    ("alias", "otel_llm.model.alias"),
    ("attempt", "otel_llm.attempt"),
    ("provider", "gen_ai.provider.name"),
    ("in", "gen_ai.usage.input_tokens"),
    ("out", "gen_ai.usage.output_tokens"),
    ("cost", "otel_llm.cost.usd"),
    ("first_chunk_s", "gen_ai.response.time_to_first_chunk"),
    ("status", "http.response.status_code"),
    ("status", "http.status_code"),
    ("error", "error.type"),
)


def _shown(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _metrics_summary(data: MetricsData) -> str:
    lines = ["", "Metrics exported:"]
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = list(metric.data.data_points)
                lines.append(f"  {metric.name} ({metric.unit}): {len(points)} series")
    return "\n".join(lines) + "\n"

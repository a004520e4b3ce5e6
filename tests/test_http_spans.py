"""The HTTP span and metric under each attempt are the httpx2 instrumentation's own (SPEC §6).

otel-llm instruments its HTTP clients with ``opentelemetry-instrumentation-httpx``, through guarded providers,
and defers the instrumentation's normalisation of every header to when a header is to be captured. What the
library records must stay what it records alone: run as a script, this module makes the same call
through a client instrumented by the library alone (before otel-llm touched anything), through otel-llm's
client, and through a second library-only client, under real SDK providers, and prints the HTTP spans and
duration metrics as JSON.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]
# Captured headers whose values do not change from one request to the next, and one that must be redacted.
CAPTURING = {
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": "content-type,x-stainless-lang,Authorization",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE": "content-type,x-ratelimit-limit-.*",
    "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS": "authorization",
}


def _records() -> dict[str, Any]:
    """The script: one call through each client; its HTTP span, and the duration metric after all of them."""
    import httpx2
    import openai
    from opentelemetry import metrics, trace
    from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_llm.testing import MockLLMServer

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    def library_client(is_async: bool) -> httpx2.Client | httpx2.AsyncClient:
        client = httpx2.AsyncClient() if is_async else httpx2.Client()
        HTTPX2ClientInstrumentor.instrument_client(client)
        return client

    def ours(is_async: bool) -> httpx2.Client | httpx2.AsyncClient:
        from otel_llm import _transport

        if is_async:
            return _transport.async_http_client(http_spans=True)
        return _transport.sync_http_client(http_spans=True)

    def http_span(make: Callable[[bool], Any], is_async: bool, base_url: str) -> dict[str, Any]:
        exporter.clear()
        http_client = make(is_async)
        if is_async:
            client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-never-shown", http_client=http_client)
            asyncio.run(client.chat.completions.create(model="m", messages=MESSAGES))  # type: ignore[arg-type]
        else:
            client = openai.OpenAI(base_url=base_url, api_key="sk-never-shown", http_client=http_client)
            client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        (span,) = exporter.get_finished_spans()
        return {
            "name": span.name,
            "kind": span.kind.name,
            "status": span.status.status_code.name,
            "scope": [span.instrumentation_scope.name, span.instrumentation_scope.version]
            if span.instrumentation_scope
            else None,
            "attributes": {
                key: list(value) if isinstance(value, tuple) else value for key, value in span.attributes.items()
            },
        }

    records: dict[str, Any] = {}
    with MockLLMServer() as server:
        for is_async in (False, True):
            kind = "async" if is_async else "sync"
            # The library alone first: nothing of otel-llm has run yet.
            for name, make in (("library", library_client), ("ours", ours), ("library after ours", library_client)):
                records[f"{name}, {kind}"] = http_span(make, is_async, server.base_url)
    data = reader.get_metrics_data()
    records["metrics"] = [
        {
            "name": metric.name,
            "unit": metric.unit,
            "points": [[dict(point.attributes), point.count] for point in metric.data.data_points],
        }
        for resource_metrics in (data.resource_metrics if data else [])
        for scope_metrics in resource_metrics.scope_metrics
        if scope_metrics.scope.name == "opentelemetry.instrumentation.httpx"
        for metric in scope_metrics.metrics
    ]
    return records


@pytest.mark.parametrize(
    "environment",
    [{}, {**CAPTURING, "OTEL_SEMCONV_STABILITY_OPT_IN": "http/dup"}],
    ids=["defaults", "headers captured, old and new semconv"],
)
def test_the_http_span_and_metric_are_what_the_library_alone_records(environment: dict[str, str]) -> None:
    child_environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_INSTRUMENTATION_HTTP_", "OTEL_SEMCONV_", "OTEL_PYTHON_"))
    }
    done = subprocess.run(
        [sys.executable, __file__],
        capture_output=True,
        text=True,
        timeout=120,
        env={**child_environment, **environment},
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)

    for kind in ("sync", "async"):
        library = records[f"library, {kind}"]
        assert library["name"] == "POST" and library["kind"] == "CLIENT" and library["status"] == "UNSET"
        assert library["scope"][0] == "opentelemetry.instrumentation.httpx"
        assert records[f"ours, {kind}"] == library
        assert records[f"library after ours, {kind}"] == library
    # Six requests, the same attributes: one point per duration metric, counting all six.
    names = {"http.client.duration"} | ({"http.client.request.duration"} if environment else set())
    assert {metric["name"] for metric in records["metrics"]} == names
    for metric in records["metrics"]:
        assert len(metric["points"]) == 1 and metric["points"][0][1] == 6
    if environment:  # the deferred normalisation still captures, and redacts, what is asked for
        attributes = records["ours, sync"]["attributes"]
        assert attributes["http.request.header.authorization"] == ["[REDACTED]"]
        assert attributes["http.request.header.x_stainless_lang"] == ["python"]
        assert attributes["http.response.header.content_type"] == ["application/json"]
        assert "http.response.header.x_ratelimit_limit_requests" in attributes
        assert "http.response.status_code" in attributes and "http.status_code" in attributes


# The methods of httpx2.Headers that read headers (Cookies and Request of the same module have some of these names:
# they count as much in both clients).
_READS = {"get_list", "keys", "values", "items", "multi_items", "get", "__getitem__", "__iter__", "__contains__"}


def _header_reads(client: Any) -> int:
    """How often one chat call through ``client`` reads headers (calls a reading method of ``httpx2.Headers``)."""
    client.chat.completions.create(model="m", messages=MESSAGES)  # connection and code paths warm
    profile = cProfile.Profile()
    profile.enable()
    client.chat.completions.create(model="m", messages=MESSAGES)
    profile.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    return sum(
        calls
        for (filename, _, function), (_, calls, *_) in stats.items()
        if function in _READS and filename.endswith(os.path.join("httpx2", "_models.py"))
    )


def test_an_http_span_reads_no_header_when_none_is_captured(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instrumentation would read every header twice over, for nothing. Should this fail after an update
    of opentelemetry-instrumentation-httpx, the hook in otel_llm/_transport.py no longer reaches it: see there."""
    import openai

    from otel_llm import _transport

    def client(http_spans: bool) -> openai.OpenAI:
        http_client = _transport.sync_http_client(http_spans=http_spans)
        return openai.OpenAI(base_url=llm_server.base_url, api_key="sk-test", http_client=http_client)

    plain = _header_reads(client(http_spans=False))
    assert _header_reads(client(http_spans=True)) == plain
    # Read at instrumentation time: a client made now captures a request header, so reads them all.
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", "x-stainless-lang")
    assert _header_reads(client(http_spans=True)) > plain


if __name__ == "__main__":
    print(json.dumps(_records()))

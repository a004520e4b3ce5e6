"""configure_telemetry(), and real OTLP/HTTP and OTLP/gRPC exports decoded by local receivers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry import metrics, trace
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from otel_llm import configure_telemetry


class _Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP receiver on loopback that keeps what it was sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.bodies: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.setdefault(self.path, []).append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# Prepended to a child's script: the gRPC exporter and grpcio cannot be imported there, as if
# otel-llm[grpc] were not installed (they are, in the test environment).
_WITHOUT_GRPC = """
import sys

class _WithoutGrpc:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "grpc" or name.startswith("opentelemetry.exporter.otlp.proto.grpc"):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, _WithoutGrpc())
"""


def _in_fresh_process(script: str, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={**os.environ, **environment}
    )


def test_demo_exports_spans_and_metrics_over_otlp_http_without_grpc(receiver: _Receiver) -> None:
    """The default protocol needs nothing of otel-llm[grpc]."""
    demo = "from otel_llm.cli import main\nsys.exit(main(['demo']))\n"
    result = _in_fresh_process(_WITHOUT_GRPC + demo, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
    assert result.returncode == 0, result.stderr
    assert f"Telemetry: OTLP to {receiver.endpoint}" in result.stdout

    spans = []
    for body in receiver.bodies["/v1/traces"]:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            assert service == "otel-llm-demo"
            spans += [span for scope in resource_spans.scope_spans for span in scope.spans]
    names = {span.name for span in spans}
    assert {"chat keywords", "chat gpt-4.1-mini", "chat gpt-4o-2", "embeddings search_index", "POST"} <= names
    keywords = next(span for span in spans if span.name == "chat keywords")
    attributes = {a.key: a.value for a in keywords.attributes}
    assert attributes["otel_llm.selection.source"].string_value == "env"
    assert attributes["gen_ai.usage.input_tokens"].int_value == 13
    assert attributes["otel_llm.cost.usd"].double_value > 0

    metric_names = set()
    for body in receiver.bodies["/v1/metrics"]:
        request = ExportMetricsServiceRequest.FromString(body)
        for resource_metrics in request.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                metric_names |= {metric.name for metric in scope.metrics}
    assert {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "otel_llm.call.duration",
        "otel_llm.cost.usd",
    } <= metric_names


def test_configure_telemetry_leaves_existing_providers_alone() -> None:
    tracer_provider, meter_provider = trace.get_tracer_provider(), metrics.get_meter_provider()
    assert configure_telemetry("anything") is False
    assert trace.get_tracer_provider() is tracer_provider
    assert metrics.get_meter_provider() is meter_provider


_CONFIGURE = """
import otel_llm
from opentelemetry import trace, metrics
try:
    print(otel_llm.configure_telemetry('svc'))
finally:
    print(type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__)
"""


def test_configure_telemetry_installs_sdk_providers_where_none_are() -> None:
    result = _in_fresh_process(_CONFIGURE, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True", "TracerProvider MeterProvider"]


def test_configure_telemetry_names_an_unknown_exporter() -> None:
    result = _in_fresh_process(_CONFIGURE, OTEL_TRACES_EXPORTER="zipkin")
    assert result.returncode != 0
    assert "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin' (expected otlp, console or none)" in result.stderr


@pytest.mark.parametrize(
    "variable",
    ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"],
)
def test_grpc_without_the_grpc_extra_names_the_variable_and_the_extra(variable: str) -> None:
    result = _in_fresh_process(_WITHOUT_GRPC + _CONFIGURE, **{variable: "grpc"})
    assert result.returncode != 0
    assert (
        f"otel_llm._errors.ConfigError: {variable}: 'grpc' needs the gRPC exporter: pip install 'otel-llm[grpc]'"
        in result.stderr
    )
    assert result.stdout.splitlines() == ["ProxyTracerProvider _ProxyMeterProvider"]  # nothing half installed


def test_a_signal_s_own_protocol_wins_over_the_general_one() -> None:
    result = _in_fresh_process(
        _WITHOUT_GRPC + _CONFIGURE,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="http/protobuf",
        OTEL_METRICS_EXPORTER="none",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True", "TracerProvider MeterProvider"]


def test_an_unknown_protocol_is_named_with_its_variable() -> None:
    result = _in_fresh_process(_CONFIGURE, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/json")
    assert result.returncode != 0
    assert "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: expected 'http/protobuf' or 'grpc', got 'http/json'" in result.stderr


def test_configure_telemetry_exports_over_otlp_grpc_with_the_grpc_extra() -> None:
    grpc = pytest.importorskip("grpc", reason="the grpc extra: pip install -e '.[test]'")
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    received: list[ExportTraceServiceRequest | ExportMetricsServiceRequest] = []

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: ExportTraceServiceRequest, context: object) -> ExportTraceServiceResponse:
            received.append(request)
            return ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
        def Export(self, request: ExportMetricsServiceRequest, context: object) -> ExportMetricsServiceResponse:
            received.append(request)
            return ExportMetricsServiceResponse()

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    export_one_of_each = (
        "tracer, meter = trace.get_tracer('app'), metrics.get_meter('app')\n"
        "tracer.start_span('over grpc').end()\n"
        "meter.create_counter('app.calls').add(1)\n"
        "trace.get_tracer_provider().shutdown()\n"
        "metrics.get_meter_provider().shutdown()\n"
    )
    try:
        result = _in_fresh_process(
            _CONFIGURE + export_one_of_each,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        )
    finally:
        server.stop(grace=None)
    assert result.returncode == 0, result.stderr

    spans = [
        span.name
        for request in received
        if isinstance(request, ExportTraceServiceRequest)
        for resource_spans in request.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]
    counters = [
        metric.name
        for request in received
        if isinstance(request, ExportMetricsServiceRequest)
        for resource_metrics in request.resource_metrics
        for scope in resource_metrics.scope_metrics
        for metric in scope.metrics
    ]
    assert spans == ["over grpc"]
    assert counters == ["app.calls"]


def test_under_opentelemetry_instrument_each_attempt_has_one_http_span(receiver: _Receiver) -> None:
    """The application's own setup (auto-instrumentation, httpx2 instrumented globally) is used as is; though
    it captures every request header, the key in them is redacted."""
    instrument = os.path.join(os.path.dirname(sys.executable), "opentelemetry-instrument")
    environment = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "instrumented-app",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST": ".*",
    }
    result = subprocess.run(
        [instrument, sys.executable, "-m", "otel_llm", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    assert result.returncode == 0, result.stderr

    spans = []
    for body in receiver.bodies["/v1/traces"]:
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
            assert service == "instrumented-app"  # the distro's providers, not ours
            spans += [span for scope in resource_spans.scope_spans for span in scope.spans]
    attempts = [span for span in spans if span.name in ("chat gpt-4.1-mini", "chat gpt-4o-2", "chat gpt-4.1")]
    assert len(attempts) == 11  # ten calls; the forced fallback adds two failed attempts
    for attempt in attempts:
        children = [span.name for span in spans if span.parent_span_id == attempt.span_id]
        assert children == ["POST"]
    posts = [span for span in spans if span.name == "POST"]
    keys = [
        [value.string_value for value in attribute.value.array_value.values]
        for span in posts
        for attribute in span.attributes
        if attribute.key in ("http.request.header.authorization", "http.request.header.api_key")
    ]
    assert keys == [["[REDACTED]"]] * len(posts)
    assert "demo-key-not-secret" not in b"".join(receiver.bodies["/v1/traces"]).decode(errors="replace")

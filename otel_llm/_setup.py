"""``configure_telemetry()``: OpenTelemetry for an application that has none.

otel-llm records through the global tracer and meter providers, so an
application already set up (by its own code or ``opentelemetry-instrument``)
needs nothing from here, and this function leaves such providers alone. For
the others it installs SDK providers exporting as the standard ``OTEL_*``
variables say: ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (``otlp``,
the default, ``console`` or ``none``), ``OTEL_EXPORTER_OTLP_PROTOCOL`` and its
per-signal forms (``http/protobuf``, the default, or ``grpc``, which needs
``otel-llm[grpc]``), ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_METRIC_EXPORT_INTERVAL``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import metrics, trace

from ._errors import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["configure_telemetry"]

# The SDK and the exporters are imported when configure_telemetry() runs: an
# application with providers of its own never loads them through otel_llm.

_Exporter = TypeVar("_Exporter", "SpanExporter", "MetricExporter")


def configure_telemetry(service_name: str | None = None) -> bool:
    """Install tracer and meter providers with exporters from ``OTEL_*``, where none are installed.

    Returns whether anything was installed. ``service_name`` is used when
    ``OTEL_SERVICE_NAME`` does not name the service.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    install_tracing = isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    install_metrics = _no_meter_provider()
    # Every exporter is made before a provider is installed: a configuration error installs nothing.
    span_exporters = _exporters("OTEL_TRACES_EXPORTER", _SPAN_EXPORTERS) if install_tracing else []
    metric_exporters = _exporters("OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS) if install_metrics else []
    attributes = {SERVICE_NAME: service_name} if service_name and "OTEL_SERVICE_NAME" not in os.environ else {}
    resource = Resource.create(attributes)
    if install_tracing:
        tracer_provider = TracerProvider(resource=resource)
        for span_exporter in span_exporters:
            tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        trace.set_tracer_provider(tracer_provider)
    if install_metrics:
        readers = [PeriodicExportingMetricReader(metric_exporter) for metric_exporter in metric_exporters]
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))
    return install_tracing or install_metrics


def _no_meter_provider() -> bool:
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)


def _grpc_variable(signal: str) -> str | None:
    """The variable that asks for OTLP/gRPC for ``signal`` (``TRACES`` or ``METRICS``); ``None``: OTLP/HTTP."""
    for variable in (f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if protocol := os.environ.get(variable):
            if protocol not in ("http/protobuf", "grpc"):
                raise ConfigError(f"{variable}: expected 'http/protobuf' or 'grpc', got {protocol!r}")
            return variable if protocol == "grpc" else None
    return None


@contextmanager
def _grpc_extra(variable: str) -> Iterator[None]:
    """Around the import of a gRPC exporter: it comes with ``otel-llm[grpc]`` (grpcio is large), and without
    it the error says which variable asked for gRPC and what to install."""
    try:
        yield
    except ModuleNotFoundError:
        raise ConfigError(f"{variable}: 'grpc' needs the gRPC exporter: pip install 'otel-llm[grpc]'") from None


def _otlp_spans() -> SpanExporter:
    if variable := _grpc_variable("TRACES"):
        with _grpc_extra(variable):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
        grpc_spans: SpanExporter = GrpcSpanExporter()  # typed here: mypy may run without the extra
        return grpc_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _otlp_metrics() -> MetricExporter:
    if variable := _grpc_variable("METRICS"):
        with _grpc_extra(variable):
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
        grpc_metrics: MetricExporter = GrpcMetricExporter()  # typed here: mypy may run without the extra
        return grpc_metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()


def _console_spans() -> SpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    return ConsoleSpanExporter()


def _console_metrics() -> MetricExporter:
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

    return ConsoleMetricExporter()


_SPAN_EXPORTERS: dict[str, Callable[[], SpanExporter]] = {"otlp": _otlp_spans, "console": _console_spans}
_METRIC_EXPORTERS: dict[str, Callable[[], MetricExporter]] = {"otlp": _otlp_metrics, "console": _console_metrics}


def _exporters(variable: str, known: dict[str, Callable[[], _Exporter]]) -> list[_Exporter]:
    names = [name.strip() for name in os.environ.get(variable, "otlp").split(",") if name.strip()]
    unknown = [name for name in names if name not in known and name != "none"]
    if unknown:
        raise ConfigError(f"{variable}: unknown exporter {unknown[0]!r} (expected otlp, console or none)")
    return [known[name]() for name in names if name != "none"]

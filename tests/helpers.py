"""What several test modules share."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

AZURE_ENTRY = {
    "provider": "azure",
    "model": "gpt-4o",
    "deployment": "gpt-4o-2",
    "endpoint": "https://example.openai.azure.com",
    "api_version": "2024-10-21",
    "api_key_env": "AZURE_OPENAI_API_KEY",
}


def metric_points(reader: InMemoryMetricReader, name: str, api: str | None) -> list[tuple[dict[str, Any], Any, str]]:
    """(attributes, data point, unit) of metric ``name``, for ``api`` (or any point without an API name)."""
    found = []
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        if point.attributes.get("otel_llm.api.name", api) == api:
                            found.append((dict(point.attributes), point, metric.unit))
    return found

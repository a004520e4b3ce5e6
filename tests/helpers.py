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


KEY = "sk-test-never-shown-0123456789"


def shapes_settings(server: Any, api_version: str = "2024-10-21") -> Any:
    """Aliases of both provider shapes on ``server``: ``mini`` and ``big`` (OpenAI), ``azure`` (a deployment).

    Their key is read from ``TEST_LLM_KEY`` (the test sets it to :data:`KEY`); ``gap_analysis``
    selects ``azure``, everything else ``mini``, and a request model is honoured.
    """
    from otel_llm import LLMSettings

    def openai_model(model: str) -> dict[str, str]:
        return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_LLM_KEY"}

    azure = {
        **AZURE_ENTRY,
        "endpoint": server.azure_endpoint,
        "api_version": api_version,
        "api_key_env": "TEST_LLM_KEY",
    }
    return LLMSettings(
        models={"mini": openai_model("gpt-4.1-mini"), "big": openai_model("gpt-4.1"), "azure": azure},
        model_default="mini",
        api_models={"LLM_MODEL_GAP_ANALYSIS": "azure"},
        enable_llm_model_override=True,
    )


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


def all_telemetry(spans: Any, reader: InMemoryMetricReader) -> str:
    """Every span name, attribute, event and metric attribute, as one text to search."""
    text = []
    for span in spans.get_finished_spans():
        text.append(span.to_json())
    data = reader.get_metrics_data()
    if data is not None:
        text.append(data.to_json())
    return "\n".join(text)


def debian_binary(name: str, needed_by: str) -> str:
    """The path of a Debian package's binary (``.ci/run`` installs it); without it the test is
    skipped, or failed under CI, where a skip would hide that the test did not run."""
    import os
    import shutil

    import pytest

    found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if found is None:
        message = (
            f"the {name} binary is missing: install Debian's package "
            f"(apt-get install -y {name}; .ci/run does) to run {needed_by}"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def billed(server: Any, price: dict[str, float], max_tokens: int, model: str | None = None) -> float:
    """What the provider would bill for the chat requests ``server`` answered (for ``model``, or all):
    their usage, by the embedded server's token rules, at ``price`` (USD per 1M tokens)."""
    from otel_llm.testing import _tokens as tokens

    output_tokens = min(max_tokens, server.reply_words)
    return sum(
        (tokens.prompt_tokens(request.body["messages"]) * price["input"] + output_tokens * price["output"]) / 1e6
        for request in server.requests
        if request.body is not None and (model is None or request.model == model)
    )

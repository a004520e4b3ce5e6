from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from helpers import KEY
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from redis_server import RedisServer

import otel_llm._live
from otel_llm.testing import MockLLMServer

pytest_plugins = ["otel_llm.testing.pytest_plugin", "sdk_clients", "pytester"]

_OURS = ("LLM_", "ENABLE_LLM_", "OPENAI_", "AZURE_OPENAI_", "OTEL_INSTRUMENTATION_GENAI_")

# Real SDK providers, installed globally once, as an application would.
_span_exporter = InMemorySpanExporter()
_tracer_provider = TracerProvider()
_tracer_provider.add_span_processor(SimpleSpanProcessor(_span_exporter))
trace.set_tracer_provider(_tracer_provider)
_metric_reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[_metric_reader]))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from no otel-llm configuration and no process-wide settings."""
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)
    otel_llm._live._forget()
    yield
    otel_llm._live._forget()


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key variables the tests' aliases read (``TEST_LLM_KEY``: :func:`helpers.shapes_settings`)."""
    monkeypatch.setenv("TEST_KEY", "sk-test")
    monkeypatch.setenv("TEST_LLM_KEY", KEY)


@pytest.fixture
def api() -> str:
    """An API name of the test's own, so that cumulative metrics are the test's alone."""
    return f"api-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def session_server() -> Iterator[MockLLMServer]:
    with MockLLMServer() as server:
        yield server


@pytest.fixture
def server(session_server: MockLLMServer) -> MockLLMServer:
    """The embedded server, with no requests or faults left from other tests."""
    session_server.reset()
    return session_server


@pytest.fixture
def spans() -> InMemorySpanExporter:
    """The finished spans, from this test only."""
    _span_exporter.clear()
    return _span_exporter


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """The global metrics (cumulative over the session: tests use their own API names)."""
    return _metric_reader


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the session's server, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()

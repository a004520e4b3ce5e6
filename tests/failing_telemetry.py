"""Calls made under OTel SDK providers whose every part raises: run as a script by test_telemetry_failures.py.

The span processor raises when a span starts or ends (the first argument:
``on_start`` or ``on_end``), the meter provider's
exemplar filter raises on every measurement (so recording any metric raises),
and the periodic metric exporter raises at every export. Each call is made
through otel-llm and through the raw SDK against the same embedded server;
what each returned is printed as one JSON object, with the log lines.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from typing import Any

import openai
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import ExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider


class RaisingProcessor(SpanProcessor):
    def __init__(self, hook: str) -> None:
        self.hook = hook

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.hook == "on_start":
            raise RuntimeError("span processor bug")

    def on_end(self, span: Any) -> None:
        if self.hook == "on_end":
            raise RuntimeError("span processor bug")


class RaisingFilter(ExemplarFilter):
    def should_sample(self, *args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("metric pipeline bug")


class RaisingExporter(MetricExporter):
    def export(self, *args: Any, **kwargs: Any) -> MetricExportResult:
        raise RuntimeError("metric exporter bug")

    def force_flush(self, timeout_millis: float = 0) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


tracer_provider = TracerProvider()
tracer_provider.add_span_processor(RaisingProcessor(sys.argv[1]))
trace.set_tracer_provider(tracer_provider)
reader = PeriodicExportingMetricReader(RaisingExporter(), export_interval_millis=20)
metrics.set_meter_provider(MeterProvider(metric_readers=[reader], exemplar_filter=RaisingFilter()))
log = io.StringIO()
logging.getLogger("otel_llm").addHandler(logging.StreamHandler(log))

from otel_llm import LLMSettings, get_async_llm_client_smart, get_llm_client_smart  # noqa: E402
from otel_llm.testing import MockLLMServer  # noqa: E402

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]


def made(client: Any) -> dict[str, Any]:
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    return {
        "chat": client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content,
        "stream": [chunk.choices[0].delta.content if chunk.choices else None for chunk in stream],
        "responses": client.responses.create(model="m", input="Extract the keywords.").output_text,
        "embeddings": client.embeddings.create(model="m", input=["a b"]).data[0].embedding,
    }


async def made_async(client: Any) -> dict[str, Any]:
    stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    return {
        "chat": (await client.chat.completions.create(model="m", messages=MESSAGES)).choices[0].message.content,
        "stream": [chunk.choices[0].delta.content if chunk.choices else None async for chunk in stream],
        "responses": (await client.responses.create(model="m", input="Extract the keywords.")).output_text,
        "embeddings": (await client.embeddings.create(model="m", input=["a b"])).data[0].embedding,
    }


with MockLLMServer() as server:
    os.environ["FAILING_TELEMETRY_KEY"] = "sk-test"
    settings = LLMSettings(
        models={
            "a": {
                "provider": "openai",
                "model": "m",
                "base_url": server.base_url,
                "api_key_env": "FAILING_TELEMETRY_KEY",
            }
        },
        model_default="a",
        prices={"m": {"input": 1, "output": 2}},
        capture_message_content=True,
    )
    raw = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    raw_async = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
    results = {
        "ours": made(get_llm_client_smart("keywords", settings=settings)),
        "raw": made(raw),
        "ours_async": asyncio.run(made_async(get_async_llm_client_smart("keywords", settings=settings))),
        "raw_async": asyncio.run(made_async(raw_async)),
        "requests": len(server.requests),
    }
reader.force_flush()
results["log"] = [line for line in log.getvalue().splitlines() if line.startswith("otel-llm:")]
print(json.dumps(results))

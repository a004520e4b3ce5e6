"""``otel-llm demo``: the whole path with no key and no network.

It starts the embedded server, configures aliases the way a service would
(environment variables), and calls the APIs through every selection source.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from openai.types.chat import ChatCompletionMessageParam

from ._client import get_llm_client_smart
from ._settings import LLMSettings
from .testing import MockLLMServer

__all__ = ["run_demo"]

_KEY_VARIABLE = "OTEL_LLM_DEMO_API_KEY"
_MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Extract the keywords of this job description."}
]

_Kind = Literal["chat", "chat stream", "embeddings"]


@dataclass(frozen=True)
class _Call:
    api: str
    kind: _Kind = "chat"
    request_model: str | None = None
    headers: dict[str, str] | None = None


_CALLS = [
    _Call("keywords"),  # LLM_MODEL_KEYWORDS
    _Call("gap_analysis", "chat stream"),  # LLM_MODEL_GAP_ANALYSIS, an Azure deployment
    _Call("resume_format"),  # nothing set for it: LLM_MODEL_DEFAULT
    _Call("resume_tailor", headers={"X-LLM-Model": "gpt41-mini"}),
    _Call("resume_tailor", request_model="gpt4o-2"),
    _Call("search_index", "embeddings"),
]


@dataclass(frozen=True)
class _Row:
    api: str
    alias: str
    source: str
    kind: _Kind
    latency_ms: float
    input_tokens: int
    output_tokens: int


def demo_environment(server: MockLLMServer) -> dict[str, str]:
    """The configuration a service would set, pointing at the embedded server."""

    def openai_model(model: str) -> dict[str, str]:
        return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": _KEY_VARIABLE}

    models = {
        "gpt41": openai_model("gpt-4.1"),
        "gpt41-mini": openai_model("gpt-4.1-mini"),
        "gpt4o-2": {
            "provider": "azure",
            "model": "gpt-4o",
            "deployment": "gpt-4o-2",
            "endpoint": server.azure_endpoint,
            "api_version": "2024-10-21",
            "api_key_env": _KEY_VARIABLE,
        },
        "embed-small": openai_model("text-embedding-3-small"),
    }
    return {
        "LLM_MODELS": json.dumps(models),
        "LLM_MODEL_DEFAULT": "gpt41",
        "LLM_MODEL_KEYWORDS": "gpt41-mini",
        "LLM_MODEL_GAP_ANALYSIS": "gpt4o-2",
        "LLM_MODEL_SEARCH_INDEX": "embed-small",
        "ENABLE_LLM_MODEL_OVERRIDE": "true",
        "ENABLE_LLM_MODEL_HEADER": "true",
        _KEY_VARIABLE: "demo-key-not-secret",
    }


def run_demo(print_: Callable[[str], None] = print) -> list[_Row]:
    """Run the demo calls and print what was configured and what each call did."""
    with MockLLMServer() as server, _environment(demo_environment(server)) as environment:
        settings = LLMSettings()  # read from the environment, as in a service
        print_(f"Embedded OpenAI-compatible server: {server.base_url}  (Azure shape: {server.azure_endpoint})")
        print_("Configuration, as a service would set it:")
        for name, value in environment.items():
            if name not in ("LLM_MODELS", _KEY_VARIABLE):
                print_(f"  {name}={value}")
        models = json.loads(environment["LLM_MODELS"])
        print_("  LLM_MODELS=" + ", ".join(f"{alias} -> {e['provider']} {e['model']}" for alias, e in models.items()))
        print_(f"  (every alias reads its key from {_KEY_VARIABLE}, set to a placeholder)")
        print_("")
        rows = [_run(call, settings) for call in _CALLS]
    _print_table(rows, print_)
    print_("")
    print_("The first call to each server includes building its openai client and connection.")
    return rows


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


def _run(call: _Call, settings: LLMSettings) -> _Row:
    client = get_llm_client_smart(call.api, call.request_model, call.headers, settings)
    start = time.perf_counter()
    if call.kind == "embeddings":
        embedded = client.embeddings.create(input=["python", "opentelemetry"])
        tokens = (embedded.usage.prompt_tokens, 0)
    elif call.kind == "chat stream":
        stream = client.chat.completions.create(messages=_MESSAGES, stream=True, stream_options={"include_usage": True})
        usage = [chunk.usage for chunk in stream if chunk.usage][-1]
        tokens = (usage.prompt_tokens, usage.completion_tokens)
    else:
        response = client.chat.completions.create(messages=_MESSAGES)
        assert response.usage is not None
        tokens = (response.usage.prompt_tokens, response.usage.completion_tokens)
    latency_ms = (time.perf_counter() - start) * 1000
    selection = client.selection
    return _Row(selection.api_name, selection.model, selection.source, call.kind, latency_ms, *tokens)


def _print_table(rows: list[_Row], print_: Callable[[str], None]) -> None:
    header = ("API", "alias", "source", "call", "latency ms", "tokens in", "tokens out")
    cells = [header] + [
        (r.api, r.alias, r.source, r.kind, f"{r.latency_ms:.1f}", str(r.input_tokens), str(r.output_tokens))
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = {4, 5, 6}
    for index, row in enumerate(cells):
        aligned = (cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        print_("  ".join(aligned))
        if index == 0:
            print_("  ".join("-" * w for w in widths))

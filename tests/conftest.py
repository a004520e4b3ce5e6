from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import otel_llm._settings

_OURS = ("LLM_", "ENABLE_LLM_", "OPENAI_", "AZURE_OPENAI_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from no otel-llm configuration and no process-wide settings."""
    for name in list(os.environ):
        if name.startswith(_OURS):
            monkeypatch.delenv(name)
    otel_llm._settings._current = None
    yield
    otel_llm._settings._current = None


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

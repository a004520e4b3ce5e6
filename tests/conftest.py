from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import otel_llm._settings
from otel_llm.testing import MockLLMServer

pytest_plugins = ["otel_llm.testing.pytest_plugin"]

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


@pytest.fixture(scope="session")
def session_server() -> Iterator[MockLLMServer]:
    with MockLLMServer() as server:
        yield server


@pytest.fixture
def server(session_server: MockLLMServer) -> MockLLMServer:
    """The embedded server, with no requests or faults left from other tests."""
    session_server.reset()
    return session_server

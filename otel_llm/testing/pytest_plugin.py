"""pytest plugin: the ``llm_server`` fixture, and circuit breakers that start closed in every test.

Opt in from a ``conftest.py`` with ``pytest_plugins = ["otel_llm.testing.pytest_plugin"]``;
it is not auto-loaded, so test suites that never use it do not import ``openai``.

Breaker state lives in the process (``LLM_BREAKER_FAILURES`` failures of one
endpoint open it for ``LLM_BREAKER_COOLDOWN_S``): without the reset, a test
that makes a model fail would make later, unrelated tests skip it silently.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._state import reset_breakers
from . import MockLLMServer

__all__ = ["llm_server", "otel_llm_breakers_reset"]


@pytest.fixture(autouse=True)
def otel_llm_breakers_reset() -> Iterator[None]:
    """Every test starts, and leaves, with every circuit breaker closed."""
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def llm_server() -> Iterator[MockLLMServer]:
    """A started :class:`~otel_llm.testing.MockLLMServer`, stopped after the test."""
    with MockLLMServer() as server:
        yield server

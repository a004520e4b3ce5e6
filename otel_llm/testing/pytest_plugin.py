"""pytest plugin with the ``llm_server`` fixture.

Opt in from a ``conftest.py`` with ``pytest_plugins = ["otel_llm.testing.pytest_plugin"]``;
it is not auto-loaded, so test suites that never use it do not import ``openai``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import MockLLMServer

__all__ = ["llm_server"]


@pytest.fixture
def llm_server() -> Iterator[MockLLMServer]:
    """A started :class:`~otel_llm.testing.MockLLMServer`, stopped after the test."""
    with MockLLMServer() as server:
        yield server

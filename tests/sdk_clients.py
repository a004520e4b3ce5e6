"""Raw ``openai`` clients on the embedded server: the tests of the server itself speak through them."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import openai
import pytest

from otel_llm.testing import MockLLMServer

AUTH = {"Authorization": "Bearer test-key"}
API_VERSION = "2025-04-01-preview"  # an Azure API version that has the Responses API


@pytest.fixture
def client(llm_server: MockLLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm_server.base_url, api_key="test-key", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def azure(llm_server: MockLLMServer) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=llm_server.azure_endpoint, api_version=API_VERSION, api_key="test-key", max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture
def http(llm_server: MockLLMServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=llm_server.url, timeout=5) as raw:
        yield raw

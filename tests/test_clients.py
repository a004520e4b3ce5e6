"""The drop-in clients, through real HTTP to the embedded server."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from typing import Any

import openai
import pytest
from forward_proxy import ForwardProxy
from helpers import KEY, shapes_settings
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import otel_llm._providers as providers
from otel_llm import (
    AsyncLLMClient,
    ConfigError,
    LLMClient,
    LLMSettings,
    Price,
    UnknownModelError,
    get_async_llm_client_smart,
    get_llm_client_smart,
    select_model,
)
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords of this text."}]


@pytest.fixture
def settings(server: MockLLMServer) -> LLMSettings:
    settings: LLMSettings = shapes_settings(server)
    return settings


PROVIDERS = [("keywords", "openai"), ("gap_analysis", "azure")]


def assert_sent(request, shape: str) -> None:  # type: ignore[no-untyped-def]
    """The request reached the provider the way that provider expects it."""
    if shape == "openai":
        assert request.shape == "openai"
        assert request.model == "gpt-4.1-mini" and request.body["model"] == "gpt-4.1-mini"
        assert request.headers["authorization"] == f"Bearer {KEY}"
    else:
        assert request.shape == "azure"
        assert request.path.startswith("/openai/deployments/gpt-4o-2/")
        assert request.query["api-version"] == "2024-10-21"
        assert request.headers["api-key"] == KEY
        assert request.body["model"] == "gpt-4o-2"  # the deployment is what is sent


@pytest.mark.parametrize(("api", "shape"), PROVIDERS)
def test_chat(server: MockLLMServer, settings: LLMSettings, api: str, shape: str) -> None:
    client = get_llm_client_smart(api, settings=settings)
    response = client.chat.completions.create(messages=MESSAGES, temperature=0.2)

    assert isinstance(client, LLMClient)
    assert type(response) is ChatCompletion
    assert response.choices[0].message.content
    assert response.usage is not None and response.usage.prompt_tokens > 0
    [request] = server.requests
    assert request.endpoint == "chat.completions"
    assert request.body["messages"] == MESSAGES and request.body["temperature"] == 0.2
    assert_sent(request, shape)


@pytest.mark.parametrize(("api", "shape"), PROVIDERS)
def test_chat_stream(server: MockLLMServer, settings: LLMSettings, api: str, shape: str) -> None:
    client = get_llm_client_smart(api, settings=settings)
    whole = client.chat.completions.create(messages=MESSAGES)
    stream = client.chat.completions.create(messages=MESSAGES, stream=True)

    assert isinstance(stream, openai.Stream)
    chunks = list(stream)
    assert all(type(chunk) is ChatCompletionChunk for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert server.requests[-1].body["stream"] is True
    assert_sent(server.requests[-1], shape)


@pytest.mark.parametrize(("api", "shape"), PROVIDERS)
def test_embeddings(server: MockLLMServer, settings: LLMSettings, api: str, shape: str) -> None:
    client = get_llm_client_smart(api, settings=settings)
    response = client.embeddings.create(input=["one text", "another text"])

    assert type(response) is CreateEmbeddingResponse
    assert [item.index for item in response.data] == [0, 1]
    assert all(len(item.embedding) > 0 and isinstance(item.embedding[0], float) for item in response.data)
    [request] = server.requests
    assert request.endpoint == "embeddings" and request.body["input"] == ["one text", "another text"]
    assert_sent(request, shape)


@pytest.mark.anyio
@pytest.mark.parametrize(("api", "shape"), PROVIDERS)
async def test_async_chat_stream_and_embeddings(
    server: MockLLMServer, settings: LLMSettings, api: str, shape: str
) -> None:
    client = get_async_llm_client_smart(api, settings=settings)
    response = await client.chat.completions.create(messages=MESSAGES)
    stream = await client.chat.completions.create(messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    embeddings = await client.embeddings.create(input="one text")

    assert isinstance(client, AsyncLLMClient)
    assert type(response) is ChatCompletion
    assert isinstance(stream, openai.AsyncStream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == response.choices[0].message.content
    assert type(embeddings) is CreateEmbeddingResponse
    assert [r.endpoint for r in server.requests] == ["chat.completions", "chat.completions", "embeddings"]
    for request in server.requests:
        assert_sent(request, shape)


def test_selection_is_exposed_and_fills_the_model(server: MockLLMServer, settings: LLMSettings) -> None:
    client = get_llm_client_smart("resume_format", headers={"X-LLM-Model": "big"}, settings=settings)
    assert (client.selection.model, client.selection.source) == ("mini", "default")  # header flag is off
    client.chat.completions.create(messages=MESSAGES)
    assert server.requests[-1].model == "gpt-4.1-mini"
    assert "Selection(api_name='resume_format', model='mini', source='default')" in repr(client)


def test_request_model_and_an_explicit_model_select_the_alias(server: MockLLMServer, settings: LLMSettings) -> None:
    client = get_llm_client_smart("keywords", request_model="big", settings=settings)
    assert (client.selection.model, client.selection.source) == ("big", "request")
    client.chat.completions.create(messages=MESSAGES)
    client.chat.completions.create(messages=MESSAGES, model="azure")  # counts as request_model
    client.embeddings.create(input="x", model="mini")
    assert [r.model for r in server.requests] == ["gpt-4.1", "gpt-4o-2", "gpt-4.1-mini"]


def test_an_explicit_model_is_ignored_while_the_override_flag_is_off(
    server: MockLLMServer, settings: LLMSettings
) -> None:
    locked = settings.model_copy(update={"enable_llm_model_override": False})
    client = get_llm_client_smart("keywords", request_model="big", settings=locked)
    client.chat.completions.create(messages=MESSAGES, model="big")
    assert client.selection.source == "default"
    assert server.requests[-1].model == "gpt-4.1-mini"


def test_an_explicit_unknown_model_is_rejected_before_any_request(server: MockLLMServer, settings: LLMSettings) -> None:
    client = get_llm_client_smart("keywords", settings=settings)
    with pytest.raises(UnknownModelError, match="unknown model 'gpt-9' from the request_model argument"):
        client.chat.completions.create(messages=MESSAGES, model="gpt-9")
    assert server.requests == []


def test_module_level_settings_are_used_by_default(server: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LLM_MODELS",
        json.dumps(
            {
                "mini": {
                    "provider": "openai",
                    "model": "gpt-4.1-mini",
                    "base_url": server.base_url,
                    "api_key_env": "TEST_LLM_KEY",
                }
            }
        ),
    )
    monkeypatch.setenv("LLM_MODEL_KEYWORDS", "mini")
    response = get_llm_client_smart("keywords").chat.completions.create(messages=MESSAGES)
    assert response.model == "gpt-4.1-mini"


def test_underlying_clients_are_cached_per_server_and_key(
    server: MockLLMServer, settings: LLMSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    mini, big, azure = (settings.endpoints[name] for name in ("mini", "big", "azure"))
    first = providers.sync_client("mini", mini).client

    assert providers.sync_client("mini", mini).client is first
    assert providers.sync_client("big", big).client is first  # same server, same key: one pool
    assert providers.sync_client("azure", azure).client is not first
    assert first.max_retries == 0
    assert isinstance(providers.sync_client("azure", azure).client, openai.AzureOpenAI)

    monkeypatch.setenv("TEST_LLM_KEY", "sk-rotated")
    rotated = providers.sync_client("mini", mini).client
    assert rotated is not first and rotated.api_key == "sk-rotated"


def test_a_client_per_request_reuses_one_connection(server: MockLLMServer, settings: LLMSettings) -> None:
    get_llm_client_smart("keywords", settings=settings).chat.completions.create(messages=MESSAGES)
    opened = server.connections_opened
    for _ in range(20):
        get_llm_client_smart("keywords", settings=settings).chat.completions.create(messages=MESSAGES)
    assert server.connections_opened == opened
    assert len({request.connection for request in server.requests}) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("bypassed", [False, True], ids=["HTTP_PROXY", "NO_PROXY"])
async def test_clients_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, bypassed: bool
) -> None:
    """``HTTP_PROXY`` and ``NO_PROXY`` hold for sync and async clients, streams included, as for the SDK's own."""
    with ForwardProxy() as proxy, MockLLMServer() as upstream:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        if bypassed:
            monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        settings = shapes_settings(upstream)
        sync = get_llm_client_smart("keywords", settings=settings)
        async_client = get_async_llm_client_smart("keywords", settings=settings)
        raw = openai.OpenAI(base_url=upstream.base_url, api_key="k", max_retries=0)

        answers = [
            sync.chat.completions.create(messages=MESSAGES).choices[0].message.content,
            "".join(
                chunk.choices[0].delta.content or ""
                for chunk in sync.chat.completions.create(messages=MESSAGES, stream=True)
                if chunk.choices
            ),
            (await async_client.chat.completions.create(messages=MESSAGES)).choices[0].message.content,
            raw.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES).choices[0].message.content,
        ]

    assert len(upstream.requests) == 4 and len(set(answers)) == 1 and answers[0]
    assert proxy.forwarded == ([] if bypassed else [f"{upstream.base_url}/chat/completions"] * 4)


def test_async_clients_work_across_event_loops(server: MockLLMServer, settings: LLMSettings) -> None:
    async def call() -> str:
        client = get_async_llm_client_smart("keywords", settings=settings)
        response = await client.chat.completions.create(messages=MESSAGES)
        return response.model

    # asyncio.run makes a new loop each time; a pool from a closed loop must not be reused.
    assert asyncio.run(call()) == asyncio.run(call()) == "gpt-4.1-mini"


def test_the_sdk_does_not_retry_by_itself(server: MockLLMServer, settings: LLMSettings) -> None:
    once = settings.model_copy(update={"retry_attempts": 1})
    server.add_faults("gpt-4.1-mini", Fault.status(503))
    with pytest.raises(openai.InternalServerError):
        get_llm_client_smart("keywords", settings=once).chat.completions.create(messages=MESSAGES)
    assert len(server.requests) == 1


def test_the_call_timeout_bounds_a_slow_call(server: MockLLMServer, settings: LLMSettings) -> None:
    server.add_faults("gpt-4.1-mini", Fault.delay(2.0))
    impatient = settings.model_copy(update={"call_timeout_s": 0.3})
    with pytest.raises(openai.APITimeoutError):
        get_llm_client_smart("keywords", settings=impatient).chat.completions.create(messages=MESSAGES)


def test_a_missing_key_is_a_config_error_naming_the_variable(
    settings: LLMSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_LLM_KEY")
    client = get_llm_client_smart("keywords", settings=settings)
    with pytest.raises(ConfigError, match=r"^TEST_LLM_KEY is not set: alias 'mini' reads its API key from it$"):
        client.chat.completions.create(messages=MESSAGES)


def test_the_key_is_never_shown(settings: LLMSettings) -> None:
    client = get_llm_client_smart("gap_analysis", settings=settings)
    shown = [repr(client), repr(client.selection), repr(settings), str(settings.model_dump())]
    assert not any(KEY in text for text in shown)


def test_clients_go_away_with_their_settings(server: MockLLMServer) -> None:
    settings = shapes_settings(server)  # not the fixture's: pytest holds those until the test ends
    client = get_llm_client_smart("keywords", settings=settings)
    client.chat.completions.create(messages=MESSAGES)
    settings_ref, client_ref = weakref.ref(settings), weakref.ref(client)
    del client, settings
    gc.collect()
    assert settings_ref() is None and client_ref() is None


def test_a_copy_of_the_settings_selects_by_its_own_values(server: MockLLMServer, settings: LLMSettings) -> None:
    assert get_llm_client_smart("keywords", settings=settings).selection.model == "mini"
    copied = settings.model_copy(update={"model_default": "big"})
    assert get_llm_client_smart("keywords", settings=copied).selection.model == "big"
    assert get_llm_client_smart("keywords", settings=settings).selection.model == "mini"
    assert get_llm_client_smart("keywords", settings=settings) is get_llm_client_smart("keywords", settings=settings)


def test_a_copy_without_per_api_models_and_with_new_prices_starts_from_fresh_memos(
    server: MockLLMServer, settings: LLMSettings, spans: Any
) -> None:
    assert select_model("gap_analysis", settings=settings).source == "env"
    assert select_model("gap_analysis", settings=settings.model_copy(update={"api_models": {}})).source == "default"

    messages = [{"role": "user", "content": "Extract the keywords."}]
    get_llm_client_smart("keywords", settings=settings).chat.completions.create(messages=messages)
    dearer = settings.model_copy(update={"prices": {"gpt-4.1-mini": Price(input=1000, output=1000)}})
    get_llm_client_smart("keywords", settings=dearer).chat.completions.create(messages=messages)
    costs = [s.attributes["otel_llm.cost.usd"] for s in spans.get_finished_spans() if s.name == "chat keywords"]
    assert len(costs) == 2 and costs[1] > 100 * costs[0]

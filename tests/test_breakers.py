"""Circuit breakers: per endpoint, opened by streams too, kept across reloads, reset between tests (SPEC §5)."""

from __future__ import annotations

import json

import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_llm
from otel_llm import LLMSettings, StreamTruncatedError, get_llm_client_smart
from otel_llm.testing import Fault, MockLLMServer

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]


def entry(server: MockLLMServer, model: str) -> dict[str, str]:
    return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_KEY"}


def two_aliases_of_one_endpoint(server: MockLLMServer) -> LLMSettings:
    """``a`` and ``a-too`` are one endpoint (model-a); both fall back to ``b``."""
    return LLMSettings(
        models={"a": entry(server, "model-a"), "a-too": entry(server, "model-a"), "b": entry(server, "model-b")},
        fallbacks={"a": ["b"], "a-too": ["b"]},
        model_default="a",
        retry_attempts=1,
        breaker_failures=2,
        breaker_cooldown_s=60,
    )


def sent(server: MockLLMServer) -> list[str]:
    return [request.model or "" for request in server.requests]


def open_model_a(server: MockLLMServer, settings: LLMSettings, api: str) -> None:
    server.add_faults("model-a", Fault.status(503), Fault.status(503))
    client = get_llm_client_smart(api, settings=settings)
    for _ in range(2):
        client.chat.completions.create(messages=MESSAGES)
    server.reset()


def test_five_streams_cut_mid_answer_open_the_breaker(server: MockLLMServer, api: str) -> None:
    settings = two_aliases_of_one_endpoint(server)
    client = get_llm_client_smart(api, settings=settings)
    for _ in range(5):
        server.add_faults("model-a", Fault.cut_stream(after_chunks=3, clean=True))
    truncated = 0
    for _ in range(5):
        stream = client.chat.completions.create(messages=MESSAGES, stream=True)
        try:
            list(stream)
        except StreamTruncatedError:
            truncated += 1
    # Two cut streams opened model-a's breaker; the next three went to b and were whole.
    assert truncated == 2
    assert sent(server) == ["model-a", "model-a", "model-b", "model-b", "model-b"]


def test_aliases_of_one_endpoint_share_its_breaker(server: MockLLMServer, api: str) -> None:
    settings = two_aliases_of_one_endpoint(server)
    open_model_a(server, settings, api)
    response = get_llm_client_smart(
        api, request_model="a-too", settings=settings.model_copy(update={"enable_llm_model_override": True})
    ).chat.completions.create(messages=MESSAGES)
    assert response.model == "model-b" and sent(server) == ["model-b"]


def test_a_reload_keeps_the_state_of_the_endpoints_it_still_has(
    server: MockLLMServer, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = {"primary": entry(server, "model-a"), "b": entry(server, "model-b"), "c": entry(server, "model-c")}
    monkeypatch.setenv("LLM_MODELS", json.dumps(models))
    monkeypatch.setenv("LLM_FALLBACKS", '{"primary": ["b"]}')
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "primary")
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("LLM_BREAKER_FAILURES", "2")
    open_model_a(server, otel_llm.reload_settings(), api)

    # The same endpoint under a new alias, and a new fallback: model-a is still skipped.
    renamed = {"renamed": models["primary"], "c": models["c"]}
    monkeypatch.setenv("LLM_MODELS", json.dumps(renamed))
    monkeypatch.setenv("LLM_FALLBACKS", '{"renamed": ["c"]}')
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "renamed")
    otel_llm.reload_settings()
    assert get_llm_client_smart(api).chat.completions.create(messages=MESSAGES).model == "model-c"
    assert sent(server) == ["model-c"]


def test_reset_breakers_closes_every_breaker(server: MockLLMServer, spans: InMemorySpanExporter, api: str) -> None:
    settings = two_aliases_of_one_endpoint(server)
    open_model_a(server, settings, api)
    otel_llm.reset_breakers()
    assert get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES).model == "model-a"


def test_the_pytest_plugin_resets_breakers_between_tests(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["otel_llm.testing.pytest_plugin"]')
    pytester.makepyfile(
        """
        import openai
        from otel_llm import LLMSettings, get_llm_client_smart
        from otel_llm.testing import Fault

        MESSAGES = [{"role": "user", "content": "hi"}]

        def settings(server):
            entry = {"provider": "openai", "base_url": server.base_url, "api_key_env": "PYTESTER_KEY"}
            return LLMSettings(
                models={"a": {**entry, "model": "model-a"}, "b": {**entry, "model": "model-b"}},
                fallbacks={"a": ["b"]}, model_default="a", retry_attempts=1, breaker_failures=1,
            )

        def test_one_makes_model_a_fail(llm_server, monkeypatch):
            monkeypatch.setenv("PYTESTER_KEY", "sk-test")
            llm_server.add_faults("model-a", Fault.status(503))
            client = get_llm_client_smart("keywords", settings=settings(llm_server))
            assert client.chat.completions.create(messages=MESSAGES).model == "model-b"

        def test_two_is_not_skipped_past_model_a(llm_server, monkeypatch):
            monkeypatch.setenv("PYTESTER_KEY", "sk-test")
            client = get_llm_client_smart("keywords", settings=settings(llm_server))
            assert client.chat.completions.create(messages=MESSAGES).model == "model-a"
        """
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_a_non_retryable_error_does_not_count_against_the_endpoint(server: MockLLMServer, api: str) -> None:
    settings = two_aliases_of_one_endpoint(server)
    client = get_llm_client_smart(api, settings=settings)
    server.add_faults("model-a", Fault.status(503), Fault.status(400), Fault.status(503))
    client.chat.completions.create(messages=MESSAGES)  # 503: one failure, b answers
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(messages=MESSAGES)  # 400: model-a answered, the count starts over
    client.chat.completions.create(messages=MESSAGES)  # 503: one failure again, b answers
    assert client.chat.completions.create(messages=MESSAGES).model == "model-a"  # still closed

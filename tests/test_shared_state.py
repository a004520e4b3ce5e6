"""Budgets and breakers shared by replicas through a real Redis server (LLM_STATE_URL), and outages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from helpers import billed, metric_points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis_server import RedisServer

from otel_llm import BudgetExceededError, get_llm_client_smart, reload_settings
from otel_llm._errors import StateUnavailableError
from otel_llm.testing import Fault, MockLLMServer

HERE = Path(__file__).parent
PRICE = {"input": 10.0, "output": 20.0}  # USD per 1M tokens: dear, so that a $0.05 budget ends in ~130 calls
MAX_TOKENS = 32
MESSAGES = [{"role": "user", "content": "Extract the keywords."}]


def configure(monkeypatch: pytest.MonkeyPatch, server: MockLLMServer, state_url: str, usd: float, **more: str) -> None:
    model = {"provider": "openai", "model": "gpt-4.1", "base_url": server.base_url, "api_key_env": "TEST_KEY"}
    monkeypatch.setenv("LLM_MODELS", json.dumps({"big": model}))
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "big")
    monkeypatch.setenv("LLM_PRICES", json.dumps({"gpt-4.1": PRICE}))
    monkeypatch.setenv("LLM_BUDGETS", json.dumps({"keywords": {"usd": usd, "window": "day"}}))
    monkeypatch.setenv("LLM_STATE_URL", state_url)
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "1")
    for name, value in more.items():
        monkeypatch.setenv(name, value)


def test_replicas_racing_never_overspend_a_shared_budget(
    server: MockLLMServer, redis_client: redis.Redis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4 processes x 8 threads call one API with a $0.05 budget until each thread is refused."""
    budget = 0.05
    configure(monkeypatch, server, redis_server.url, budget)
    started = time.monotonic()
    replicas = [
        subprocess.Popen([sys.executable, str(HERE / "budget_race.py"), "8"], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [json.loads(replica.communicate(timeout=120)[0]) for replica in replicas]
    answered = sum(result.get("answered", 0) for result in results)
    refused = sum(result.get("refused", 0) for result in results)
    spent = billed(server, PRICE, MAX_TOKENS)
    print(
        f"4 replicas x 8 threads, budget ${budget}: {answered} calls answered, {refused} refused, "
        f"${spent:.6f} billed by the server's usage, in {time.monotonic() - started:.1f} s"
    )
    assert refused == 32  # every thread ended refused
    assert answered == len(server.requests) > 0
    assert spent <= budget


def test_open_carries_on_through_an_outage_and_accounting_resumes_on_the_server(
    server: MockLLMServer,
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    metric_reader: InMemoryMetricReader,
) -> None:
    configure(monkeypatch, server, redis_server.url, 10.0, LLM_STATE_FAILURE="open")
    reload_settings()
    client = get_llm_client_smart("keywords")
    errors_before = sum(p.value for _, p, _ in metric_points(metric_reader, "otel_llm.state.errors", None))
    client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    assert _server_spent(redis_client) > 0
    redis_server.kill()
    try:
        for _ in range(5):  # no call fails because the state server is gone
            client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    finally:
        redis_server.start()
    errors = sum(p.value for _, p, _ in metric_points(metric_reader, "otel_llm.state.errors", None)) - errors_before
    assert errors >= 1
    fresh = redis.Redis.from_url(redis_server.url, decode_responses=True)
    deadline = time.monotonic() + 10
    while _server_spent(fresh) == 0:  # the server lost everything; once the back-off ends, calls count there again
        assert time.monotonic() < deadline, "accounting did not resume on the restarted server"
        client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
        time.sleep(0.1)
    fresh.close()


def test_closed_fails_the_calls_fast_while_the_server_is_gone(
    server: MockLLMServer, redis_client: redis.Redis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, server, redis_server.url, 10.0, LLM_STATE_FAILURE="closed", LLM_CALL_TIMEOUT_S="5")
    reload_settings()
    client = get_llm_client_smart("keywords")
    client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    redis_server.kill()
    durations = []
    try:
        for _ in range(5):
            started = time.monotonic()
            with pytest.raises(StateUnavailableError) as error:
                client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
            durations.append(time.monotonic() - started)
    finally:
        redis_server.start()
    print(f"closed, server gone: calls failed in {', '.join(f'{d * 1000:.1f} ms' for d in durations)}")
    assert max(durations) < 5  # none waits for LLM_CALL_TIMEOUT_S
    assert f"127.0.0.1:{redis_server.port}" in str(error.value)
    assert len(server.requests) == 1  # nothing was sent without its reservation
    deadline = time.monotonic() + 10
    while True:  # back once its back-off ends
        try:
            client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
            break
        except StateUnavailableError:
            assert time.monotonic() < deadline, "calls did not resume with the server back"
            time.sleep(0.1)


def test_a_budget_refusal_names_the_api_even_with_a_shared_store(
    server: MockLLMServer, redis_client: redis.Redis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, server, redis_server.url, 0.0001)
    reload_settings()
    with pytest.raises(BudgetExceededError, match=r"API 'keywords' is over its budget of \$0.0001 per day"):
        get_llm_client_smart("keywords").chat.completions.create(messages=MESSAGES)
    assert server.requests == []


def _server_spent(client: redis.Redis) -> int:
    return sum(
        int(client.hget(key, "spent") or 0)
        for key in client.scan_iter("otel_llm:budget:*")
        if client.type(key) == "hash"
    )


def test_check_pings_the_state_server_and_resolve_shows_what_is_left(
    server: MockLLMServer,
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from otel_llm.cli import main

    configure(monkeypatch, server, redis_server.url, 1.0)
    reload_settings()
    get_llm_client_smart("keywords").chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "budget keywords  $1 per day" in out
    assert f"127.0.0.1:{redis_server.port} answers (LLM_STATE_FAILURE=open)" in out
    assert main(["resolve", "keywords"]) == 0
    out = capsys.readouterr().out
    assert "budget           $1 per day (UTC), then BudgetExceededError" in out
    assert f"budget left      ${1.0 - billed(server, PRICE, MAX_TOKENS):.6f} (shared by every replica)" in out

    redis_server.kill()
    try:
        assert main(["check"]) == 1
        assert f"the state server 127.0.0.1:{redis_server.port} is unavailable" in capsys.readouterr().err
    finally:
        redis_server.start()


def test_a_breaker_opened_in_one_replica_is_open_in_another_at_its_next_call(
    server: MockLLMServer, redis_client: redis.Redis, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def model(name: str) -> dict[str, str]:
        return {"provider": "openai", "model": name, "base_url": server.base_url, "api_key_env": "TEST_KEY"}

    monkeypatch.setenv("LLM_MODELS", json.dumps({"primary": model("gpt-4.1"), "backup": model("gpt-4.1-mini")}))
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "primary")
    monkeypatch.setenv("LLM_FALLBACKS", json.dumps({"primary": ["backup"]}))
    monkeypatch.setenv("LLM_STATE_URL", redis_server.url)
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("LLM_BREAKER_FAILURES", "2")
    monkeypatch.setenv("LLM_BREAKER_COOLDOWN_S", "60")
    reload_settings()
    server.add_faults("gpt-4.1", Fault.status(503), Fault.status(503))
    client = get_llm_client_smart("keywords")
    for _ in range(2):  # each saved by the backup; the second failure opens the primary's breaker
        assert client.chat.completions.create(messages=MESSAGES).model == "gpt-4.1-mini"
    sent_to_primary = sum(r.model == "gpt-4.1" for r in server.requests)

    other_replica = (
        "from otel_llm import get_llm_client_smart\n"
        "client = get_llm_client_smart('keywords')\n"
        "print(client.chat.completions.create(messages=[{'role': 'user', 'content': 'hi'}]).model)"
    )
    answered = subprocess.run([sys.executable, "-c", other_replica], capture_output=True, text=True, check=True)
    assert answered.stdout.strip() == "gpt-4.1-mini"
    assert sum(r.model == "gpt-4.1" for r in server.requests) == sent_to_primary == 2  # the replica skipped it

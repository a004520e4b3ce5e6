"""LLM_BUDGETS: a reservation before each attempt, settled to the real cost; redirect or refuse past it."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime

import pytest
from helpers import billed, metric_points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm import ConfigError, LLMSettings, get_async_llm_client_smart, get_llm_client_smart
from otel_llm import _budgets as budgets
from otel_llm._errors import BudgetExceededError
from otel_llm._state import process_store
from otel_llm.testing import MockLLMServer
from otel_llm.testing import _tokens as tokens

MESSAGES = [{"role": "user", "content": "Extract the keywords."}]
PRICE = {"input": 1.0, "output": 2.0}  # USD per 1M tokens: a call's cost is easy to check
MAX_TOKENS = 32


def usd(input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * PRICE["input"] + output_tokens * PRICE["output"]) / 1e6


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The budgets' wall clock, set by the test: ``now[0]``."""
    now = [datetime(2026, 12, 2, 10, 30, tzinfo=UTC).timestamp()]
    monkeypatch.setattr(budgets, "clock", lambda: now[0])
    return now


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    process_store(None, "open").clear()  # type: ignore[attr-defined]  # the process's own: nothing spent


def budgeted(server: MockLLMServer, api: str, usd_limit: float, **budget: object) -> LLMSettings:
    def model(name: str) -> dict[str, str]:
        return {"provider": "openai", "model": name, "base_url": server.base_url, "api_key_env": "TEST_KEY"}

    return LLMSettings(
        models={"big": model("gpt-4.1"), "mini": model("gpt-4.1-mini"), "embed": model("text-embedding-3-small")},
        model_default="big",
        prices={"gpt-4.1": PRICE, "gpt-4.1-mini": {"input": 0.1, "output": 0.2}, "text-embedding-3-small": PRICE},
        budgets={api: {"usd": usd_limit, "window": "day", **budget}},
        retry_attempts=1,
    )


def spent_on_server(server: MockLLMServer, model: str = "gpt-4.1") -> float:
    """What the provider would bill for ``model``'s calls, at the configured price."""
    return billed(server, PRICE, MAX_TOKENS, model)


def test_calls_go_on_until_the_next_worst_case_does_not_fit(
    server: MockLLMServer, api: str, clock: list[float]
) -> None:
    limit = 0.001
    client = get_llm_client_smart(api, settings=budgeted(server, api, limit))
    answered = 0
    with pytest.raises(BudgetExceededError) as refused:
        for _ in range(1000):
            client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
            answered += 1
    spent = spent_on_server(server)
    print(f"budget ${limit}: {answered} calls answered, ${spent:.6f} spent, then refused")
    assert answered == len(server.requests) > 10
    assert spent <= limit
    # Refused only when the next worst case (input bytes, MAX_TOKENS out) would not fit.
    assert spent + usd(len(b'{"messages": [{"role": "user", "content": "Extract the keywords."}]}'), MAX_TOKENS) > limit
    message = str(refused.value)
    assert f"API {api!r} is over its budget of $0.001 per day (LLM_BUDGETS)" in message


def test_a_refused_attempt_goes_to_then_as_a_fallback_step(
    server: MockLLMServer,
    api: str,
    clock: list[float],
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    settings = budgeted(server, api, 0.0001, then="mini")  # less than one worst case of "big"
    response = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=MESSAGES, max_tokens=64)
    assert response.model == "gpt-4.1-mini"
    assert [request.model for request in server.requests] == ["gpt-4.1-mini"]  # nothing was sent to big
    call = next(span for span in spans.get_finished_spans() if span.name == f"chat {api}")
    [event] = [event for event in call.events if event.name == "otel_llm.fallback"]
    assert dict(event.attributes or {}) == {
        "otel_llm.api.name": api,
        "otel_llm.fallback.from": "big",
        "otel_llm.fallback.to": "mini",
        "error.type": "budget_exceeded",
    }
    exceeded = {
        a["otel_llm.outcome"]: p.value for a, p, _ in metric_points(metric_reader, "otel_llm.budget.exceeded", api)
    }
    assert exceeded == {"redirected": 1}


def test_without_then_the_call_is_rejected_and_counted(
    server: MockLLMServer,
    api: str,
    clock: list[float],
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    with pytest.raises(BudgetExceededError):
        get_llm_client_smart(api, settings=budgeted(server, api, 0.00001)).chat.completions.create(messages=MESSAGES)
    assert server.requests == []
    call = next(span for span in spans.get_finished_spans() if span.name == f"chat {api}")
    assert call.attributes["error.type"] == "otel_llm.BudgetExceededError"  # type: ignore[index]
    exceeded = {
        a["otel_llm.outcome"]: p.value for a, p, _ in metric_points(metric_reader, "otel_llm.budget.exceeded", api)
    }
    assert exceeded == {"rejected": 1}


def test_the_remaining_gauge_shows_the_settled_spend(
    server: MockLLMServer, api: str, clock: list[float], metric_reader: InMemoryMetricReader
) -> None:
    client = get_llm_client_smart(api, settings=budgeted(server, api, 1.0))
    client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    [(attributes, point, unit)] = metric_points(metric_reader, "otel_llm.budget.remaining", api)
    assert attributes == {"otel_llm.api.name": api, "otel_llm.budget.window": "day"} and unit == "{USD}"
    assert point.value == pytest.approx(1.0 - spent_on_server(server))


def test_a_stream_holds_its_reservation_until_it_ends(server: MockLLMServer, api: str, clock: list[float]) -> None:
    limit = 3 * usd(200, MAX_TOKENS)  # room for about three worst cases at once
    client = get_llm_client_smart(api, settings=budgeted(server, api, limit))
    open_streams = []
    with pytest.raises(BudgetExceededError):
        for _ in range(10):
            open_streams.append(client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True))
    held = len(open_streams)
    for stream in open_streams:
        list(stream)  # each settles at its real cost when it ends
    more = 0
    with pytest.raises(BudgetExceededError):
        for _ in range(100):
            client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
            more += 1
    print(f"{held} streams held their reservations; after they ended, {more} more calls fitted")
    assert 1 <= held < 10 and more > 0
    assert spent_on_server(server) <= limit


def test_an_unsettled_reservation_lapses_after_the_call_timeout(
    server: MockLLMServer, api: str, clock: list[float]
) -> None:
    settings = budgeted(server, api, usd(150, MAX_TOKENS))  # one worst case (68 input bytes) at a time, not two
    client = get_llm_client_smart(api, settings=settings)
    abandoned = client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True)
    with pytest.raises(BudgetExceededError):
        client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    clock[0] += settings.call_timeout_s + 1  # as if its process had died
    client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    abandoned.close()


def test_a_new_window_releases_the_budget(server: MockLLMServer, api: str, clock: list[float]) -> None:
    # Room for a call of up to 128 output tokens (a worst case of $0.000324), not for one more after a call.
    client = get_llm_client_smart(api, settings=budgeted(server, api, 0.00034))
    clock[0] = datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC).timestamp()
    client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
    with pytest.raises(BudgetExceededError):
        client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS * 4)
    clock[0] += 2  # 00:00:01 the next day (UTC)
    client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS * 4)


def test_embeddings_count_too(server: MockLLMServer, api: str, clock: list[float]) -> None:
    settings = budgeted(server, api, 0.0002).model_copy(update={"model_default": "embed"})
    client = get_llm_client_smart(api, settings=settings)
    with pytest.raises(BudgetExceededError):
        for _ in range(100):
            client.embeddings.create(input=["python opentelemetry budgets"])
    assert 0 < len(server.requests) < 100


def test_threads_racing_never_overspend(server: MockLLMServer, api: str, clock: list[float]) -> None:
    limit = 0.002
    client = get_llm_client_smart(api, settings=budgeted(server, api, limit))
    outcomes: Counter[str] = Counter()

    def worker() -> None:
        while True:
            try:
                client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
            except BudgetExceededError:
                outcomes["refused"] += 1
                return
            outcomes["answered"] += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = spent_on_server(server)
    print(f"16 threads, budget ${limit}: {outcomes['answered']} answered, spent ${spent:.6f}")
    assert spent <= limit and outcomes["refused"] == 16


def test_async_calls_reserve_and_settle_alike(server: MockLLMServer, api: str, clock: list[float]) -> None:
    limit = 0.001
    settings = budgeted(server, api, limit)

    async def until_refused() -> int:
        client = get_async_llm_client_smart(api, settings=settings)
        answered = 0
        try:
            while True:
                await client.chat.completions.create(messages=MESSAGES, max_tokens=MAX_TOKENS)
                await asyncio.sleep(0)  # the settlement task runs
                answered += 1
        except BudgetExceededError:
            return answered

    answered = asyncio.run(until_refused())
    assert answered > 10 and spent_on_server(server) <= limit


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        ({"usd": 0, "window": "day"}, "LLM_BUDGETS['keywords']['usd']: Input should be greater than 0"),
        ({"usd": 5, "window": "week"}, "LLM_BUDGETS['keywords']['window']: Input should be 'minute', 'hour', 'day' or"),
        ({"usd": 5, "window": "day", "then": "nope"}, "LLM_BUDGETS['keywords']['then'] names unknown alias 'nope'"),
        ({"usd": 5, "window": "day", "reserve_output_tokens": 0}, "['reserve_output_tokens']: Input should be greater"),
        ({"usd": 5, "window": "day", "per": "user"}, "LLM_BUDGETS['keywords']['per']: Extra inputs are not permitted"),
    ],
)
def test_bad_budgets_are_rejected_at_load(monkeypatch: pytest.MonkeyPatch, budget: dict, expected: str) -> None:
    import json

    monkeypatch.setenv("LLM_MODEL_DEFAULT", "gpt-4.1-mini")
    monkeypatch.setenv("LLM_BUDGETS", json.dumps({"keywords": budget}))
    with pytest.raises(ConfigError) as error:
        LLMSettings()
    assert expected in str(error.value)


@pytest.mark.parametrize(
    "values",
    [
        {"model_default": "my-finetune"},
        {
            "model_default": "gpt-4.1-mini",
            "models": {"ft": {"provider": "openai", "model": "my-finetune"}},
            "fallbacks": {"gpt-4.1-mini": ["ft"]},
        },
        {
            "model_default": "gpt-4.1-mini",
            "enable_llm_model_header": True,
            "models": {"ft": {"provider": "openai", "model": "my-finetune"}},
        },
    ],
    ids=["selected", "a-fallback", "a-header-may-choose-it"],
)
def test_a_budgeted_api_that_can_reach_an_unpriced_model_is_a_config_error(values: dict) -> None:
    with pytest.raises(ConfigError, match=r"can reach alias .* which has no known price"):
        LLMSettings(budgets={"keywords": {"usd": 5, "window": "day"}}, **values)


def test_an_allowlist_keeps_an_unpriced_model_out_of_a_budgeted_api() -> None:
    LLMSettings(
        model_default="gpt-4.1-mini",
        enable_llm_model_header=True,
        models={"ft": {"provider": "openai", "model": "my-finetune"}},
        allowed_models={"keywords": ["gpt-4.1-mini"]},
        budgets={"keywords": {"usd": 5, "window": "day"}},
    )


@pytest.mark.parametrize(
    ("window", "moment", "label", "ends"),
    [
        ("minute", datetime(2026, 12, 31, 23, 59, 30), "2026-12-31T23:59", datetime(2027, 1, 1)),
        ("hour", datetime(2026, 12, 2, 10, 30), "2026-12-02T10", datetime(2026, 12, 2, 11)),
        ("day", datetime(2026, 12, 31, 23, 59, 59), "2026-12-31", datetime(2027, 1, 1)),
        ("month", datetime(2028, 2, 15), "2028-02", datetime(2028, 3, 1)),  # a leap February
        ("month", datetime(2026, 12, 2), "2026-12", datetime(2027, 1, 1)),
    ],
)
def test_windows_are_calendar_windows_in_utc(window: str, moment: datetime, label: str, ends: datetime) -> None:
    got_label, got_end = budgets.window_of(window, moment.replace(tzinfo=UTC).timestamp())  # type: ignore[arg-type]
    assert (got_label, got_end) == (label, ends.replace(tzinfo=UTC).timestamp())


@pytest.mark.parametrize("text", ["Extract the keywords.", "キーワードを抽出してください。" * 20, "emoji 🚀" * 50])
def test_the_input_estimate_bounds_the_real_token_count_from_above(text: str, server: MockLLMServer) -> None:
    messages = [{"role": "user", "content": text}]
    estimate, output = budgets.upper_bound_tokens({"messages": messages, "max_tokens": 7}, 4096, generates=True)
    assert output == 7
    assert estimate >= tokens.prompt_tokens(messages)
    assert estimate >= len(text)  # a tokenizer's token is at least one byte: bytes bound tokens
    assert budgets.upper_bound_tokens({"input": ["a b"]}, 4096, generates=False)[1] == 0
    assert budgets.upper_bound_tokens({"messages": messages}, 4096, generates=True)[1] == 4096

"""The state stores behind budgets and breakers: in the process and on a real Redis server (SPEC §13)."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import random
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from helpers import metric_points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis_server import RedisServer, breaker_worker, free_port, race_worker

import otel_llm._redis_state
from otel_llm._breaker import Breaker
from otel_llm._errors import StateUnavailableError
from otel_llm._redis_state import RedisState
from otel_llm._state import (
    LOCAL_RESERVATION,
    BreakerCheck,
    LocalState,
    SharedState,
    StateFailure,
    StateStore,
    state_store,
)

HOUR = 3600.0


@pytest.fixture
def closing() -> Iterator[Callable[[Any], Any]]:
    """Closes the stores handed to it at the end of the test."""
    stores: list[StateStore] = []

    def close_later(store: Any) -> Any:
        stores.append(store)
        return store

    yield close_later
    for store in stores:
        store.close()


@pytest.fixture(params=["local", "redis", "shared"])
def store(request: pytest.FixtureRequest, closing: Callable[[Any], Any]) -> StateStore:
    """Each behaviour test runs on both stores, and on Redis behind :class:`SharedState` as calls will use it."""
    if request.param == "local":
        return LocalState()
    request.getfixturevalue("redis_client")
    server: RedisServer = request.getfixturevalue("redis_server")
    remote = closing(RedisState(server.url))
    return remote if request.param == "redis" else SharedState(remote, LocalState(), "closed", server=remote.server)


@pytest.fixture
def t0() -> float:
    """Now, on the wall clock: Redis expires keys by its own clock, so the tests' times start from it."""
    return time.time()


# ---------------------------------------------------------------------------- budgets


def test_reserve_settle_and_remaining_add_up(store: StateStore, t0: float) -> None:
    key, limit, lapse, end = "keywords:day", 1_000, t0 + 60, t0 + HOUR
    first, left = store.reserve(key, 300, limit, lapse, end, t0)
    assert first is not None and left == 700
    second, left = store.reserve(key, 200, limit, lapse, end, t0)
    assert second is not None and second != first and left == 500
    assert store.remaining(key, limit, t0) == 500
    assert store.settle(key, first, 250, end) == 250 + 200  # spent + reserved
    assert store.remaining(key, limit, t0) == 550
    assert store.settle(key, second, 0, end) == 250
    assert store.remaining(key, limit, t0) == 750
    assert store.remaining("another", limit, t0) == limit  # budgets are apart


def test_an_amount_that_fits_exactly_is_reserved_one_more_is_refused(store: StateStore, t0: float) -> None:
    key, limit, lapse, end = "k", 1_000, t0 + 60, t0 + HOUR
    assert store.reserve(key, 1_001, limit, lapse, end, t0) == (None, 1_000)
    whole, left = store.reserve(key, 1_000, limit, lapse, end, t0)
    assert whole is not None and left == 0
    assert store.reserve(key, 1, limit, lapse, end, t0) == (None, 0)
    zero, left = store.reserve(key, 0, limit, lapse, end, t0)
    assert zero is not None and left == 0  # nothing fits in nothing
    # A cost above its reservation (a longer answer than estimated) overspends: what remains goes negative.
    assert store.settle(key, whole, 1_200, end) == 1_200
    assert store.reserve(key, 1, limit, lapse, end, t0) == (None, -200)
    assert store.remaining(key, limit, t0) == -200


def test_amounts_are_exact_up_to_nine_million_dollars(store: StateStore, t0: float) -> None:
    limit = 9_000_000 * 10**9  # $9M in nano-USD, just under 2**53
    big, left = store.reserve("big", limit - 1, limit, t0 + 60, t0 + HOUR, t0)
    assert big is not None and left == 1
    one, left = store.reserve("big", 1, limit, t0 + 60, t0 + HOUR, t0)
    assert one is not None and left == 0
    assert store.reserve("big", 1, limit, t0 + 60, t0 + HOUR, t0) == (None, 0)
    assert store.settle("big", big, limit - 7, t0 + HOUR) == limit - 6
    assert store.remaining("big", limit, t0) == 6


def test_settle_counts_the_cost_even_without_its_reservation(store: StateStore, t0: float) -> None:
    key, limit, end = "k", 1_000, t0 + HOUR
    held, _ = store.reserve(key, 400, limit, t0 + 60, end, t0)
    assert held is not None
    assert store.settle(key, "7:999", 100, end) == 100 + 400  # unknown: only the cost counts
    assert store.settle(key, held, 300, end) == 400
    assert store.settle(key, held, 50, end) == 450  # settled already: the reservation is not released twice
    assert store.remaining(key, limit, t0) == 550


def test_an_unsettled_reservation_lapses_at_its_time(store: StateStore, t0: float) -> None:
    key, limit, end = "k", 1_000, t0 + HOUR
    crashed, _ = store.reserve(key, 600, limit, t0 + 10, end, t0)  # its process will never settle it
    assert crashed is not None
    assert store.reserve(key, 500, limit, t0 + 20, end, t0 + 5) == (None, 400)
    assert store.remaining(key, limit, t0 + 9.999) == 400
    assert store.remaining(key, limit, t0 + 10) == 1_000  # lapse_at <= now: lapsed
    assert store.settle(key, "0:0", 0, end) == 600  # read-only remaining dropped nothing
    later, left = store.reserve(key, 500, limit, t0 + 20, end, t0 + 10)
    assert later is not None and left == 500
    # The crashed process's answer arrives after all: its cost counts, its lapsed reservation is not released twice.
    assert store.settle(key, crashed, 100, end) == 100 + 500


def test_a_budget_is_gone_when_its_window_ends(store: StateStore, t0: float) -> None:
    key, limit = "k:minute", 1_000
    held, _ = store.reserve(key, 300, limit, t0 + 60, t0 + 0.3, t0)
    assert held is not None and store.settle(key, held, 200, t0 + 0.3) == 200
    assert store.remaining(key, limit, t0) == 800
    time.sleep(0.35)  # the real clock: Redis expires keys by it
    now = time.time()
    assert store.remaining(key, limit, now) == limit
    # An end already past: the operation happens, and its state is gone at once.
    late, left = store.reserve(key, 100, limit, now + 60, now - 1, now)
    assert late is not None and left == 900
    assert store.settle(key, late, 100, now - 1) == 100
    assert store.remaining(key, limit, now) == limit


def test_redis_keys_expire_with_their_window(
    redis_client: redis.Redis, redis_server: RedisServer, t0: float, closing: Callable[[Any], Any]
) -> None:
    store = closing(RedisState(redis_server.url))
    held, _ = store.reserve("kw:day", 5, 10, t0 + 60, t0 + 100, t0)
    assert held is not None
    budget, reservations = "otel_llm:budget:{kw:day}", "otel_llm:budget:{kw:day}:reservations"
    assert redis_client.hgetall(budget) == {"seq": "1", "reserved": "5"}
    assert redis_client.zrange(reservations, 0, -1, withscores=True) == [(held, t0 + 60)]
    for name in (budget, reservations):
        assert 99_000 < redis_client.pttl(name) <= 100_000
    store.settle("kw:day", held, 3, t0 + 100)
    assert redis_client.hgetall(budget) == {"seq": "1", "reserved": "0", "spent": "3"}
    assert redis_client.exists(reservations) == 0  # no live reservation, no set
    store.reserve("kw:day", 1, 10, t0 + 60, t0 - 1, t0)
    assert redis_client.keys("otel_llm:*") == []


def test_bad_amounts_are_refused_before_any_round_trip(store: StateStore, t0: float) -> None:
    for amount in (-1, 1.5, True):
        with pytest.raises(ValueError, match="non-negative integer of nano-USD"):
            store.reserve("k", amount, 10, t0 + 60, t0 + HOUR, t0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative integer"):
        store.settle("k", "1:1", -5, t0 + HOUR)


# ---------------------------------------------------------------------------- breakers


def test_breaker_state_machine_step_by_step(store: StateStore, t0: float) -> None:
    key, threshold, cooldown = "openai|https://api.example|gpt-4.1-mini", 2, 30.0
    assert store.breaker_check(key, cooldown, t0) == BreakerCheck(True, None, True)
    assert store.breaker_success(key) is None  # clean: nothing to report
    assert store.breaker_failure(key, threshold, cooldown, t0) is None
    assert store.breaker_check(key, cooldown, t0) == BreakerCheck(True, None, False)  # a failure counted
    assert store.breaker_success(key) is None  # "in a row" broken: failures forgotten
    assert store.breaker_check(key, cooldown, t0).clean
    # Two in a row open it; it skips for the cool-down.
    assert store.breaker_failure(key, threshold, cooldown, t0) is None
    assert store.breaker_failure(key, threshold, cooldown, t0 + 1) == "open"
    assert store.breaker_check(key, cooldown, t0 + 2)[:2] == (False, None)
    assert store.breaker_check(key, cooldown, t0 + 30.9)[:2] == (False, None)
    assert store.breaker_failure(key, threshold, cooldown, t0 + 5) is None  # tried anyway (last of its chain)
    # Past it, one call probes; others are skipped while the probe is out.
    assert store.breaker_check(key, cooldown, t0 + 31.5)[:2] == (True, "half_open")
    assert store.breaker_check(key, cooldown, t0 + 32)[:2] == (False, None)
    # A probe that never reports lets another probe after a cool-down, with no new transition.
    assert store.breaker_check(key, cooldown, t0 + 62) == BreakerCheck(True, None, False)
    assert store.breaker_failure(key, threshold, cooldown, t0 + 63) == "open"  # a failed probe re-opens
    assert store.breaker_check(key, cooldown, t0 + 64)[:2] == (False, None)
    assert store.breaker_check(key, cooldown, t0 + 93.5)[:2] == (True, "half_open")
    assert store.breaker_success(key) == "closed"
    assert store.breaker_check(key, cooldown, t0 + 94) == BreakerCheck(True, None, True)
    assert store.breaker_success(key) is None
    assert store.breaker_check("other", cooldown, t0)[:2] == (True, None)


def test_breaker_follows_the_in_process_breaker_on_random_sequences(store: StateStore, t0: float) -> None:
    """Thousands of random steps: every answer is the one :class:`_breaker.Breaker` gives."""
    rng = random.Random(1234)
    for run in range(20):
        key, reference, now = f"ep-{run}", Breaker(), t0
        threshold, cooldown = rng.randint(1, 4), rng.choice([0.5, 3.0, 10.0])
        for _ in range(100):
            now += rng.choice([0.0, 0.1, 0.4, 1.0, 2.5, 7.0])
            step = rng.choice(["allow", "allow", "failure", "failure", "success"])
            if step == "allow":
                expected: Any = (*reference.allow(cooldown, now), None)
                check = store.breaker_check(key, cooldown, now)
                assert check.clean == reference.clean
                got: Any = (check.allowed, check.moved, None)
            elif step == "failure":
                expected, got = reference.failure(threshold, now), store.breaker_failure(key, threshold, cooldown, now)
            else:
                expected, got = reference.success(), store.breaker_success(key)
            assert got == expected, (run, step, now - t0)


def test_redis_breaker_keys_live_while_they_matter(
    redis_client: redis.Redis, redis_server: RedisServer, t0: float, closing: Callable[[Any], Any]
) -> None:
    store = closing(RedisState(redis_server.url, breaker_idle_s=600))
    store.breaker_check("ep", 30, t0)
    assert redis_client.keys("*") == []  # a closed breaker writes nothing
    store.breaker_failure("ep", 5, 30, t0)
    assert redis_client.hgetall("otel_llm:breaker:ep") == {"failures": "1"}
    assert 599_000 < redis_client.pttl("otel_llm:breaker:ep") <= 600_000
    store.breaker_failure("ep", 5, 400, t0)  # a cool-down longer than half the idle time: kept twice as long
    assert redis_client.hgetall("otel_llm:breaker:ep") == {"failures": "2"}
    assert 799_000 < redis_client.pttl("otel_llm:breaker:ep") <= 800_000
    store.breaker_success("ep")
    assert redis_client.keys("*") == []


def test_async_twins(store: StateStore, t0: float) -> None:
    async def use() -> list[Any]:
        held, left = await store.areserve("k", 40, 100, t0 + 60, t0 + HOUR, t0)
        assert held is not None
        return [
            left,
            await store.asettle("k", held, 30, t0 + HOUR),
            await store.aremaining("k", 100, t0),
            await store.abreaker_failure("ep", 1, 10, t0),
            (await store.abreaker_check("ep", 10, t0 + 1))[:2],
            await store.abreaker_check("ep", 10, t0 + 11),
            await store.abreaker_success("ep"),
            await store.aclose(),
        ]

    assert asyncio.run(use()) == [60, 30, 70, "open", (False, None), (True, "half_open", False), "closed", None]
    # Another event loop: a store keeps a client per loop, the state is the same.
    assert asyncio.run(use())[:3] == [30, 60, 40]


def test_a_restarted_server_is_given_its_scripts_again(
    redis_client: redis.Redis, redis_server: RedisServer, closing: Callable[[Any], Any]
) -> None:
    store = closing(RedisState(redis_server.url))
    assert store.remaining("k", 5, time.time()) == 5
    redis_client.script_flush()  # as a restart would: EVALSHA answers NOSCRIPT, the script is loaded again
    assert store.remaining("k", 5, time.time()) == 5


def test_each_operation_is_one_round_trip(
    redis_client: redis.Redis, redis_server: RedisServer, t0: float, closing: Callable[[Any], Any]
) -> None:
    store = closing(RedisState(redis_server.url))
    store.remaining("warm", 1, t0)  # connected, and the scripts loaded below
    for name in ("reserve", "settle", "breaker_allow", "breaker_success", "breaker_failure"):
        redis_client.script_load(getattr(otel_llm._redis_state, f"_{name.upper()}"))
    redis_client.config_resetstat()
    held, _ = store.reserve("k", 5, 10, t0 + 60, t0 + HOUR, t0)
    store.settle("k", held or "", 4, t0 + HOUR)
    store.remaining("k", 10, t0)
    store.breaker_check("ep", 30, t0)
    store.breaker_failure("ep", 1, 30, t0)
    store.breaker_success("ep")
    stats = redis_client.info("commandstats")
    assert stats["cmdstat_evalsha"]["calls"] == 6
    assert not {"cmdstat_eval", "cmdstat_script", "cmdstat_ping", "cmdstat_hello"} & set(stats)


# ---------------------------------------------------------------------------- races between processes


def test_replicas_racing_never_overspend(redis_client: redis.Redis, redis_server: RedisServer) -> None:
    limit, processes, threads, rounds = 50_000_000, 4, 8, 3
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=race_worker, args=(redis_server.url, "race", limit, threads, rounds, seed, start, out))
        for seed in range(processes)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    total = {name: sum(r[name] for r in results) for name in ("reserves", "refusals", "settles", "reserved", "cost")}
    lowest = min(r["lowest_remaining"] for r in results)
    held = redis_client.hgetall("otel_llm:budget:{race}")
    spent, reserved = int(held["spent"]), int(held["reserved"])
    figures = (
        f"limit {limit}, spent on the server {spent} (workers' costs {total['cost']}), reserved left {reserved}, "
        f"{total['reserves']} reservations ({total['reserved']} nano-USD) and {total['settles']} settles "
        f"by {processes} processes x {threads} threads, {total['refusals']} refusals, "
        f"lowest remaining after a reservation {lowest}"
    )
    print(figures)
    assert spent <= limit, figures
    assert spent == total["cost"] and reserved == 0 and total["settles"] == total["reserves"], figures
    assert redis_client.exists("otel_llm:budget:{race}:reservations") == 0, figures
    assert lowest >= 0, figures  # no reservation ever took the budget past its limit
    assert total["refusals"] == processes * threads * rounds and total["reserves"] > 500, figures


def test_threads_racing_never_overspend_in_the_process() -> None:
    store, limit, now = LocalState(), 5_000_000, time.time()
    costs: list[int] = []
    go = threading.Barrier(8)

    def run(seed: int) -> None:
        rng, held = random.Random(seed), []
        go.wait()
        while (
            reservation := store.reserve("k", rng.randint(1, 20_000), limit, now + 60, now + HOUR, now)[0]
        ) is not None:
            held.append(reservation)
        for reservation in held:
            cost = rng.randint(0, 10)
            costs.append(cost)
            store.settle("k", reservation, cost, now + HOUR)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert store.remaining("k", limit, now) == limit - sum(costs)


def test_a_breaker_opened_by_one_replica_is_open_for_another(
    redis_client: redis.Redis, redis_server: RedisServer, closing: Callable[[Any], Any]
) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    other = ctx.Process(target=breaker_worker, args=(redis_server.url, "ep", 3, 30.0, out))
    other.start()
    assert out.get(timeout=30) == [None, None, "open"]
    other.join(timeout=10)
    store = closing(RedisState(redis_server.url))
    assert store.breaker_check("ep", 30.0, time.time())[:2] == (False, None)  # this process's first call skips it


# ---------------------------------------------------------------------------- outages


@pytest.fixture
def outage_server() -> Iterator[RedisServer]:
    """A server of the test's own, to kill and bring back."""
    with RedisServer() as server:
        yield server


def state_errors(reader: InMemoryMetricReader) -> float:
    return sum(point.value for _, point, _ in metric_points(reader, "otel_llm.state.errors", None))


def timed(operation: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    try:
        result = operation()
    except StateUnavailableError as error:
        result = error
    return time.perf_counter() - started, result


def wait_until_served(shared: SharedState, t0: float, timeout_s: float = 5.0) -> float:
    """Seconds until an operation reaches the server again (after the back-off)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        try:
            shared.remaining("probe", 1, t0)
        except StateUnavailableError:
            pass
        if shared.serving:
            return time.perf_counter() - started
        time.sleep(0.02)
    raise AssertionError("the state server was not used again")


def test_open_carries_on_with_the_process_state_and_resumes_on_the_server(
    outage_server: RedisServer,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
    t0: float,
    closing: Callable[[Any], Any],
) -> None:
    remote, local = closing(RedisState(outage_server.url)), LocalState()
    shared = SharedState(remote, local, "open", server=remote.server, backoff_s=0.2, backoff_max_s=0.5)
    end = t0 + HOUR
    on_server, left = shared.reserve("k", 300, 1_000, t0 + 60, end, t0)
    assert on_server is not None and not on_server.startswith(LOCAL_RESERVATION) and left == 700
    errors = state_errors(metric_reader)

    outage_server.kill()
    caplog.set_level(logging.INFO, "otel_llm")
    first, (during, left) = timed(lambda: shared.reserve("k", 400, 1_000, t0 + 60, end, t0))
    assert during is not None and during.startswith(LOCAL_RESERVATION) and left == 600  # this process's own budget
    skipped, _ = timed(lambda: shared.breaker_failure("ep", 1, 30, t0))  # in the back-off: not even tried
    assert shared.breaker_check("ep", 30, t0 + 1)[:2] == (False, None)  # the local breaker took it
    assert shared.settle("k", on_server, 250, end) == 250 + 400  # settled locally; lapses on the server
    assert shared.remaining("k", 1_000, t0) == 350
    print(f"open, server killed: first operation {first * 1000:.1f} ms, in the back-off {skipped * 1000:.3f} ms")
    assert state_errors(metric_reader) - errors == 5  # each operation the server did not serve
    units = {
        attributes["error.type"]: unit
        for attributes, _, unit in metric_points(metric_reader, "otel_llm.state.errors", None)
    }
    assert units["ConnectionError"] == "{error}"
    assert "is unavailable" in caplog.text and "LLM_STATE_FAILURE=open" in caplog.text

    outage_server.start()
    print(f"open, server back: served again after {wait_until_served(shared, t0) * 1000:.0f} ms")
    assert "serves again" in caplog.text
    back, left = shared.reserve("k", 100, 1_000, t0 + 60, end, t0)
    assert back is not None and not back.startswith(LOCAL_RESERVATION) and left == 900  # the restarted server is empty
    assert shared.settle("k", back, 80, end) == 80
    assert shared.settle("k", during, 390, end) == 250 + 390  # made locally, settled locally
    client = redis.Redis.from_url(outage_server.url, decode_responses=True)
    assert client.hget("otel_llm:budget:{k}", "spent") == "80"  # accounting resumed on the server
    assert shared.breaker_check("ep", 30, t0 + 1)[:2] == (True, None)  # the server's breaker is closed
    errors_then = state_errors(metric_reader)
    shared.remaining("k", 1_000, t0)
    assert state_errors(metric_reader) == errors_then


def test_closed_fails_fast_then_resumes(
    outage_server: RedisServer, metric_reader: InMemoryMetricReader, t0: float, closing: Callable[[Any], Any]
) -> None:
    remote = closing(RedisState(outage_server.url))
    shared = SharedState(remote, LocalState(), "closed", server=remote.server, backoff_s=0.2, backoff_max_s=0.5)
    held, _ = shared.reserve("k", 300, 1_000, t0 + 60, t0 + HOUR, t0)
    assert held is not None
    errors = state_errors(metric_reader)
    outage_server.kill()
    timings = []
    for operation in (
        lambda: shared.reserve("k", 1, 1_000, t0 + 60, t0 + HOUR, t0),
        lambda: shared.settle("k", held, 1, t0 + HOUR),
        lambda: shared.remaining("k", 1_000, t0),
        lambda: shared.breaker_check("ep", 30, t0),
        lambda: shared.breaker_success("ep"),
        lambda: shared.breaker_failure("ep", 1, 30, t0),
    ):
        took, error = timed(operation)
        assert isinstance(error, StateUnavailableError), error
        assert error.server == f"127.0.0.1:{outage_server.port}"
        timings.append(took)
    print("closed, server killed: " + ", ".join(f"{t * 1000:.2f} ms" for t in timings))
    assert max(timings) < 2.0
    assert state_errors(metric_reader) - errors == 6
    outage_server.start()
    wait_until_served(shared, t0)
    assert shared.reserve("k", 1_000, 1_000, t0 + 60, t0 + HOUR, t0)[0] is not None  # the new server is empty


def test_a_hung_server_costs_one_read_timeout_then_nothing(
    outage_server: RedisServer, t0: float, closing: Callable[[Any], Any]
) -> None:
    remote = closing(RedisState(outage_server.url, read_timeout_s=0.3))
    shared = SharedState(remote, LocalState(), "closed", server=remote.server, backoff_s=0.5)
    assert shared.remaining("k", 5, t0) == 5
    outage_server.pause()
    try:
        hung, error = timed(lambda: shared.remaining("k", 5, t0))
        assert isinstance(error, StateUnavailableError) and error.error_type == "TimeoutError"
        skipped, error = timed(lambda: shared.remaining("k", 5, t0))
        assert isinstance(error, StateUnavailableError) and "back-off" in str(error)
        print(f"closed, server hung: first operation {hung * 1000:.0f} ms, in the back-off {skipped * 1000:.3f} ms")
        assert 0.25 < hung < 2.0 and skipped < 0.05
    finally:
        outage_server.resume()
    assert wait_until_served(shared, t0) < 2.0


def test_async_operations_fall_back_and_resume(
    outage_server: RedisServer, t0: float, closing: Callable[[Any], Any]
) -> None:
    remote = closing(RedisState(outage_server.url))
    shared = SharedState(remote, LocalState(), "open", server=remote.server, backoff_s=0.1)

    async def reserve() -> str:
        reservation, _ = await shared.areserve("k", 1, 10, t0 + 60, t0 + HOUR, t0)
        await shared.aclose()
        assert reservation is not None
        return reservation

    assert not asyncio.run(reserve()).startswith(LOCAL_RESERVATION)
    outage_server.kill()
    assert asyncio.run(reserve()).startswith(LOCAL_RESERVATION)
    outage_server.start()
    time.sleep(0.15)
    assert not asyncio.run(reserve()).startswith(LOCAL_RESERVATION)


class _Flaky:
    """A remote store that is down until told otherwise, counting its tries."""

    def __init__(self) -> None:
        self.up = False
        self.tries = 0
        self._state = LocalState()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            self.tries += 1
            if not self.up:
                raise StateUnavailableError("db:6379", "ConnectionError: refused", "ConnectionError")
            return getattr(self._state, name)(*args)

        return call


def test_back_off_doubles_to_its_cap_and_ends_on_success() -> None:
    clock = [0.0]
    remote = _Flaky()
    shared = SharedState(remote, LocalState(), "open", backoff_s=1.0, backoff_max_s=5.0, clock=lambda: clock[0])
    tried_at = []
    for tick in range(300):  # 30 s, an operation every 0.1 s
        clock[0] = tick / 10
        before = remote.tries
        shared.breaker_check("ep", 30, 0)
        if remote.tries > before:
            tried_at.append(clock[0])
    assert tried_at == [0.0, 1.0, 3.0, 7.0, 12.0, 17.0, 22.0, 27.0]  # pauses of 1, 2, 4, then 5, 5...
    remote.up = True
    clock[0] = 31.9
    shared.breaker_check("ep", 30, 0)
    assert remote.tries == 8 and not shared.serving  # still in the pause: not tried
    clock[0] = 32.0
    shared.breaker_check("ep", 30, 0)
    assert remote.tries == 9 and shared.serving  # the probe reached it
    shared.breaker_check("ep", 30, 0)
    assert remote.tries == 10  # no pause left: straight to it


# ---------------------------------------------------------------------------- secrets


def test_credentials_in_the_url_are_never_shown(
    redis_client: redis.Redis,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
    closing: Callable[[Any], Any],
) -> None:
    caplog.set_level(logging.DEBUG)
    urls = {  # URL -> whether the server refuses it
        f"redis://someuser:s3cret-Pa55@127.0.0.1:{free_port()}/0": True,  # nothing there
        f"rediss://someuser:s3cret-Pa55@127.0.0.1:{redis_server.port}/0": True,  # TLS to a plain server
        f"redis://someuser:s3cret-Pa55@127.0.0.1:{redis_server.port}/0": True,  # a user the server does not know
        f"redis://:s3cret-Pa55@127.0.0.1:{redis_server.port}/0": False,  # the default user takes any password
    }
    shown = []
    failures: tuple[StateFailure, ...] = ("open", "closed")
    for url, refused in urls.items():
        for failure in failures:
            shared = closing(state_store(url, failure))
            assert isinstance(shared, SharedState)
            shown += [repr(shared), str(shared), repr(shared.remote)]
            try:
                shared.reserve("k", 1, 10, time.time() + 60, time.time() + HOUR, time.time())
            except StateUnavailableError as error:
                assert refused and failure == "closed"
                shown += [str(error), repr(error), "".join(traceback.format_exception(error))]
            else:
                assert not refused or failure == "open"
    shown.append(caplog.text)
    text = "\n".join(shown)
    print(text[:2000])
    assert "s3cret-Pa55" not in text and "someuser" not in text
    assert f"127.0.0.1:{redis_server.port}" in text and "ConnectionError" in text

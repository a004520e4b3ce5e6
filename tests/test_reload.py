"""Live configuration: LLM_CONFIG_RELOAD_S watches LLM_CONFIG_FILE; clients follow, bad files change nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import metric_points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm import (
    ConfigError,
    get_async_llm_client_smart,
    get_llm_client_smart,
    get_settings,
    reload_settings,
)
from otel_llm.testing import Fault, MockLLMServer

INTERVAL = 0.05
MESSAGES = [{"role": "user", "content": "Extract the keywords."}]
BROKEN = 'model_keywords = "a"\n[fallbacks]\na = ["no-such-alias"]\n'


def config_text(server: MockLLMServer, keywords: str, reload_s: float = INTERVAL) -> str:
    """A whole config file: aliases ``a`` and ``b`` on the embedded server, ``keywords`` on one of them."""
    models = "".join(
        f'[models.{alias}]\nprovider = "openai"\nmodel = "model-{alias}"\n'
        f'base_url = "{server.base_url}"\napi_key_env = "TEST_KEY"\n'
        for alias in ("a", "b")
    )
    return f'model_default = "a"\nmodel_keywords = "{keywords}"\nconfig_reload_s = {reload_s}\n{models}'


def write(path: Path, text: str) -> None:
    """Replace the file at once, as a config-management tool (or a ConfigMap) does."""
    staged = path.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, path)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``condition()`` held (fails the test after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not true after {timeout} s")
        time.sleep(0.005)
    return time.monotonic() - start


def reloads(reader: InMemoryMetricReader) -> dict[str, int]:
    return {
        attributes["otel_llm.outcome"]: point.value
        for attributes, point, _ in metric_points(reader, "otel_llm.config.reloads", None)
    }


def counted_since(before: dict[str, int], reader: InMemoryMetricReader) -> dict[str, int]:
    now = reloads(reader)
    return {outcome: now.get(outcome, 0) - before.get(outcome, 0) for outcome in ("ok", "rejected")}


def reload_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if "was not loaded" in record.getMessage()]


@pytest.fixture
def config(tmp_path: Path, server: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "llm.toml"
    write(path, config_text(server, "a"))
    monkeypatch.setenv("LLM_CONFIG_FILE", str(path))
    return path


def keywords_alias() -> str:
    return get_settings().api_models["LLM_MODEL_KEYWORDS"]


def test_a_changed_file_is_loaded_within_an_interval_and_counted(
    config: Path, server: MockLLMServer, metric_reader: InMemoryMetricReader
) -> None:
    assert keywords_alias() == "a"
    before = reloads(metric_reader)
    write(config, config_text(server, "b"))
    waited = wait_until(lambda: keywords_alias() == "b")
    print(f"switched {waited * 1000:.0f} ms after the write (interval {INTERVAL * 1000:.0f} ms)")
    assert counted_since(before, metric_reader) == {"ok": 1, "rejected": 0}


def test_content_is_compared_not_the_modification_time(config: Path, server: MockLLMServer) -> None:
    assert keywords_alias() == "a"
    stat = config.stat()
    config.write_text(config_text(server, "b"))  # same size, and the old mtime put back
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert config.stat().st_size == stat.st_size
    wait_until(lambda: keywords_alias() == "b")


def test_a_swapped_symlink_is_seen_as_a_kubernetes_configmap_swaps_it(
    tmp_path: Path, server: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = {alias: tmp_path / f"version-{alias}.toml" for alias in ("a", "b")}
    for alias, version in versions.items():
        version.write_text(config_text(server, alias))
    link = tmp_path / "llm.toml"
    link.symlink_to(versions["a"])
    monkeypatch.setenv("LLM_CONFIG_FILE", str(link))
    assert keywords_alias() == "a"
    staged = tmp_path / "llm.toml.staged"
    staged.symlink_to(versions["b"])
    os.replace(staged, link)  # the path's own file and mtime never change: only where it points
    wait_until(lambda: keywords_alias() == "b")


def test_a_bad_file_keeps_the_settings_with_one_warning_naming_file_key_and_problem(
    config: Path, server: MockLLMServer, metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    good = get_settings()
    before = reloads(metric_reader)
    write(
        config,
        config_text(server, "a").replace("config_reload_s = 0.05", "config_reload_s = 0.05\nretry_attempts = 99"),
    )
    wait_until(lambda: counted_since(before, metric_reader)["rejected"] == 1)
    time.sleep(INTERVAL * 6)  # more checks of the same bad content: no more warnings, no more tries
    assert get_settings() is good
    warnings = reload_warnings(caplog)
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(config) in message and "retry_attempts" in message and "less than or equal to 10" in message
    assert counted_since(before, metric_reader) == {"ok": 0, "rejected": 1}

    write(config, config_text(server, "b"))  # fixed: loaded
    wait_until(lambda: keywords_alias() == "b")


def test_a_deleted_file_keeps_the_settings_until_it_is_back(
    config: Path, server: MockLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = get_settings()
    config.unlink()
    wait_until(lambda: any("cannot read" in record.getMessage() for record in caplog.records))
    assert get_settings() is good
    write(config, config_text(server, "b"))
    wait_until(lambda: keywords_alias() == "b")


def test_reload_settings_on_demand_is_counted_too(
    config: Path, server: MockLLMServer, metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    get_settings()
    before = reloads(metric_reader)
    reload_settings()
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "0")
    with pytest.raises(ConfigError):
        reload_settings()
    assert counted_since(before, metric_reader) == {"ok": 1, "rejected": 1}


def test_setting_the_interval_to_zero_in_the_file_stops_the_watch(config: Path, server: MockLLMServer) -> None:
    get_settings()
    write(config, config_text(server, "b", reload_s=0))
    wait_until(lambda: keywords_alias() == "b")
    write(config, config_text(server, "a", reload_s=0))
    time.sleep(INTERVAL * 6)
    assert keywords_alias() == "b"
    assert reload_settings().api_models["LLM_MODEL_KEYWORDS"] == "a"  # on demand, still


def test_a_client_made_at_start_up_follows_and_a_header_client_keeps_its_alias(
    config: Path, server: MockLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENABLE_LLM_MODEL_HEADER", "true")
    configured = get_llm_client_smart("keywords")
    by_header = get_llm_client_smart("keywords", headers={"X-LLM-Model": "a"})
    assert configured.chat.completions.create(messages=MESSAGES).model == "model-a"
    write(config, config_text(server, "b"))
    wait_until(lambda: keywords_alias() == "b")
    assert configured.chat.completions.create(messages=MESSAGES).model == "model-b"
    assert by_header.chat.completions.create(messages=MESSAGES).model == "model-a"


def test_a_call_under_way_finishes_with_the_settings_it_started_with(config: Path, server: MockLLMServer) -> None:
    client = get_llm_client_smart("keywords")
    server.add_faults("model-a", Fault.delay(0.5))
    answers: list[str] = []
    slow = threading.Thread(target=lambda: answers.append(client.chat.completions.create(messages=MESSAGES).model))
    slow.start()
    wait_until(lambda: len(server.requests) == 1)
    write(config, config_text(server, "b"))
    wait_until(lambda: keywords_alias() == "b")
    stream = client.chat.completions.create(messages=MESSAGES, stream=True)
    write(config, config_text(server, "a"))
    wait_until(lambda: keywords_alias() == "a")
    assert {chunk.model for chunk in stream} == {"model-b"}  # the stream began on b and ends on b
    slow.join()
    assert answers == ["model-a"]


def test_a_forked_worker_watches_the_file_itself(tmp_path: Path, server: MockLLMServer) -> None:
    """gunicorn's ``--preload`` forks after the settings are loaded: the child starts its own watch."""
    path = tmp_path / "llm.toml"
    write(path, config_text(server, "a"))
    script = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        from otel_llm import get_settings
        path = Path({str(path)!r})
        assert get_settings().api_models["LLM_MODEL_KEYWORDS"] == "a"
        pid = os.fork()
        if pid == 0:
            path.write_text(path.read_text().replace('model_keywords = "a"', 'model_keywords = "b"'))
            deadline = time.monotonic() + 10
            while get_settings().api_models["LLM_MODEL_KEYWORDS"] != "b" and time.monotonic() < deadline:
                time.sleep(0.01)
            print("child", get_settings().api_models["LLM_MODEL_KEYWORDS"], flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
    """)
    environment = {**os.environ, "LLM_CONFIG_FILE": str(path)}
    child = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "child b"


def test_zero_downtime_while_the_file_flips_an_api_twenty_times(
    config: Path, server: MockLLMServer, metric_reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    """8 threads and 8 asyncio tasks call without pause, through clients made once, while the
    file flips ``keywords`` between ``a`` and ``b`` 20 times with a broken file before each flip."""
    flips, workers_per_kind = 20, 8
    client = get_llm_client_smart("keywords")
    async_client = get_async_llm_client_smart("keywords")
    calls: list[tuple[float, float, str]] = []  # (start, end, model answering), from every worker
    failures: list[BaseException] = []
    stop = threading.Event()

    def record(start: float, model: str) -> None:
        calls.append((start, time.monotonic(), model))

    def thread_worker() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                record(start, client.chat.completions.create(messages=MESSAGES).model)
            except BaseException as error:  # every failure is the test's finding
                failures.append(error)

    async def task_worker() -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                record(start, (await async_client.chat.completions.create(messages=MESSAGES)).model)
            except BaseException as error:
                failures.append(error)

    async def tasks() -> None:
        await asyncio.gather(*(task_worker() for _ in range(workers_per_kind)))

    workers = [threading.Thread(target=thread_worker) for _ in range(workers_per_kind)]
    workers.append(threading.Thread(target=asyncio.run, args=(tasks(),)))
    for worker in workers:
        worker.start()
    before = reloads(metric_reader)
    writes: list[tuple[float, str]] = []  # (when, alias now configured)
    try:
        alias = "a"
        for flip in range(flips):
            write(config, BROKEN)
            wait_until(lambda flip=flip: counted_since(before, metric_reader)["rejected"] == flip + 1)
            alias = "b" if alias == "a" else "a"
            writes.append((time.monotonic(), alias))
            write(config, config_text(server, alias))
            wait_until(lambda alias=alias: keywords_alias() == alias)
            time.sleep(INTERVAL)  # calls on the new alias, before the next break
    finally:
        stop.set()
        for worker in workers:
            worker.join()

    assert failures == []
    assert {model for _, _, model in calls} == {"model-a", "model-b"}
    # After each flip, the old alias answers only calls that started before the
    # new file was seen: the switch is done within an interval plus one call.
    delays, swaps = [], []  # until the last old-alias call ended; until the last one started
    for (written, alias), following in zip(writes, [*writes[1:], (float("inf"), "")]):
        old = f"model-{'b' if alias == 'a' else 'a'}"
        late = [(start, end) for start, end, model in calls if written <= start < following[0] and model == old]
        delays.append(max((end for _, end in late), default=written) - written)
        swaps.append(max((start for start, _ in late), default=written) - written)
    longest_call = max(end - start for start, end, _ in calls)
    print(
        f"{len(calls)} calls, {len(failures)} failed, {flips} flips with a broken file before each; "
        f"longest switch delay {max(delays) * 1000:.0f} ms, old alias started at most {max(swaps) * 1000:.0f} ms "
        f"after a write (interval {INTERVAL * 1000:.0f} ms, "
        f"longest call {longest_call * 1000:.0f} ms)"
    )
    assert max(delays) <= INTERVAL + longest_call + 1.0  # scheduling slack on a loaded machine
    assert counted_since(before, metric_reader) == {"ok": flips, "rejected": flips}
    assert len(reload_warnings(caplog)) == flips

"""Every panel query of every dashboard, against a real Prometheus holding this SDK's metrics.

A subprocess (``monitoring_traffic.py``) drives the SDK against the embedded
server with its metrics on the real ``opentelemetry-exporter-prometheus``
(the test process cannot: conftest already set the global MeterProvider).
The Debian ``prometheus`` binary, started here on a free loopback port with a
temporary data directory, scrapes it every second. The traffic runs in two
waves, each followed by a scrape, so that every counter and histogram series
has increased between two samples and ``rate()`` / ``increase()`` are
non-zero. Then each panel query, with the Grafana variables substituted the
way "All" and a short time range would, must return at least one series with
a finite value.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import monitoring_traffic
import pytest
from helpers import debian_binary

import otel_llm

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
JOB = "otel-llm-sdk"

# Grafana's variables as the dashboards use them: "All" for the API and model
# selectors (their allValue is ".*"), a range and rate interval that cover the
# few seconds of data this test has.
SUBSTITUTIONS = {
    "api": ".*",
    "model": ".*",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "5m",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)\]\]|\$(\w+)")

EXPERIMENTS = "otel-llm-experiments"
"""The dashboard that compares the aliases of an API, for the split of the traffic."""

SINGLE_ALIAS_APIS = {"gap_analysis", "search_index"}
"""APIs the traffic sends to one alias only: the experiments view leaves them out."""

# What the traffic subprocess must not inherit from the shell running the tests.
_FOREIGN_ENVIRONMENT = ("LLM_", "ENABLE_LLM_", "OPENAI_", "AZURE_OPENAI_", "OTEL_")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref: str
    expr: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.dashboard, self.panel, self.ref)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # panels inside collapsed rows


def panel_queries() -> list[PanelQuery]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in _panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                found.append(PanelQuery(dashboard["uid"], panel["title"], target["refId"], target["expr"]))
    return found


QUERIES = panel_queries()


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in SUBSTITUTIONS:
            raise AssertionError(f"no substitution for Grafana variable ${name} in {expr!r}")
        return SUBSTITUTIONS[name]

    return _VARIABLE.sub(value, expr)


# -- Prometheus and the traffic subprocess -------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prometheus_binary() -> str:
    return debian_binary("prometheus", "the live dashboard test")


class Prometheus:
    """A Prometheus server of this test's own."""

    def __init__(self, binary: str, workdir: Path, target_port: int) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {JOB}\n"
            "    honor_labels: true\n"
            "    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def _fail(self, message: str) -> None:
        pytest.fail(f"{message}\n--- prometheus log ---\n{self.log.read_text(errors='replace')[-4000:]}")

    def _get(self, path: str, **params: str | list[str]) -> Any:
        url = f"{self.url}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._fail(f"prometheus exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        self._fail(f"prometheus not ready after {timeout} s")

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at the current time; returns its ``data``."""
        try:
            body = self._get("/api/v1/query", query=expr)
        except urllib.error.HTTPError as error:  # 400: the query does not parse or evaluate
            raise AssertionError(f"Prometheus rejected {expr!r}: {error.read().decode(errors='replace')}") from None
        assert body["status"] == "success", body
        return body["data"]  # type: ignore[no-any-return]

    def label_values(self, label: str, match: str) -> list[str]:
        body = self._get(f"/api/v1/label/{label}/values", **{"match[]": [match]})
        assert body["status"] == "success", body
        return body["data"]  # type: ignore[no-any-return]

    def wait_scraped_after(self, moment: float, timeout: float = 20) -> None:
        """Wait for a successful scrape of the SDK that started after ``moment`` (epoch seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # timestamp() of a bare selector is the sample's (the scrape's start);
            # of any other expression it would be the evaluation time.
            scraped = self.query(f'timestamp(up{{job="{JOB}"}})')["result"]
            up = self.query(f'up{{job="{JOB}"}}')["result"]
            if scraped and up and float(scraped[0]["value"][1]) > moment and up[0]["value"][1] == "1":
                return
            time.sleep(0.2)
        self._fail(
            f"no successful scrape of the SDK's /metrics within {timeout} s; targets: {self._get('/api/v1/targets')}"
        )


class Traffic:
    """The SDK in a subprocess of its own, exporting to Prometheus, making calls on command."""

    def __init__(self, workdir: Path) -> None:
        env = {name: value for name, value in os.environ.items() if not name.startswith(_FOREIGN_ENVIRONMENT)}
        env[monitoring_traffic.KEY_VARIABLE] = "monitoring-test-key-not-secret"
        # The very otel_llm this test process imported (a source tree or an install).
        package_root = str(Path(otel_llm.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        self.stderr = workdir / "traffic.stderr"
        with self.stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, monitoring_traffic.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
                env=env,
                cwd=workdir,
            )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._next_line(60)
        if not first.startswith("port "):
            self._fail(f"expected 'port <n>' from the traffic subprocess, got {first!r}")
        self.port = int(first.split()[1])

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.strip())
        self._lines.put(None)

    def _fail(self, message: str) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        pytest.fail(f"{message}\n--- traffic subprocess stderr ---\n{self.stderr.read_text(errors='replace')[-4000:]}")

    def _next_line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._fail(f"the traffic subprocess said nothing for {timeout} s")
        if line is None:
            self._fail(f"the traffic subprocess exited (status {self.process.wait()})")
        return line  # type: ignore[return-value]

    def wave(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("wave\n")
        self.process.stdin.flush()
        line = self._next_line(60)
        if line != "done":
            self._fail(f"expected 'done' from the traffic subprocess, got {line!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write("stop\n")
                self.process.stdin.close()
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus holding two waves of the SDK's traffic, each scraped."""
    binary = _prometheus_binary()
    workdir = tmp_path_factory.mktemp("monitoring-live")
    traffic = Traffic(workdir)
    try:
        server = Prometheus(binary, workdir, traffic.port)
        try:
            server.wait_ready()
            for _ in range(2):
                traffic.wave()
                server.wait_scraped_after(time.time())
            yield server
        finally:
            server.stop()
    finally:
        traffic.stop()


# -- the tests -----------------------------------------------------------------


def test_every_dashboard_has_queries() -> None:
    assert {query.dashboard for query in QUERIES} == {
        "otel-llm-cost",
        "otel-llm-latency",
        "otel-llm-reliability",
        EXPERIMENTS,
    }
    assert len({query.key for query in QUERIES}) == len(QUERIES), "panel titles + refIds must identify the queries"


def test_substitution_covers_every_variable_form() -> None:
    assert substitute('rate(x{a=~"$api", b=~"${model}", c=~"[[api]]"}[$__rate_interval])') == (
        'rate(x{a=~".*", b=~".*", c=~".*"}[1m])'
    )
    with pytest.raises(AssertionError, match="no substitution"):
        substitute("x[$unknown]")


@pytest.mark.parametrize(
    "query", [pytest.param(query, id=f"{query.dashboard}/{query.panel}/{query.ref}") for query in QUERIES]
)
def test_panel_query_returns_data(prometheus: Prometheus, query: PanelQuery) -> None:
    expr = substitute(query.expr)
    data = prometheus.query(expr)
    if data["resultType"] == "scalar":
        samples = [data["result"]]
    else:
        assert data["resultType"] == "vector", data
        samples = [series["value"] for series in data["result"]]
    assert samples, f"no series for {query.key}:\n{expr}"
    values = [float(value) for _, value in samples]
    assert any(math.isfinite(value) for value in values), f"only NaN/Inf for {query.key}: {values}\n{expr}"


def _variable_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]
                found.append((dashboard["uid"], variable["name"], query["query"] if isinstance(query, dict) else query))
    return found


@pytest.mark.parametrize(
    "dashboard,name,definition", [pytest.param(*query, id=f"{query[0]}/${query[1]}") for query in _variable_queries()]
)
def test_template_variables_list_what_the_sdk_sent(
    prometheus: Prometheus, dashboard: str, name: str, definition: str
) -> None:
    match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition)
    assert match, f"{dashboard} ${name}: not a label_values(metric, label) query: {definition}"
    values = set(prometheus.label_values(match.group(2), substitute(match.group(1))))
    expected = {
        "api": set(monitoring_traffic.APIS),
        "model": {
            "gpt41",
            "gpt41-mini",
            "gpt4o-2",
            "embed-small",
            monitoring_traffic.FALLBACK_PRIMARY,
            monitoring_traffic.BREAKER_PRIMARY,
        },
    }[name]
    assert expected <= values, f"{dashboard} ${name} lists {sorted(values)}"


@pytest.mark.parametrize(
    "label,metric,expected",
    [
        ("otel_llm_selection_source", "otel_llm_call_duration_seconds_count", set(monitoring_traffic.SOURCES)),
        ("otel_llm_outcome", "otel_llm_call_duration_seconds_count", {"ok", "fallback", "error"}),
        ("gen_ai_operation_name", "gen_ai_client_operation_duration_seconds_count", {"chat", "embeddings"}),
        ("gen_ai_provider_name", "gen_ai_client_operation_duration_seconds_count", {"openai", "azure.ai.openai"}),
        ("gen_ai_token_type", "gen_ai_client_token_usage_count", {"input", "output"}),
        ("error_type", "gen_ai_client_operation_duration_seconds_count", {"429", "503"}),
        ("otel_llm_breaker_state", "otel_llm_breaker_transitions_total", {"open", "half_open", "closed"}),
        ("otel_llm_outcome", "otel_llm_config_reloads_total", {"ok", "rejected"}),
        ("otel_llm_outcome", "otel_llm_budget_exceeded_total", {"redirected", "rejected"}),
        ("otel_llm_api_name", "otel_llm_budget_remaining", set(monitoring_traffic.BUDGETS)),
        ("error_type", "otel_llm_state_errors_total", {"ConnectionError"}),
    ],
)
def test_traffic_covers_every_charted_dimension(
    prometheus: Prometheus, label: str, metric: str, expected: set[str]
) -> None:
    """Each series the panels split by (outcome, source, error, breaker state...) exists, not just one of them."""
    values = set(prometheus.label_values(label, metric))
    assert expected <= values, f"{metric} {label}: {sorted(values)}"


# -- the experiments view, on the split of the traffic ------------------------

EXPERIMENT_QUERIES = [query for query in QUERIES if query.dashboard == EXPERIMENTS]


def test_the_split_api_was_selected_by_its_split(prometheus: Prometheus) -> None:
    series = f'otel_llm_call_duration_seconds_count{{otel_llm_api_name="{monitoring_traffic.SPLIT_API}"}}'
    assert set(prometheus.label_values("otel_llm_selection_source", series)) >= {"split"}
    split = series.replace("}", ', otel_llm_selection_source="split"}')
    assert set(prometheus.label_values("otel_llm_model_alias", split)) == set(monitoring_traffic.SPLIT)


@pytest.mark.parametrize("query", [pytest.param(q, id=f"{q.panel}/{q.ref}") for q in EXPERIMENT_QUERIES])
def test_experiments_query_compares_both_aliases_of_the_split_api(prometheus: Prometheus, query: PanelQuery) -> None:
    """Each experiments query has a finite value for every alias of the split API, and none for one-alias APIs."""
    result = prometheus.query(substitute(query.expr))["result"]
    apis = {series["metric"]["otel_llm_api_name"] for series in result}
    assert not apis & SINGLE_ALIAS_APIS, f"{query.key}: APIs with one alias are not experiments: {sorted(apis)}"
    split = {
        series["metric"]["otel_llm_model_alias"]: float(series["value"][1])
        for series in result
        if series["metric"]["otel_llm_api_name"] == monitoring_traffic.SPLIT_API
        and series["metric"].get("otel_llm_selection_source", "split") == "split"
    }
    assert set(monitoring_traffic.SPLIT) <= set(split), f"{query.key}: {result}"
    assert all(math.isfinite(split[alias]) for alias in monitoring_traffic.SPLIT), f"{query.key}: {split}"


def test_experiments_show_the_split_by_source(prometheus: Prometheus) -> None:
    """A panel of the view shows the calls by selection source: the split series of both aliases are there."""
    by_source = [query for query in EXPERIMENT_QUERIES if "otel_llm_selection_source" in query.expr]
    assert by_source, "no experiments panel shows the selection source"
    for query in by_source:
        result = prometheus.query(substitute(query.expr))["result"]
        split = {
            series["metric"]["otel_llm_model_alias"]
            for series in result
            if series["metric"]["otel_llm_api_name"] == monitoring_traffic.SPLIT_API
            and series["metric"]["otel_llm_selection_source"] == "split"
        }
        assert split == set(monitoring_traffic.SPLIT), f"{query.key}: {result}"


def test_experiments_table_tells_the_split_aliases_apart(prometheus: Prometheus) -> None:
    """The table's columns, per alias of the split API, say what the traffic did to each."""
    dashboard = json.loads((DASHBOARDS / f"{EXPERIMENTS}.json").read_text())
    [table] = [panel for panel in _panels(dashboard["panels"]) if panel["type"] == "table"]
    [renamed] = [t["options"]["renameByName"] for t in table["transformations"] if t["id"] == "organize"]
    columns: dict[str, dict[str, float]] = {}
    for target in table["targets"]:
        result = prometheus.query(substitute(target["expr"]))["result"]
        columns[renamed[f"Value #{target['refId']}"]] = {
            series["metric"]["otel_llm_model_alias"]: float(series["value"][1])
            for series in result
            if series["metric"]["otel_llm_api_name"] == monitoring_traffic.SPLIT_API
        }
    old, new = monitoring_traffic.SPLIT_OLD_ALIAS, monitoring_traffic.SPLIT_NEW_ALIAS
    assert columns["Calls"][old] > 0 and columns["Calls"][new] > 0, columns["Calls"]
    assert math.isclose(sum(columns["Share of the API's calls"].values()), 1), columns["Share of the API's calls"]
    # GPT-4.1 mini's prices are a fraction of GPT-4o's: the goal "cost per call down 50 %" is met, and shown.
    assert columns["Cost per call"][new] < columns["Cost per call"][old] / 2, columns["Cost per call"]
    # Every split call of the old alias waited SPLIT_DELAY_S: its P95 is in that bucket or above.
    assert columns["P95 latency"][old] >= monitoring_traffic.SPLIT_DELAY_S / 2, columns["P95 latency"]
    assert columns["P95 latency"][new] < 2, columns["P95 latency"]
    # One split call of the new alias failed each wave, none of the old one's.
    assert columns["Error ratio"][new] > 0 and columns["Error ratio"][old] == 0, columns["Error ratio"]
    assert columns["Failed attempts"][new] > 0 and columns["Failed attempts"][old] == 0, columns["Failed attempts"]

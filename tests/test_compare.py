"""``otel-llm compare``, run as a user would, over real HTTP to the embedded server."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from helpers import AZURE_ENTRY

from otel_llm import AzureEndpoint, LLMSettings, OpenAIEndpoint
from otel_llm._compare import BUILTIN_PROMPTS, MOCK_KEY_VARIABLE, percentile
from otel_llm._cost import cost_function
from otel_llm.cli import main
from otel_llm.testing import Fault, MockLLMServer
from otel_llm.testing import _tokens as tokens

ALIASES = ["gpt41-mini", "gpt4o-2"]
ENDPOINTS: dict[str, OpenAIEndpoint | AzureEndpoint] = {
    "gpt41-mini": OpenAIEndpoint(model="gpt-4.1-mini"),
    "gpt4o-2": AzureEndpoint.model_validate(AZURE_ENTRY),
}
"""Where the demo's aliases are priced from: their canonical models, OpenAI and Azure."""
REPLY_WORDS = MockLLMServer().reply_words  # output tokens of every answer of a default server


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


def rows_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["alias"]: row for row in document["aliases"]}


def table_rows(out: str, aliases: list[str]) -> dict[str, list[str]]:
    """The table's cells, per alias (every cell is one word; the lines of error details are not rows)."""
    lines = [line.split() for line in out.splitlines()]
    return {cells[0]: cells for cells in lines if cells[:1] and cells[0] in aliases and cells[1] != "errors:"}


@pytest.fixture
def on_server(server: MockLLMServer, monkeypatch: pytest.MonkeyPatch) -> MockLLMServer:
    """``mini`` (OpenAI) and ``azure`` (a deployment) on the test's server, both falling back to ``big``."""

    def openai_model(model: str) -> dict[str, str]:
        return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": "TEST_LLM_KEY"}

    azure = {**AZURE_ENTRY, "endpoint": server.azure_endpoint, "api_key_env": "TEST_LLM_KEY"}
    models = {"mini": openai_model("gpt-4.1-mini"), "big": openai_model("gpt-4.1"), "azure": azure}
    monkeypatch.setenv("LLM_MODELS", json.dumps(models))
    monkeypatch.setenv("LLM_FALLBACKS", json.dumps({"mini": ["big"], "azure": ["big"]}))
    monkeypatch.setenv("LLM_RETRY_MAX_WAIT_S", "0.05")
    return server


def test_mock_prints_one_row_per_alias(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keywords", "--models", ",".join(ALIASES), "--mock")
    assert code == 0, err
    rows = table_rows(out, ALIASES)
    assert list(rows) == ALIASES
    header = out.splitlines()[2].split()
    assert header[:5] == ["alias", "provider", "model", "calls", "errors"] and header[-3:] == ["<", "2", "s"]
    for alias, (provider, model) in zip(ALIASES, [("openai", "gpt-4.1-mini"), ("azure", "gpt-4o")]):
        cells = rows[alias]
        assert cells[1:5] == [provider, model, "20", "0"]
        p50, p95 = float(cells[5]), float(cells[6])
        assert 0 < p50 <= p95
        assert float(cells[10].removeprefix("$")) > 0 and float(cells[11].removeprefix("$")) > 0
        assert cells[12] == "yes"  # loopback answers well under 2 s
    assert float(rows["gpt4o-2"][10][1:]) > float(rows["gpt41-mini"][10][1:])  # gpt-4o is dearer
    assert "40/40 calls, 0 errors" in err.splitlines()[-1]  # the progress, on stderr
    assert MOCK_KEY_VARIABLE not in os.environ  # the placeholder key is the run's only


def test_mock_json_has_stable_keys_and_the_tokens_the_server_counted(capsys: pytest.CaptureFixture[str]) -> None:
    document = run_json(capsys, "keywords", "--models", ",".join(ALIASES), "--mock", "--calls", "10")
    assert list(document) == [
        "api",
        "mock",
        "calls_per_alias",
        "concurrency",
        "prompts",
        "p95_target_s",
        "wall_s",
        "aliases",
    ]
    assert document["api"] == "keywords" and document["mock"] is True
    assert (document["calls_per_alias"], document["concurrency"], document["prompts"]) == (10, 4, len(BUILTIN_PROMPTS))
    assert document["p95_target_s"] == 2.0
    expected_input = sum(tokens.prompt_tokens(BUILTIN_PROMPTS[i % len(BUILTIN_PROMPTS)]) for i in range(10))
    settings = LLMSettings()
    for alias, row in rows_of(document).items():
        assert row["calls"] == 10 and row["errors"] == 0 and row["error_types"] == {}
        assert isinstance(row["latency_p95_s"], float) and row["latency_p50_s"] <= row["latency_p95_s"]
        assert isinstance(row["time_to_first_chunk_p50_s"], float)
        assert row["time_to_first_chunk_p50_s"] <= row["latency_p95_s"]
        assert (row["input_tokens"], row["output_tokens"]) == (expected_input, 10 * REPLY_WORDS)
        assert row["p95_under_2s"] is True
        # The cost is the price of those tokens (no cached tokens: the prompts are short).
        price = cost_function(alias, ENDPOINTS[alias], settings)
        assert price is not None
        assert row["cost_total_usd"] == pytest.approx(price(expected_input, 10 * REPLY_WORDS, 0))
        assert row["cost_per_call_usd"] == pytest.approx(row["cost_total_usd"] / 10)


def test_mock_keeps_a_configured_alias_provider_and_model_and_takes_any_other_name(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Configured on hosts that do not exist, with a key variable that is not set: --mock must reach neither.
    unreachable = {**AZURE_ENTRY, "endpoint": "https://unreachable.invalid", "api_key_env": "UNSET_KEY"}
    fast = {"provider": "openai", "model": "gpt-4.1", "base_url": "https://unreachable.invalid/v1"}
    monkeypatch.setenv("LLM_MODELS", json.dumps({"fast": fast, "gpt41-mini": unreachable}))
    monkeypatch.setenv("LLM_FALLBACKS", json.dumps({"fast": ["gpt41-mini"]}))
    document = run_json(capsys, "keywords", "--models", "fast,gpt41-mini,made-up", "--mock", "--calls", "2")
    rows = rows_of(document)
    assert [(r["provider"], r["model"], r["calls"], r["errors"]) for r in rows.values()] == [
        ("openai", "gpt-4.1", 2, 0),
        ("azure", "gpt-4o", 2, 0),  # the configured gpt41-mini, not the demo's
        ("openai", "made-up", 2, 0),
    ]
    assert rows["fast"]["cost_total_usd"] > 0
    assert rows["made-up"]["cost_per_call_usd"] is None and rows["made-up"]["cost_total_usd"] is None  # unpriced
    assert rows["made-up"]["input_tokens"] > 0


def test_a_fault_counts_for_its_alias_only_and_no_fallback_answers(
    on_server: MockLLMServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "1")  # one fault, one failed call
    on_server.add_faults("gpt-4.1-mini", Fault.status(503), Fault.status(429), Fault.status(503))
    document = run_json(capsys, "keywords", "--models", "mini,azure", "--calls", "6")
    rows = rows_of(document)
    assert document["mock"] is False
    assert (rows["mini"]["calls"], rows["mini"]["errors"], rows["mini"]["error_types"]) == (6, 3, {"503": 2, "429": 1})
    assert (rows["azure"]["calls"], rows["azure"]["errors"], rows["azure"]["error_types"]) == (6, 0, {})
    assert rows["mini"]["output_tokens"] == 3 * REPLY_WORDS  # the three that answered
    assert rows["mini"]["cost_per_call_usd"] == pytest.approx(rows["mini"]["cost_total_usd"] / 3)
    models = Counter(request.model for request in on_server.requests)
    assert models == {"gpt-4.1-mini": 6, "gpt-4o-2": 6}  # LLM_FALLBACKS names gpt41 ("big"): never called


def test_an_alias_whose_calls_all_fail_has_no_latency_and_misses_the_target(
    on_server: MockLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    on_server.add_faults("gpt-4o-2", *[Fault.status(400)] * 3)  # not retryable: one request each
    code, out, err = run(capsys, "keywords", "--models", "mini,azure", "--calls", "3")
    assert code == 0, err
    cells = table_rows(out, ["mini", "azure"])["azure"]
    assert cells[3:8] == ["3", "3", "-", "-", "-"] and cells[-1] == "no"
    assert cells[8:11] == ["-", "-", "-"]  # no tokens, no cost per call
    assert "azure errors: 400 x3" in out
    assert table_rows(out, ["mini", "azure"])["mini"][3:5] == ["3", "0"]

    on_server.add_faults("gpt-4o-2", *[Fault.status(400)] * 3)
    row = rows_of(run_json(capsys, "keywords", "--models", "mini,azure", "--calls", "3"))["azure"]
    assert row["latency_p50_s"] is None and row["latency_p95_s"] is None and row["time_to_first_chunk_p50_s"] is None
    assert row["p95_under_2s"] is False and row["input_tokens"] is None and row["cost_per_call_usd"] is None


def test_retries_stay_as_configured(on_server: MockLLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    on_server.add_faults("gpt-4.1-mini", Fault.status(503))  # LLM_RETRY_ATTEMPTS is 2: retried, answered
    rows = rows_of(run_json(capsys, "keywords", "--models", "mini,azure", "--calls", "2"))
    assert rows["mini"]["errors"] == 0
    assert Counter(request.model for request in on_server.requests) == {"gpt-4.1-mini": 3, "gpt-4o-2": 2}


def test_aliases_a_request_may_not_choose_are_compared_anyway(
    on_server: MockLLMServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator pins the aliases, not a request: LLM_ALLOWED_MODELS does not apply, nor a split or a budget."""
    monkeypatch.setenv("LLM_ALLOWED_MODELS", json.dumps({"*": ["big"]}))
    monkeypatch.setenv("LLM_SPLITS", json.dumps({"keywords": {"big": 1}}))
    monkeypatch.setenv("LLM_BUDGETS", json.dumps({"keywords": {"usd": 0.000001, "window": "day", "then": "big"}}))
    rows = rows_of(run_json(capsys, "keywords", "--models", "mini,azure", "--calls", "2"))
    assert (rows["mini"]["errors"], rows["azure"]["errors"]) == (0, 0)
    assert Counter(request.model for request in on_server.requests) == {"gpt-4.1-mini": 2, "gpt-4o-2": 2}


def test_prompts_file_is_what_the_server_receives(
    on_server: MockLLMServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = [
        [{"role": "user", "content": "Extract the keywords: Python, Kubernetes, PostgreSQL."}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarise: a long job ad."}],
        [{"role": "user", "content": [{"type": "text", "text": "Keywords of this resume, please."}]}],
    ]
    file = tmp_path / "prompts.jsonl"
    file.write_text("\n".join(json.dumps(p) for p in prompts) + "\n\n", encoding="utf-8")  # a blank line is skipped
    document = run_json(capsys, "keywords", "--models", "mini,azure", "--prompts", str(file), "--calls", "4")
    assert document["prompts"] == 3
    for model, alias in [("gpt-4.1-mini", "mini"), ("gpt-4o-2", "azure")]:
        bodies = [r.body for r in on_server.requests if r.model == model and r.body is not None]
        assert len(bodies) == 4
        messages = [body["messages"] for body in bodies]
        # Every alias gets the same prompts, cycled: 0, 1, 2, 0 (in any order, 4 calls are in flight at once).
        assert sorted(map(json.dumps, messages)) == sorted(json.dumps(prompts[i % 3]) for i in range(4))
        assert all(body["stream"] is True and body["stream_options"] == {"include_usage": True} for body in bodies)
        assert rows_of(document)[alias]["input_tokens"] == sum(tokens.prompt_tokens(m) for m in messages)


def test_the_aliases_are_interleaved(on_server: MockLLMServer, capsys: pytest.CaptureFixture[str]) -> None:
    run_json(capsys, "keywords", "--models", "mini,azure", "--calls", "4", "--concurrency", "1")
    order = [request.model for request in on_server.requests]
    # One call of each per round, the round's first alias taking turns.
    assert order == ["gpt-4.1-mini", "gpt-4o-2", "gpt-4o-2", "gpt-4.1-mini"] * 2


def test_an_alias_not_configured_is_an_error_without_mock(
    on_server: MockLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "keywords", "--models", "mini,gpt41-mini")
    assert (code, out) == (1, "")
    assert err == "otel-llm: unknown model 'gpt41-mini' from --models; known aliases: azure, big, mini\n"
    assert on_server.requests == []


def test_a_missing_key_variable_is_an_error_before_any_call(
    on_server: MockLLMServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_LLM_KEY")
    code, _, err = run(capsys, "keywords", "--models", "mini,azure")
    assert code == 1
    assert err == "otel-llm: API key variable not set: TEST_LLM_KEY (alias 'azure'), TEST_LLM_KEY (alias 'mini')\n"
    assert on_server.requests == []


BAD_PROMPTS = [
    ("", "no prompts in it"),
    ('[{"role": "user", "content": "hi"}]\n{"role": "user"}\n', "line 2: expected a JSON list of messages"),
    ('[{"role": "user", "content": "hi"}]\n\n[{"role": "user", "content": "hi"}\n', "line 3: not JSON"),
    ("[]\n", "line 1: expected a JSON list of messages"),
    ('["hi"]\n', "line 1: message 0 is a string, not an object"),
    ('[{"content": "hi"}]\n', 'line 1: message 0 has no "role"'),
    ('[{"role": "user", "content": 3}]\n', 'line 1: message 0 has no "content"'),
]


@pytest.mark.parametrize(("text", "problem"), BAD_PROMPTS)
def test_a_bad_prompts_file_exits_2_naming_the_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, problem: str
) -> None:
    file = tmp_path / "prompts.jsonl"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "keywords", "--models", ",".join(ALIASES), "--mock", "--prompts", str(file)])
    assert exit_.value.code == 2
    assert (
        f"argument --prompts: {file}{' ' if problem.startswith('line') else ': '}{problem}" in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "gpt41-mini"], "argument --models: needs two or more aliases to compare, got 'gpt41-mini'"),
        (["--models", "a,b,a"], "argument --models: 'a' given twice"),
        (["--models", "a,,b"], "argument --models: empty alias in 'a,,b'"),
        (["--models", "a,b", "--calls", "0"], "argument --calls: must be an integer >= 1, got '0'"),
        (["--models", "a,b", "--calls", "many"], "argument --calls: must be an integer >= 1, got 'many'"),
        (["--models", "a,b", "--concurrency", "-1"], "argument --concurrency: must be an integer >= 1, got '-1'"),
        (["--models", "a,b", "--prompts", "/no/such/prompts.jsonl"], "argument --prompts: /no/such/prompts.jsonl: "),
        ([], "the following arguments are required: --models"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["compare", "keywords", "--mock", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_the_help_says_fallbacks_are_off(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "fallbacks are off" in " ".join(capsys.readouterr().out.split())


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    code, _, _ = run(capsys, "keywords", "--models", ",".join(ALIASES), "--mock", "--calls", "3", "--json")
    assert code == 0
    drawn = terminal.getvalue()
    assert drawn.count("\r") == 6 and drawn.endswith("6/6 calls, 0 errors\n") and drawn.count("\n") == 1


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(20, 0, -1)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 100)) == (10.0, 19.0, 20.0)
    assert percentile([0.3], 95) == 0.3 and percentile([], 50) is None


def test_the_console_script_compares_on_the_embedded_server() -> None:
    script = shutil.which("otel-llm", path=str(Path(sys.executable).parent)) or shutil.which("otel-llm")
    assert script is not None, "the otel-llm console script is not installed"
    ours = ("LLM_", "ENABLE_LLM_", "OPENAI_", "AZURE_OPENAI_", "OTEL_")
    environment = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    start = time.perf_counter()
    result = subprocess.run(
        [script, "compare", "keywords", "--models", ",".join(ALIASES), "--mock"],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )
    wall_s = time.perf_counter() - start
    assert result.returncode == 0, f"exit {result.returncode} after {wall_s:.1f} s: {result.stderr}"
    rows = table_rows(result.stdout, ALIASES)
    assert [cells[3:5] for cells in rows.values()] == [["20", "0"]] * 2, f"after {wall_s:.1f} s:\n{result.stdout}"

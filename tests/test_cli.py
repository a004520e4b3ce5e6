"""The otel-llm command, run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai
import pytest
from helpers import AZURE_ENTRY

from otel_llm import LLMSettings, select_model
from otel_llm.cli import main

SECRET = "sk-az-never-printed-42"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODELS", json.dumps({"gpt4o-2": AZURE_ENTRY}))
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "gpt-4.1-mini")
    monkeypatch.setenv("LLM_MODEL_GAP_ANALYSIS", "gpt4o-2")
    monkeypatch.setenv("LLM_FALLBACKS", json.dumps({"gpt4o-2": ["gpt-4.1-mini"]}))
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", SECRET)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_resolve_explains_the_selection_without_the_key(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "resolve", "gap-analysis")
    assert code == 0
    assert "alias            gpt4o-2" in out
    assert "source           env (LLM_MODEL_GAP_ANALYSIS)" in out
    assert "provider         azure" in out
    assert "model sent       gpt-4o-2" in out
    assert "endpoint         https://example.openai.azure.com/openai/deployments/gpt-4o-2" in out
    assert "api key          from AZURE_OPENAI_API_KEY (set)" in out
    assert "fallbacks        gpt-4.1-mini" in out
    assert SECRET not in out


def test_resolve_with_header_and_model(
    configured: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "resolve", "keywords", "--header", "X-LLM-Model=gpt4o-2")
    assert code == 0 and "source           default (LLM_MODEL_DEFAULT)" in out  # header flag off

    monkeypatch.setenv("ENABLE_LLM_MODEL_HEADER", "true")
    monkeypatch.setenv("ENABLE_LLM_MODEL_OVERRIDE", "true")
    code, out, _ = run(capsys, "resolve", "keywords", "--header", "x-llm-model=gpt4o-2")
    assert "alias            gpt4o-2" in out and "source           header" in out
    code, out, _ = run(capsys, "resolve", "keywords", "--header", "X-LLM-Model=gpt4o-2", "--model", "gpt-4.1-mini")
    assert "alias            gpt-4.1-mini" in out and "source           request" in out
    assert "api key          from OPENAI_API_KEY (NOT SET)" in out


def test_resolve_unknown_model_exits_1(
    configured: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENABLE_LLM_MODEL_OVERRIDE", "true")
    code, out, err = run(capsys, "resolve", "keywords", "--model", "gpt-9")
    assert code == 1 and out == ""
    assert err == (
        "otel-llm: unknown model 'gpt-9' from the request_model argument; known aliases: gpt-4.1-mini, gpt4o-2\n"
    )


def test_resolve_shows_a_split_and_the_alias_of_a_split_key(
    configured: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_SPLITS", json.dumps({"keywords": {"gpt-4.1-mini": 10, "gpt4o-2": 30}}))
    for key in ("user-1", "user-2", "user-3", "user-4"):
        expected = select_model("keywords", settings=LLMSettings(), split_key=key).model
        code, out, _ = run(capsys, "resolve", "keywords", "--split-key", key)
        assert code == 0
        assert f"alias            {expected}\n" in out
        assert "source           split (LLM_SPLITS)" in out
        assert "split            gpt-4.1-mini 25%, gpt4o-2 75%" in out
        assert "split key        given: the same key always gets this alias" in out
        code, by_header, _ = run(capsys, "resolve", "keywords", "--header", f"X-LLM-Split-Key={key}")
        assert by_header == out
    code, out, _ = run(capsys, "resolve", "keywords")
    assert "split key        none: each call draws at random" in out


def test_check_lists_splits_allowlists_and_the_reload(
    configured: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "llm.toml"
    config.write_text("config_reload_s = 5\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("LLM_CONFIG_FILE", str(config))
    monkeypatch.setenv("LLM_SPLITS", json.dumps({"keywords": {"gpt-4.1-mini": 10, "gpt4o-2": 90}}))
    monkeypatch.setenv("LLM_ALLOWED_MODELS", json.dumps({"*": ["gpt-4.1-mini"]}))
    code, out, _ = run(capsys, "check")
    assert code == 0, out
    assert "split keywords" in out and "gpt-4.1-mini 10, gpt4o-2 90" in out
    assert "allowed *" in out
    assert f"{config} checked every 5 s" in out


def test_check_accepts_a_valid_configuration(
    configured: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-never-printed")
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert out.endswith("configuration OK\n")
    assert "LLM_MODEL_GAP_ANALYSIS  gpt4o-2" in out
    assert "fallback gpt4o-2" in out
    assert SECRET not in out and "sk-openai-never-printed" not in out


def test_check_names_a_missing_key_variable(configured: None, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "check")
    assert code == 1
    assert err == "otel-llm: API key variable not set: OPENAI_API_KEY (alias 'gpt-4.1-mini')\n"


def test_check_names_the_bad_variable(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "0")
    code, _, err = run(capsys, "check")
    assert code == 1
    assert "LLM_RETRY_ATTEMPTS: Input should be greater than or equal to 1" in err


def run_demo(**environment: str) -> str:
    """``otel-llm demo`` in its own process, as a new user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "otel_llm", "demo"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **environment},
        check=True,
    )
    return result.stdout


def test_demo_calls_every_api_through_every_source_and_shows_the_telemetry() -> None:
    out = run_demo(LLM_MODEL_KEYWORDS="something-else")  # the demo replaces the shell's configuration
    table = out[out.index("API            alias") :]
    prefixes = ("keywords", "gap_", "resume_", "search_", "job_", "cover_")
    rows = [line.split() for line in table.splitlines() if line.startswith(prefixes)]
    calls = rows[:10]
    assert [row[:3] + row[-6:-4] for row in calls] == [
        ["keywords", "gpt41-mini", "env", "ok", "1"],
        ["gap_analysis", "gpt4o-2", "env", "ok", "1"],
        ["resume_format", "gpt41", "default", "ok", "1"],
        ["resume_tailor", "gpt41-mini", "header", "ok", "1"],
        ["resume_tailor", "gpt4o-2", "request", "ok", "1"],
        ["search_index", "embed-small", "env", "ok", "1"],
        ["keywords", "gpt41-mini", "env", "ok", "1"],  # chat parse: a structured output
        ["job_summary", "gpt41", "default", "ok", "1"],  # the Responses API
        ["resume_format", "gpt41-mini", "default", "fallback", "3"],  # gpt41 failed twice
        ["cover_letter", "gpt4o-2", "split", "ok", "1"],  # user-42's half of a 50/50 split
    ]
    assert all(int(row[-3]) > 0 and row[-1].startswith("$") for row in calls)  # tokens in, cost from the spans
    assert "chat keywords [internal]" in out and "chat gpt-4.1-mini [client]" in out and "POST [client]" in out
    assert [row[3:5] for row in calls[6:8]] == [["chat", "parse"], ["responses", "ok"]]
    assert "gen_ai.client.operation.duration (s): 10 series" in out
    assert "otel_llm.fallbacks ({fallback}): 1 series" in out
    assert "resume_tailor      2" in out  # the totals per API
    assert "demo-key-not-secret" not in out


def test_mock_server_serves_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "otel_llm", "mock-server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        base_url = line.split(" on ", 1)[1].split()[0]
        with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
            reply = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}])
        assert reply.model == "any"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    with pytest.raises(SystemExit, match="--header takes NAME=VALUE"):
        main(["resolve", "keywords", "--header", "X-LLM-Model"])

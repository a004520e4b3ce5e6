"""Telemetry never fails a call (SPEC §4): a raising span processor, metric pipeline or exporter changes nothing
the caller gets. Each case runs in a child process, since OTel providers are installed once per process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("failing_telemetry.py")


@pytest.mark.parametrize("hook", ["on_start", "on_end"])
def test_raising_span_processor_and_metric_pipeline_do_not_change_any_answer(hook: str) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), hook], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)

    assert results["ours"] == results["raw"] and results["ours_async"] == results["raw_async"]
    assert results["requests"] == 16  # one request per call: no failed attempt was retried
    # Logged once per place, not once per call.
    assert results["log"] and len(results["log"]) == len(set(results["log"]))
    assert all(line.endswith("the call goes on without it") for line in results["log"])

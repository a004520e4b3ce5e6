"""The clients are typed like the SDK: ``mypy --strict`` over correct uses and wrong ones.

``tests/typing/ok.py`` must pass with the exact types it asserts;
``tests/typing/bad.py`` marks each wrong use with the error it must raise, and
``--warn-unused-ignores`` makes a use that no longer fails an error.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import mypy.api
import openai
import pytest

ROOT = Path(__file__).resolve().parents[1]
TYPING = ROOT / "tests" / "typing"


@pytest.fixture(scope="module")
def mypy_report() -> dict[str, list[str]]:
    """mypy's error lines per checked file (one run for both, as it costs seconds)."""
    files = [str(TYPING / "ok.py"), str(TYPING / "bad.py")]
    stdout, stderr, status = mypy.api.run(["--strict", "--warn-unused-ignores", "--no-error-summary", *files])
    assert status in (0, 1), stderr
    report: dict[str, list[str]] = {"ok.py": [], "bad.py": []}
    for line in stdout.splitlines():
        name = Path(line.split(":", 1)[0]).name
        if ": error:" in line:
            report.setdefault(name, []).append(line)
    return report


def test_correct_uses_type_check_with_the_sdk_types(mypy_report: dict[str, list[str]]) -> None:
    assert mypy_report["ok.py"] == []


def test_each_wrong_use_raises_the_error_it_is_marked_with(mypy_report: dict[str, list[str]]) -> None:
    assert mypy_report["bad.py"] == []
    marked = re.findall(r"# type: ignore\[([a-z-]+)\]", (TYPING / "bad.py").read_text())
    assert len(marked) >= 15 and {"call-overload", "call-arg", "arg-type", "assignment"} <= set(marked)


def test_the_stub_is_generated_from_the_installed_sdk() -> None:
    spec = importlib.util.spec_from_file_location(
        "generate_resources_stub", ROOT / "scripts" / "generate_resources_stub.py"
    )
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator  # its dataclasses look their module up
    spec.loader.exec_module(generator)
    committed = generator.STUB.read_text()
    version = re.search(r"generated from openai (\S+) ", committed)
    assert version is not None
    if version[1] != openai.__version__:
        pytest.skip(f"the stub is for openai {version[1]}, {openai.__version__} is installed: regenerate it")
    assert generator.render() == committed, "otel_llm/_resources.pyi is stale: run scripts/generate_resources_stub.py"

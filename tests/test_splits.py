"""LLM_SPLITS: weighted shares of an API's traffic, sticky per key, moving only the keys that must move."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from helpers import all_telemetry, metric_points
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm import LLMSettings, Selection, get_llm_client_smart, select_model
from otel_llm.testing import MockLLMServer

KEYS = [f"user-{n}" for n in range(10_000)]
MESSAGES = [{"role": "user", "content": "Extract the keywords."}]


def split_settings(weights: dict[str, float], **values: object) -> LLMSettings:
    models = {alias: {"provider": "openai", "model": f"model-{alias}"} for alias in ("mini", "big", "nano")}
    return LLMSettings(models=models, model_default="nano", splits={"keywords": weights}, **values)


def assignments(settings: LLMSettings, keys: list[str] = KEYS) -> dict[str, str]:
    return {key: select_model("keywords", settings=settings, split_key=key).model for key in keys}


def test_a_split_selects_with_source_split_and_only_for_its_api() -> None:
    settings = split_settings({"mini": 10, "big": 90})
    assert select_model("keywords", settings=settings, split_key="user-1").source == "split"
    assert select_model("other", settings=settings) == Selection("other", "nano", "default")


def test_the_same_key_always_gets_the_same_alias() -> None:
    settings = split_settings({"mini": 50, "big": 50})
    first = assignments(settings, KEYS[:1000])
    assert assignments(split_settings({"mini": 50, "big": 50}), KEYS[:1000]) == first  # a new settings object
    assert set(first.values()) == {"mini", "big"}


def test_assignment_is_the_same_in_every_process() -> None:
    """Replicas must agree: the hash is not Python's per-process salted ``hash()``."""
    script = (
        "import json; from otel_llm import LLMSettings, select_model\n"
        "s = LLMSettings(models={a: {'provider': 'openai', 'model': a} for a in ('mini', 'big')},"
        " splits={'keywords': {'mini': 30, 'big': 70}})\n"
        "print(json.dumps([select_model('keywords', settings=s, split_key=f'user-{n}').model for n in range(500)]))"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=environment)
    here = assignments(split_settings({"mini": 30, "big": 70}), KEYS[:500])
    assert json.loads(child.stdout) == list(here.values())


def test_weights_are_ratios_at_any_scale() -> None:
    assert assignments(split_settings({"mini": 1, "big": 9})) == assignments(split_settings({"mini": 10, "big": 90}))


def test_going_from_10_90_to_20_80_moves_about_10_percent_of_keys_all_towards_the_raised_alias() -> None:
    before = assignments(split_settings({"mini": 10, "big": 90}))
    after = assignments(split_settings({"mini": 20, "big": 80}))
    moved = [key for key in KEYS if before[key] != after[key]]
    wrong_way = [key for key in moved if after[key] != "mini"]
    share = len(moved) / len(KEYS)
    print(f"10/90 -> 20/80: {len(moved)} of {len(KEYS)} keys moved ({share:.2%}), {len(wrong_way)} the wrong way")
    assert wrong_way == []
    assert 0.085 <= share <= 0.115  # 10 % expected; the binomial's sd is 0.3 %


def test_changing_one_of_three_weights_moves_keys_only_to_or_from_that_alias() -> None:
    before = assignments(split_settings({"mini": 30, "big": 30, "nano": 40}))
    raised = assignments(split_settings({"mini": 30, "big": 60, "nano": 40}))
    assert {after for key, after in raised.items() if after != before[key]} == {"big"}
    lowered = assignments(split_settings({"mini": 30, "big": 10, "nano": 40}))
    assert {before[key] for key, after in lowered.items() if after != before[key]} == {"big"}


@pytest.mark.parametrize("keyed", [False, True], ids=["random", "keyed"])
def test_the_observed_share_is_within_2_points_of_the_weights(keyed: bool) -> None:
    settings = split_settings({"mini": 10, "big": 90})
    keys = [uuid.uuid4().hex if keyed else None for _ in range(10_000)]
    counts = Counter(select_model("keywords", settings=settings, split_key=key).model for key in keys)
    share = counts["mini"] / sum(counts.values())
    print(f"{'keyed' if keyed else 'random'}: mini got {share:.2%} of 10,000 calls (weight 10 %)")
    assert abs(share - 0.10) <= 0.02


def test_the_split_key_header_assigns_like_the_argument_and_the_argument_wins() -> None:
    settings = split_settings({"mini": 50, "big": 50})
    expected = assignments(settings, KEYS[:200])
    for key, alias in expected.items():
        assert select_model("keywords", headers={"X-LLM-Split-Key": key}, settings=settings).model == alias
        assert select_model("keywords", headers=[(b"x-llm-split-key", key.encode())], settings=settings).model == alias
    other = next(key for key in KEYS if expected[key] != expected["user-0"])
    chosen = select_model("keywords", headers={"X-LLM-Split-Key": other}, settings=settings, split_key="user-0")
    assert chosen.model == expected["user-0"]


def test_request_and_header_still_win_over_a_split() -> None:
    settings = split_settings({"mini": 50, "big": 50}, enable_llm_model_override=True, enable_llm_model_header=True)
    assert select_model("keywords", request_model="nano", settings=settings, split_key="u").source == "request"
    assert select_model("keywords", headers={"X-LLM-Model": "nano"}, settings=settings).source == "header"


def test_a_split_is_found_whatever_way_the_api_name_is_spelt() -> None:
    settings = LLMSettings(
        models={alias: {"provider": "openai", "model": alias} for alias in ("mini", "big")},
        splits={"gap-analysis": {"mini": 50, "big": 50}},
    )
    for key in KEYS[:100]:
        spellings = {
            select_model(api, settings=settings, split_key=key).model for api in ("gap-analysis", "gap_analysis")
        }
        assert len(spellings) == 1


def test_split_aliases_missing_from_llm_models_are_openai_models_of_that_name() -> None:
    settings = LLMSettings(splits={"keywords": {"gpt-4.1-mini": 1, "gpt-4.1": 1}})
    assert settings.endpoints["gpt-4.1-mini"].request_model == "gpt-4.1-mini"


def server_settings(server: MockLLMServer, api: str) -> LLMSettings:
    def model(name: str) -> dict[str, str]:
        return {"provider": "openai", "model": name, "base_url": server.base_url, "api_key_env": "TEST_KEY"}

    return LLMSettings(
        models={"mini": model("gpt-4.1-mini"), "big": model("gpt-4.1")}, splits={api: {"mini": 1, "big": 1}}
    )


def test_one_client_without_a_key_draws_at_each_call(server: MockLLMServer, api: str) -> None:
    client = get_llm_client_smart(api, settings=server_settings(server, api))
    for _ in range(40):
        client.chat.completions.create(messages=MESSAGES)
    models = Counter(request.body["model"] for request in server.requests)
    assert set(models) == {"gpt-4.1-mini", "gpt-4.1"}, models  # all 40 on one side: 2 ** -39


def test_a_client_with_a_key_keeps_its_alias_and_the_key_never_reaches_telemetry(
    server: MockLLMServer, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader, api: str
) -> None:
    settings = server_settings(server, api)
    key = f"user-{uuid.uuid4().hex}"
    expected = select_model(api, settings=settings, split_key=key).model
    client = get_llm_client_smart(api, settings=settings, split_key=key)
    for _ in range(10):
        client.chat.completions.create(messages=MESSAGES)
    assert {request.body["model"] for request in server.requests} == {settings.endpoints[expected].request_model}
    sources = {
        attributes["otel_llm.selection.source"]
        for attributes, _, _ in metric_points(metric_reader, "otel_llm.call.duration", api)
    }
    assert sources == {"split"}
    assert key not in all_telemetry(spans, metric_reader)


def test_random_draws_use_the_global_generator_so_a_seed_repeats_them() -> None:
    settings = split_settings({"mini": 50, "big": 50})
    random.seed(7)
    first = [select_model("keywords", settings=settings).model for _ in range(100)]
    random.seed(7)
    assert [select_model("keywords", settings=settings).model for _ in range(100)] == first

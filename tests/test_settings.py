"""LLMSettings: every variable of SPEC §2, its default, and each way to get it wrong."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from helpers import AZURE_ENTRY

from otel_llm import AzureEndpoint, ConfigError, LLMSettings, OpenAIEndpoint, Price, get_settings, reload_settings

OPENAI = {
    "provider": "openai",
    "model": "gpt-4.1-mini",
    "base_url": "https://api.openai.com/v1",
    "api_key_env": "OPENAI_API_KEY",
}


def test_defaults() -> None:
    settings = LLMSettings()
    assert settings.model_default is None
    assert settings.api_models == {}
    assert settings.enable_llm_model_override is False
    assert settings.enable_llm_model_header is False
    assert settings.models == {} and settings.fallbacks == {} and settings.prices == {}
    assert settings.retry_attempts == 2
    assert settings.retry_max_wait_s == 10
    assert settings.call_timeout_s == 60
    assert settings.http_spans is True
    assert settings.attempt_timeout_s is None and settings.stream_idle_timeout_s is None
    assert settings.allowed_models == {} and settings.splits == {} and settings.config_reload_s == 0
    assert settings.endpoints == {}


def test_every_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "gpt41-mini")
    monkeypatch.setenv("LLM_MODEL_GAP_ANALYSIS", "gpt4o-2")
    monkeypatch.setenv("ENABLE_LLM_MODEL_OVERRIDE", "true")
    monkeypatch.setenv("ENABLE_LLM_MODEL_HEADER", "1")
    monkeypatch.setenv("LLM_MODELS", json.dumps({"gpt4o-2": AZURE_ENTRY, "gpt41-mini": OPENAI}))
    monkeypatch.setenv("LLM_FALLBACKS", json.dumps({"gpt4o-2": ["gpt41-mini"]}))
    monkeypatch.setenv("LLM_PRICES", json.dumps({"gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25}}))
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("LLM_RETRY_MAX_WAIT_S", "2.5")
    monkeypatch.setenv("LLM_CALL_TIMEOUT_S", "30")
    monkeypatch.setenv("LLM_HTTP_SPANS", "false")
    monkeypatch.setenv("LLM_ATTEMPT_TIMEOUT_S", "4")
    monkeypatch.setenv("LLM_STREAM_IDLE_TIMEOUT_S", "1.5")
    monkeypatch.setenv("LLM_ALLOWED_MODELS", json.dumps({"*": ["gpt41-mini"], "keywords": ["gpt4o-2"]}))
    monkeypatch.setenv("LLM_SPLITS", json.dumps({"keywords": {"gpt41-mini": 10, "gpt4o-2": 90}}))
    monkeypatch.setenv("LLM_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("LLM_CONFIG_RELOAD_S", "2")

    settings = LLMSettings()

    assert settings.model_default == "gpt41-mini"
    assert settings.api_models == {"LLM_MODEL_GAP_ANALYSIS": "gpt4o-2"}
    assert settings.enable_llm_model_override and settings.enable_llm_model_header
    azure = settings.models["gpt4o-2"]
    assert isinstance(azure, AzureEndpoint)
    assert (azure.deployment, azure.request_model, azure.model, azure.api_version) == (
        "gpt-4o-2",
        "gpt-4o-2",
        "gpt-4o",
        "2024-10-21",
    )
    openai_endpoint = settings.models["gpt41-mini"]
    assert isinstance(openai_endpoint, OpenAIEndpoint)
    assert openai_endpoint.request_model == "gpt-4.1-mini"
    assert settings.fallback_chain("gpt4o-2") == ["gpt41-mini"]
    assert settings.fallback_chain("gpt41-mini") == []
    assert settings.prices == {"gpt-4o": Price(input=2.5, output=10, cached_input=1.25)}
    assert (settings.retry_attempts, settings.retry_max_wait_s, settings.call_timeout_s) == (3, 2.5, 30)
    assert settings.http_spans is False
    assert (settings.attempt_timeout_s, settings.stream_idle_timeout_s) == (4, 1.5)
    assert settings.allowed_models == {"*": ["gpt41-mini"], "keywords": ["gpt4o-2"]}
    assert settings.splits == {"keywords": {"gpt41-mini": 10, "gpt4o-2": 90}}
    assert (settings.config_file, settings.config_reload_s) == (Path(os.devnull), 2)


def test_an_alias_missing_from_llm_models_is_an_openai_model_of_that_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "gpt-4.1")
    monkeypatch.setenv("LLM_MODEL_KEYWORDS", "gpt-4.1-nano")
    endpoints = LLMSettings().endpoints
    assert endpoints == {
        "gpt-4.1": OpenAIEndpoint(model="gpt-4.1"),
        "gpt-4.1-nano": OpenAIEndpoint(model="gpt-4.1-nano"),
    }
    assert endpoints["gpt-4.1"].base_url is None  # the SDK's own OPENAI_BASE_URL / default applies


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "")
    monkeypatch.setenv("LLM_MODEL_KEYWORDS", "")
    settings = LLMSettings()
    assert settings.model_default is None and settings.api_models == {}


def test_keyword_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "from-env")
    assert LLMSettings(model_default="from-code").model_default == "from-code"


def test_config_file_has_the_same_keys_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "llm.toml"
    config.write_text(
        """
model_default = "gpt41-mini"
model_keywords = "gpt4o-2"
model_gap-analysis = "gpt41-mini"
enable_llm_model_header = true
retry_attempts = 4
call_timeout_s = 20

[models.gpt4o-2]
provider = "azure"
model = "gpt-4o"
deployment = "gpt-4o-2"
endpoint = "https://example.openai.azure.com"
api_version = "2024-10-21"

[models.gpt41-mini]
provider = "openai"
model = "gpt-4.1-mini"

[fallbacks]
gpt4o-2 = ["gpt41-mini"]

[prices.gpt-4o]
input = 2.5
output = 10.0

[splits.resume_format]
gpt41-mini = 1
gpt4o-2 = 3

[allowed_models]
"*" = ["gpt41-mini"]
""".replace("model_gap-analysis", '"model_gap-analysis"')
    )
    monkeypatch.setenv("LLM_CONFIG_FILE", str(config))
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "5")

    settings = LLMSettings()

    assert settings.model_default == "gpt41-mini"
    assert settings.api_models == {"LLM_MODEL_KEYWORDS": "gpt4o-2", "LLM_MODEL_GAP_ANALYSIS": "gpt41-mini"}
    assert settings.enable_llm_model_header is True
    assert settings.retry_attempts == 5  # the environment wins
    assert settings.call_timeout_s == 20
    assert isinstance(settings.models["gpt4o-2"], AzureEndpoint)
    assert settings.fallback_chain("gpt4o-2") == ["gpt41-mini"]
    assert settings.prices["gpt-4o"].cached_input is None
    assert settings.splits == {"resume_format": {"gpt41-mini": 1, "gpt4o-2": 3}}
    assert settings.allowed_models == {"*": ["gpt41-mini"]}


def test_per_api_variable_from_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "llm.toml"
    config.write_text('model_keywords = "from-file"\nmodel_other = "other"\n')
    monkeypatch.setenv("LLM_CONFIG_FILE", str(config))
    monkeypatch.setenv("LLM_MODEL_KEYWORDS", "from-env")
    assert LLMSettings().api_models == {"LLM_MODEL_KEYWORDS": "from-env", "LLM_MODEL_OTHER": "other"}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LLM_MODELS", "{not json", "LLM_MODELS: invalid JSON"),
        ("LLM_MODELS", "[]", "LLM_MODELS: expected a JSON object, got list"),
        ("LLM_MODELS", '{"a": "gpt-4o"}', "LLM_MODELS['a']: Input should be a valid dictionary"),
        ("LLM_MODELS", '{"a": {"provider": "bedrock", "model": "m"}}', "LLM_MODELS['a']: unknown provider"),
        ("LLM_MODELS", '{"a": {"model": "m"}}', "LLM_MODELS['a']: missing field 'provider'"),
        ("LLM_MODELS", '{"a": {"provider": "openai"}}', "LLM_MODELS['a']['model']: Field required"),
        ("LLM_MODELS", json.dumps({"a": {**AZURE_ENTRY, "deployment": None}}), "LLM_MODELS['a']['deployment']"),
        (
            "LLM_MODELS",
            json.dumps({"a": {k: v for k, v in AZURE_ENTRY.items() if k != "endpoint"}}),
            "LLM_MODELS['a']['endpoint']: Field required",
        ),
        ("LLM_MODELS", json.dumps({"a": {**OPENAI, "base_url": "not a url"}}), "LLM_MODELS['a']['base_url']"),
        (
            "LLM_MODELS",
            json.dumps({"a": {**OPENAI, "deploymnet": "x"}}),
            "LLM_MODELS['a']['deploymnet']: Extra inputs are not permitted",
        ),
        ("LLM_FALLBACKS", '{"a": "b"}', "LLM_FALLBACKS['a']: Input should be a valid list"),
        ("LLM_FALLBACKS", '{"gpt41": ["nope"]}', "LLM_FALLBACKS: 'gpt41' names unknown alias 'nope'"),
        ("LLM_FALLBACKS", '{"nope": ["gpt41"]}', "LLM_FALLBACKS: 'nope' names unknown alias 'nope'"),
        ("LLM_FALLBACKS", '{"gpt41": ["gpt41"]}', "LLM_FALLBACKS: 'gpt41' falls back to itself"),
        ("LLM_FALLBACKS", '{"gpt41": ["mini", "mini"]}', "LLM_FALLBACKS: 'gpt41' lists an alias twice"),
        (
            "LLM_FALLBACKS",
            '{"gpt41": ["mini"], "mini": ["nano"], "nano": ["gpt41"]}',
            "LLM_FALLBACKS: cycle gpt41 -> mini -> nano -> gpt41",
        ),
        (
            "LLM_PRICES",
            '{"gpt-4o": {"input": -1, "output": 1}}',
            "LLM_PRICES['gpt-4o']['input']: Input should be greater than or equal to 0",
        ),
        (
            "LLM_PRICES",
            '{"gpt-4o": {"input": NaN, "output": 1}}',
            "LLM_PRICES: invalid JSON (NaN is not a finite number)",
        ),
        (
            "LLM_PRICES",
            '{"gpt-4o": {"input": 1e999, "output": 1}}',
            "LLM_PRICES['gpt-4o']['input']: Input should be a finite number",
        ),
        ("LLM_PRICES", '{"gpt-4o": {"input": 1}}', "LLM_PRICES['gpt-4o']['output']: Field required"),
        ("LLM_RETRY_ATTEMPTS", "0", "LLM_RETRY_ATTEMPTS: Input should be greater than or equal to 1"),
        ("LLM_RETRY_ATTEMPTS", "11", "LLM_RETRY_ATTEMPTS: Input should be less than or equal to 10"),
        ("LLM_RETRY_ATTEMPTS", "2.5", "LLM_RETRY_ATTEMPTS: Input should be a valid integer"),
        ("LLM_RETRY_MAX_WAIT_S", "-1", "LLM_RETRY_MAX_WAIT_S: Input should be greater than or equal to 0"),
        ("LLM_RETRY_MAX_WAIT_S", "301", "LLM_RETRY_MAX_WAIT_S: Input should be less than or equal to 300"),
        ("LLM_RETRY_MAX_WAIT_S", "inf", "LLM_RETRY_MAX_WAIT_S: Input should be a finite number"),
        ("LLM_CALL_TIMEOUT_S", "0", "LLM_CALL_TIMEOUT_S: Input should be greater than 0"),
        ("LLM_CALL_TIMEOUT_S", "3601", "LLM_CALL_TIMEOUT_S: Input should be less than or equal to 3600"),
        ("LLM_CALL_TIMEOUT_S", "nan", "LLM_CALL_TIMEOUT_S: Input should be a finite number"),
        ("LLM_CALL_TIMEOUT_S", "soon", "LLM_CALL_TIMEOUT_S: Input should be a valid number"),
        ("ENABLE_LLM_MODEL_OVERRIDE", "maybe", "ENABLE_LLM_MODEL_OVERRIDE: Input should be a valid boolean"),
        ("ENABLE_LLM_MODEL_HEADER", "2", "ENABLE_LLM_MODEL_HEADER: Input should be a valid boolean"),
        ("LLM_HTTP_SPANS", "sometimes", "LLM_HTTP_SPANS: Input should be a valid boolean"),
        ("LLM_ATTEMPT_TIMEOUT_S", "0", "LLM_ATTEMPT_TIMEOUT_S: Input should be greater than 0"),
        ("LLM_ATTEMPT_TIMEOUT_S", "3601", "LLM_ATTEMPT_TIMEOUT_S: Input should be less than or equal to 3600"),
        ("LLM_ATTEMPT_TIMEOUT_S", "inf", "LLM_ATTEMPT_TIMEOUT_S: Input should be a finite number"),
        ("LLM_STREAM_IDLE_TIMEOUT_S", "-1", "LLM_STREAM_IDLE_TIMEOUT_S: Input should be greater than 0"),
        ("LLM_STREAM_IDLE_TIMEOUT_S", "nan", "LLM_STREAM_IDLE_TIMEOUT_S: Input should be a finite number"),
        *(
            (variable, "[" * 100_000 + "]" * 100_000, f"{variable}: invalid JSON (nested too deeply)")
            for variable in ("LLM_MODELS", "LLM_FALLBACKS", "LLM_PRICES", "LLM_ALLOWED_MODELS", "LLM_SPLITS")
        ),
        ("LLM_ALLOWED_MODELS", '["mini"]', "LLM_ALLOWED_MODELS: expected a JSON object, got list"),
        ("LLM_ALLOWED_MODELS", '{"a": "mini"}', "LLM_ALLOWED_MODELS['a']: Input should be a valid list"),
        (
            "LLM_ALLOWED_MODELS",
            '{"*": ["mini", "gpt5"]}',
            "LLM_ALLOWED_MODELS['*'] names unknown alias 'gpt5'; known aliases: gpt41, mini, nano",
        ),
        (
            "LLM_ALLOWED_MODELS",
            '{"gap-analysis": ["mini"], "gap_analysis": ["nano"]}',
            "LLM_ALLOWED_MODELS: 'gap-analysis' and 'gap_analysis' name the same API; keep one",
        ),
        ("LLM_SPLITS", '{"c": {"mini": 0, "nano": 1}}', "LLM_SPLITS['c']['mini']: Input should be greater than 0"),
        ("LLM_SPLITS", '{"c": {"mini": -5}}', "LLM_SPLITS['c']['mini']: Input should be greater than 0"),
        ("LLM_SPLITS", '{"c": {"mini": 1e999}}', "LLM_SPLITS['c']['mini']: Input should be a finite number"),
        ("LLM_SPLITS", '{"c": {"mini": "half"}}', "LLM_SPLITS['c']['mini']: Input should be a valid number"),
        ("LLM_SPLITS", '{"c": {}}', "LLM_SPLITS['c'] is empty: give at least one alias and its weight"),
        ("LLM_SPLITS", '{"c": ["mini", "nano"]}', "LLM_SPLITS['c']: Input should be a valid dictionary"),
        ("LLM_SPLITS", '{"*": {"mini": 1}}', "LLM_SPLITS: '*' is not an API name"),
        (
            "LLM_SPLITS",
            '{"a": {"mini": 10, "nano": 90}}',
            "LLM_SPLITS['a'] and LLM_MODEL_A both choose the model of API 'a': keep one",
        ),
        ("LLM_CONFIG_RELOAD_S", "-1", "LLM_CONFIG_RELOAD_S: Input should be greater than or equal to 0"),
        ("LLM_CONFIG_RELOAD_S", "0.001", "LLM_CONFIG_RELOAD_S: expected 0 (off) or at least 0.01 seconds"),
        ("LLM_CONFIG_RELOAD_S", "inf", "LLM_CONFIG_RELOAD_S: Input should be a finite number"),
        (
            "LLM_CONFIG_RELOAD_S",
            "5",
            "LLM_CONFIG_RELOAD_S is set but LLM_CONFIG_FILE is not: there is no file to watch",
        ),
    ],
)
def test_invalid_configuration_is_rejected_at_load_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "gpt41")
    monkeypatch.setenv("LLM_MODEL_A", "mini")
    monkeypatch.setenv("LLM_MODEL_B", "nano")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        LLMSettings()
    assert expected in str(error.value)
    assert isinstance(error.value, ValueError)


def test_a_key_pasted_into_the_config_is_rejected_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODELS", json.dumps({"a": {**OPENAI, "api_key": "sk-live-secret-123"}}))
    with pytest.raises(ConfigError) as error:
        LLMSettings()
    assert "LLM_MODELS['a']['api_key']: Extra inputs are not permitted" in str(error.value)
    assert "sk-live-secret-123" not in str(error.value)


def test_config_file_problems_name_the_file_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "llm.toml"
    monkeypatch.setenv("LLM_CONFIG_FILE", str(config))

    with pytest.raises(ConfigError, match=r"LLM_CONFIG_FILE: cannot read .*llm.toml"):
        LLMSettings()

    config.write_text("model_default = \n")
    with pytest.raises(ConfigError, match=r"LLM_CONFIG_FILE: .*llm.toml' is not valid TOML"):
        LLMSettings()

    config.write_text("retry_attempts = 42\n")
    expected = r"LLM_RETRY_ATTEMPTS \(key 'retry_attempts' in '.*llm.toml'\): Input should be less"
    with pytest.raises(ConfigError, match=expected):
        LLMSettings()

    config.write_text("retry_attemps = 4\n")
    with pytest.raises(ConfigError, match=r"retry_attemps.*Extra inputs are not permitted"):
        LLMSettings()

    config.write_text("fallbacks = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ConfigError, match=r"LLM_CONFIG_FILE: .*llm.toml' is nested too deeply"):
        LLMSettings()


def test_process_wide_settings_are_built_once_and_rebuilt_on_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "first")
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "second")
    assert get_settings().model_default == "first"
    assert reload_settings().model_default == "second"
    assert get_settings().model_default == "second"


def test_a_failed_reload_keeps_the_previous_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "good")
    good = reload_settings()
    monkeypatch.setenv("LLM_RETRY_ATTEMPTS", "99")
    with pytest.raises(ConfigError):
        reload_settings()
    assert get_settings() is good


def test_settings_are_immutable() -> None:
    settings = LLMSettings(model_default="a")
    with pytest.raises(Exception, match="frozen"):
        settings.model_default = "b"  # type: ignore[misc]


def test_a_copy_with_new_models_knows_its_own_endpoints() -> None:
    settings = LLMSettings(models={"a": OPENAI}, model_default="a")
    assert set(settings.endpoints) == {"a"}
    copied = settings.model_copy(update={"models": {"b": OpenAIEndpoint(model="gpt-4.1")}, "model_default": "b"})
    assert set(copied.endpoints) == {"b"}
    assert set(settings.endpoints) == {"a"}


def test_a_state_server_without_the_redis_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if otel-llm[redis] were not installed
    monkeypatch.setenv("LLM_STATE_URL", "redis://:secret@localhost:6379/0")
    with pytest.raises(ConfigError) as error:
        LLMSettings()
    assert "LLM_STATE_URL: a Redis server needs the redis client: pip install 'otel-llm[redis]'" in str(error.value)
    assert "secret" not in str(error.value)

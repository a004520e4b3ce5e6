"""Configuration: ``LLMSettings`` reads the environment and ``LLM_CONFIG_FILE``.

Everything is validated when the settings are built, so a bad configuration
fails at start-up with a ``ConfigError`` that names the variable, never at the
first call.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ._derived import derived
from ._endpoints import Endpoint, OpenAIEndpoint
from ._errors import ConfigError

__all__ = ["Budget", "BudgetWindow", "LLMSettings", "Price", "api_entry", "api_variable"]

_T = TypeVar("_T")
_PER_API_PREFIX = "LLM_MODEL_"
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


def api_variable(api_name: str) -> str:
    """``LLM_MODEL_<API>`` for an API name: ``gap-analysis`` -> ``LLM_MODEL_GAP_ANALYSIS``."""
    return _PER_API_PREFIX + _NOT_ALNUM.sub("_", api_name).upper()


def api_entry(entries: Mapping[str, _T], api_name: str) -> _T | None:
    """The entry of ``api_name`` in a per-API setting (``LLM_SPLITS``, ``LLM_BUDGETS``, ...), whichever
    way the API name was spelt there: ``gap-analysis`` and ``gap_analysis`` are one API. Never ``"*"``."""
    variable = api_variable(api_name)
    for name, entry in entries.items():
        if name != "*" and api_variable(name) == variable:
            return entry
    return None


class Price(BaseModel):
    """USD per one million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    output: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    cached_input: Annotated[float | None, Field(ge=0, allow_inf_nan=False)] = None


_Alias = Annotated[str, Field(min_length=1)]
_Weight = Annotated[float, Field(gt=0, allow_inf_nan=False)]
BudgetWindow = Literal["minute", "hour", "day", "month"]


class Budget(BaseModel):
    """What one API may spend per calendar window (UTC), and where its calls go past it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    usd: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    window: BudgetWindow
    then: _Alias | None = None
    """The alias an attempt that does not fit goes to; without it the call raises ``BudgetExceededError``."""
    reserve_output_tokens: Annotated[int, Field(ge=1, le=10_000_000)] = 4096
    """Output tokens reserved for a request that sets no ``max_tokens`` / ``max_output_tokens``."""


_CAPTURE_MODES = {
    "true": True,
    "span_only": True,
    "span_and_event": True,
    "false": False,
    "no_content": False,
    "event_only": False,
}


class LLMSettings(BaseSettings):
    """Model selection, endpoints, prices and resilience settings.

    Built from (highest priority first) keyword arguments, environment
    variables, then the TOML file named by ``LLM_CONFIG_FILE``.
    """

    model_config = SettingsConfigDict(
        env_prefix="LLM_",
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    model_default: _Alias | None = None
    """``LLM_MODEL_DEFAULT``: alias used when nothing else chose."""
    api_models: dict[str, _Alias] = {}
    """``LLM_MODEL_<API>``, keyed by ``LLM_MODEL_<API>`` variable name."""
    enable_llm_model_override: bool = Field(
        False, validation_alias=AliasChoices("ENABLE_LLM_MODEL_OVERRIDE", "enable_llm_model_override")
    )
    enable_llm_model_header: bool = Field(
        False, validation_alias=AliasChoices("ENABLE_LLM_MODEL_HEADER", "enable_llm_model_header")
    )
    models: Annotated[dict[_Alias, Endpoint], NoDecode] = {}
    fallbacks: Annotated[dict[_Alias, list[_Alias]], NoDecode] = {}
    prices: Annotated[dict[_Alias, Price], NoDecode] = {}
    allowed_models: Annotated[dict[_Alias, list[_Alias]], NoDecode] = {}
    """``LLM_ALLOWED_MODELS``: API name (or ``"*"``) -> the aliases a request or header may choose for it."""
    splits: Annotated[dict[_Alias, dict[_Alias, _Weight]], NoDecode] = {}
    """``LLM_SPLITS``: API name -> ``{alias: weight}``, a weighted split of that API's traffic."""
    budgets: Annotated[dict[_Alias, Budget], NoDecode] = {}
    """``LLM_BUDGETS``: API name -> what it may spend per window."""
    state_url: str | None = None
    """``LLM_STATE_URL``: a Redis URL whose server every replica shares budgets and breakers through."""
    state_failure: Literal["open", "closed"] = "open"
    """``LLM_STATE_FAILURE``: without the state server, go on with this process's state, or fail the call."""
    config_reload_s: float = Field(0.0, ge=0, le=3600, allow_inf_nan=False)
    """``LLM_CONFIG_RELOAD_S``: seconds between checks of ``LLM_CONFIG_FILE`` for changes; 0 = off."""
    retry_attempts: int = Field(2, ge=1, le=10, strict=False)
    retry_max_wait_s: float = Field(10.0, ge=0, le=300, allow_inf_nan=False)
    call_timeout_s: float = Field(60.0, gt=0, le=3600, allow_inf_nan=False)
    breaker_failures: int = Field(5, ge=1, le=1000)
    """``LLM_BREAKER_FAILURES``: retryable failures in a row that open an endpoint's breaker."""
    breaker_cooldown_s: float = Field(30.0, gt=0, le=3600, allow_inf_nan=False)
    """``LLM_BREAKER_COOLDOWN_S``: how long an open breaker skips its endpoint before probing it."""
    attempt_timeout_s: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False)
    """``LLM_ATTEMPT_TIMEOUT_S``: longest one attempt may take (a stream: until its first chunk), so
    that a hung model falls back instead of spending the whole call's deadline."""
    stream_idle_timeout_s: float | None = Field(None, gt=0, le=3600, allow_inf_nan=False)
    """``LLM_STREAM_IDLE_TIMEOUT_S``: longest silence between two chunks of a stream after its first."""
    http_spans: bool = True
    capture_message_content: bool = Field(
        False,
        validation_alias=AliasChoices("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "capture_message_content"),
    )
    """Record prompts and completions on the attempt spans (off by default)."""
    config_file: Path | None = None

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, values)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = getattr(init_settings, "init_kwargs", {}).get("config_file") or os.environ.get("LLM_CONFIG_FILE")
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvSource(settings_cls)]
        if config_file:
            sources.append(_TomlSource(settings_cls, Path(config_file)))
        return tuple(sources)

    @field_validator("models", "fallbacks", "prices", "allowed_models", "splits", "budgets", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value, parse_constant=_reject_constant)
            except ValueError as exc:
                raise ValueError(f"invalid JSON ({exc})") from None
            except RecursionError:
                raise ValueError("invalid JSON (nested too deeply)") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        return value

    @field_validator("capture_message_content", mode="before")
    @classmethod
    def _parse_capture_mode(cls, value: Any) -> Any:
        # The OpenTelemetry GenAI instrumentations' values: content goes on spans
        # for these; EVENT_ONLY and NO_CONTENT keep it off our spans.
        if isinstance(value, str):
            mode = value.strip().lower()
            if mode in _CAPTURE_MODES:
                return _CAPTURE_MODES[mode]
            raise ValueError(f"expected one of {', '.join(_CAPTURE_MODES)}")
        return value

    @field_validator("state_url")
    @classmethod
    def _check_state_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if urlsplit(value).scheme not in ("redis", "rediss"):
            # The URL may hold a password: the message shows its scheme only.
            raise ValueError(f"expected a redis:// or rediss:// URL, got scheme {urlsplit(value).scheme!r}")
        try:
            import redis  # noqa: F401  # the optional extra, imported only when a server is configured
        except ImportError:
            raise ValueError("a Redis server needs the redis client: pip install 'otel-llm[redis]'") from None
        return value

    @field_validator("config_reload_s")
    @classmethod
    def _check_reload_interval(cls, value: float) -> float:
        if 0 < value < _MIN_RELOAD_S:
            raise ValueError(f"expected 0 (off) or at least {_MIN_RELOAD_S} seconds")
        return value

    @model_validator(mode="after")
    def _check_references(self) -> LLMSettings:
        _check_fallbacks(self.fallbacks, self.endpoints)
        _check_allowed_models(self.allowed_models, self.endpoints)
        _check_splits(self.splits, self.api_models)
        _check_budgets(self)
        if self.config_reload_s and self.config_file is None:
            raise ValueError("LLM_CONFIG_RELOAD_S is set but LLM_CONFIG_FILE is not: there is no file to watch")
        return self

    @property
    def endpoints(self) -> dict[str, Endpoint]:
        """Every known alias and where it lives."""
        memo = derived(self)
        if memo.endpoints is None:
            memo.endpoints = self._endpoints()
        return memo.endpoints

    def _endpoints(self) -> dict[str, Endpoint]:
        endpoints: dict[str, Endpoint] = dict(self.models)
        # An alias named by a selection variable but absent from LLM_MODELS is an
        # OpenAI model of that name, reached through the SDK's own environment.
        named = (self.model_default, *self.api_models.values(), *(a for split in self.splits.values() for a in split))
        for alias in named:
            if alias is not None and alias not in endpoints:
                endpoints[alias] = OpenAIEndpoint(model=alias)
        return endpoints

    def fallback_chain(self, alias: str) -> list[str]:
        """The aliases tried after ``alias``, in order."""
        return self.fallbacks.get(alias, [])


_MIN_RELOAD_S = 0.01


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a finite number")


def _check_fallbacks(fallbacks: dict[str, list[str]], endpoints: dict[str, Endpoint]) -> None:
    for alias, chain in fallbacks.items():
        for name in (alias, *chain):
            if name not in endpoints:
                raise ValueError(
                    f"LLM_FALLBACKS: {alias!r} names unknown alias {name!r}; "
                    f"known aliases: {', '.join(sorted(endpoints)) or '(none)'}"
                )
        if alias in chain:
            raise ValueError(f"LLM_FALLBACKS: {alias!r} falls back to itself")
        if len(set(chain)) != len(chain):
            raise ValueError(f"LLM_FALLBACKS: {alias!r} lists an alias twice")
    # A cycle (a -> b, b -> a) would make a failing call hop forever.
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(alias: str, path: list[str]) -> None:
        if alias in done:
            return
        if alias in visiting:
            cycle = [*path[path.index(alias) :], alias]
            raise ValueError(f"LLM_FALLBACKS: cycle {' -> '.join(cycle)}")
        visiting.add(alias)
        for nxt in fallbacks.get(alias, []):
            visit(nxt, [*path, alias])
        visiting.discard(alias)
        done.add(alias)

    for alias in fallbacks:
        visit(alias, [])


def _check_allowed_models(allowed: dict[str, list[str]], endpoints: dict[str, Endpoint]) -> None:
    _check_api_names("LLM_ALLOWED_MODELS", allowed)
    for api, aliases in allowed.items():
        unknown = sorted(set(aliases) - endpoints.keys())
        if unknown:
            raise ValueError(
                f"LLM_ALLOWED_MODELS[{api!r}] names unknown alias {unknown[0]!r}; "
                f"known aliases: {', '.join(sorted(endpoints)) or '(none)'}"
            )


def _check_splits(splits: dict[str, dict[str, float]], api_models: dict[str, str]) -> None:
    _check_api_names("LLM_SPLITS", splits)
    if "*" in splits:
        raise ValueError("LLM_SPLITS: '*' is not an API name; a split is given per API")
    for api, weights in splits.items():
        if not weights:
            raise ValueError(f"LLM_SPLITS[{api!r}] is empty: give at least one alias and its weight")
        variable = api_variable(api)
        if variable in api_models:
            raise ValueError(f"LLM_SPLITS[{api!r}] and {variable} both choose the model of API {api!r}: keep one")


def _check_budgets(settings: LLMSettings) -> None:
    _check_api_names("LLM_BUDGETS", settings.budgets)
    from ._budgets import reachable_aliases  # a budget needs prices, which need the settings
    from ._cost import cost_function

    endpoints = settings.endpoints
    for api, budget in settings.budgets.items():
        where = f"LLM_BUDGETS[{api!r}]"
        if api == "*":
            raise ValueError("LLM_BUDGETS: '*' is not an API name; a budget is given per API")
        if budget.then is not None and budget.then not in endpoints:
            raise ValueError(
                f"{where}['then'] names unknown alias {budget.then!r}; known aliases: {', '.join(sorted(endpoints))}"
            )
        for alias in reachable_aliases(api, settings):
            endpoint = endpoints[alias]
            if cost_function(alias, endpoint, settings) is None:
                raise ValueError(
                    f"{where}: API {api!r} can reach alias {alias!r} (model {endpoint.model!r}), which has no known "
                    "price, so its spend cannot be counted; price it in LLM_PRICES, or keep the API from it"
                )


def _check_api_names(variable: str, by_api: dict[str, Any]) -> None:
    """Two spellings of one API (``gap-analysis``, ``gap_analysis``) would make the entry used depend on the caller."""
    seen: dict[str, str] = {}
    for api in by_api:
        if api == "*":
            continue
        first = seen.setdefault(api_variable(api), api)
        if first != api:
            raise ValueError(f"{variable}: {first!r} and {api!r} name the same API; keep one")


class _EnvSource(EnvSettingsSource):
    """The environment, plus ``LLM_MODEL_<API>`` for any API name."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        default = "llm_model_default"
        prefix = _PER_API_PREFIX.lower()
        per_api = {
            name.upper(): value
            for name, value in self.env_vars.items()
            if name.startswith(prefix) and name != default and value
        }
        if per_api:
            values["api_models"] = per_api
        return values


class _TomlSource(InitSettingsSource):
    """``LLM_CONFIG_FILE``: the same keys, lower-case, without the ``LLM_`` prefix.

    ``model_keywords = "gpt41-mini"`` is the file's ``LLM_MODEL_KEYWORDS``.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        try:
            with path.open("rb") as file:
                data = tomllib.load(file)
        except OSError as exc:
            raise ConfigError(f"LLM_CONFIG_FILE: cannot read {str(path)!r} ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"LLM_CONFIG_FILE: {str(path)!r} is not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError(f"LLM_CONFIG_FILE: {str(path)!r} is nested too deeply") from None
        per_api = {
            api_variable(key[len("model_") :]): data.pop(key)
            for key in list(data)
            if key.startswith("model_") and key != "model_default"
        }
        if per_api:
            data["api_models"] = per_api
        super().__init__(settings_cls, data)


# -- turning pydantic's errors into messages that name the variable ----------

_UNPREFIXED_VARIABLES = {
    "enable_llm_model_override": "ENABLE_LLM_MODEL_OVERRIDE",
    "enable_llm_model_header": "ENABLE_LLM_MODEL_HEADER",
    "capture_message_content": "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
}


def _variable(field: str) -> str:
    if field.upper() in _UNPREFIXED_VARIABLES.values():
        return field.upper()
    return _UNPREFIXED_VARIABLES.get(field) or f"LLM_{field.upper()}"


def _where(field: str, init_values: dict[str, Any]) -> str:
    """Name where the bad value came from, as the user wrote it."""
    if field in init_values:
        return f"{field}="
    variable = _variable(field)
    config_file = init_values.get("config_file") or os.environ.get("LLM_CONFIG_FILE")
    if variable in os.environ or not config_file or field == "api_models":
        return variable
    return f"{variable} (key {variable.lower().removeprefix('llm_')!r} in {str(config_file)!r})"


_TAG_MESSAGES = {
    "union_tag_not_found": "missing field 'provider' (one of 'openai', 'azure')",
    "union_tag_invalid": "unknown provider (expected 'openai' or 'azure')",
}


def _describe(exc: ValidationError, init_values: dict[str, Any]) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        message = _TAG_MESSAGES.get(error["type"], error["msg"]).removeprefix("Value error, ")
        if not loc:  # a whole-model check, whose message names its variable itself
            problems.append(message)
            continue
        field, rest = loc[0], [part for part in loc[1:] if part not in ("openai", "azure")]
        if field == "api_models" and rest:
            where, rest = rest[0], rest[1:]
        else:
            where = _where(field, init_values)
        path = "".join(f"[{part!r}]" for part in rest)
        problems.append(f"{where}{path}: {message}")
    return "invalid otel-llm configuration: " + "; ".join(problems)

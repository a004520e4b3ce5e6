"""select_model: the priority chain, both flags, every header shape, the errors."""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Iterator

import httpx2
import pytest

from otel_llm import (
    ConfigError,
    LLMSettings,
    ModelNotAllowedError,
    Selection,
    UnknownModelError,
    reload_settings,
    select_model,
)


def settings(override: bool = True, header: bool = True, **values: object) -> LLMSettings:
    return LLMSettings(
        model_default="default-model",
        api_models={"LLM_MODEL_KEYWORDS": "env-model"},
        models={name: {"provider": "openai", "model": name} for name in ("request-model", "header-model")},
        enable_llm_model_override=override,
        enable_llm_model_header=header,
        **values,
    )


HEADERS = {"X-LLM-Model": "header-model"}


@pytest.mark.parametrize("override", [True, False])
@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("api", ["keywords", "other"])
@pytest.mark.parametrize("with_request", [True, False])
@pytest.mark.parametrize("with_header", [True, False])
def test_priority_chain_over_every_flag_combination(
    override: bool, header: bool, api: str, with_request: bool, with_header: bool
) -> None:
    selection = select_model(
        api,
        request_model="request-model" if with_request else None,
        headers=HEADERS if with_header else None,
        settings=settings(override, header),
    )
    if with_request and override:
        expected = ("request-model", "request")
    elif with_header and header:
        expected = ("header-model", "header")
    elif api == "keywords":
        expected = ("env-model", "env")
    else:
        expected = ("default-model", "default")
    assert (selection.model, selection.source) == expected
    assert selection.api_name == api


@pytest.mark.parametrize("api", ["gap-analysis", "gap_analysis", "Gap Analysis", "gap.analysis"])
def test_api_names_are_normalised_to_one_variable(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_GAP_ANALYSIS", "gap-model")
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "default-model")
    assert select_model(api, settings=LLMSettings()) == Selection(api, "gap-model", "env")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-LLM-Model": "header-model"},
        {"x-llm-model": "header-model"},
        {"X-Llm-Model": "header-model", "Accept": "*/*"},
        [("accept", "*/*"), ("X-LLM-MODEL", "header-model")],
        [(b"x-llm-model", b"header-model")],  # an ASGI scope's raw headers
        httpx2.Headers({"X-Llm-Model": "header-model"}),
        types.MappingProxyType({"X-Llm-MODEL": "header-model"}),  # not a dict, keys keep their case
        {"X-LLM-Model": "  header-model  "},
        iter([("X-LLM-Split-Key", "user-1"), ("x-llm-model", "header-model"), ("x-llm-model", "request-model")]),
    ],
    ids=["dict", "lower", "mixed-case", "pairs", "asgi-bytes", "httpx-headers", "mapping", "padded", "first-of-a-pass"],
)
def test_header_is_found_whatever_its_shape_and_case(headers: object) -> None:
    selection = select_model("other", headers=headers, settings=settings())  # type: ignore[arg-type]
    assert (selection.model, selection.source) == ("header-model", "header")


@pytest.mark.parametrize(
    "headers",
    [{}, [], {"X-LLM-Model": ""}, {"X-LLM-Model": "   "}, {"Accept": "*/*"}, {"X-LLM-Modem": "header-model"}],
)
def test_absent_or_empty_header_lets_the_next_level_decide(headers: object) -> None:
    assert select_model("keywords", headers=headers, settings=settings()).source == "env"  # type: ignore[arg-type]


def test_empty_request_model_lets_the_next_level_decide() -> None:
    assert select_model("keywords", request_model="", settings=settings()).source == "env"


@pytest.mark.parametrize(
    ("kwargs", "source", "where"),
    [
        ({"request_model": "gpt-5-turbo-max"}, "request", "the request_model argument"),
        ({"headers": {"X-LLM-Model": "gpt-5-turbo-max"}}, "header", "the X-LLM-Model header"),
    ],
)
def test_unknown_model_is_rejected_listing_the_known_aliases(kwargs: dict, source: str, where: str) -> None:
    with pytest.raises(UnknownModelError) as error:
        select_model("keywords", settings=settings(), **kwargs)
    assert isinstance(error.value, ValueError)
    assert str(error.value) == (
        f"unknown model 'gpt-5-turbo-max' from {where}; "
        "known aliases: default-model, env-model, header-model, request-model"
    )
    assert (error.value.value, error.value.source) == ("gpt-5-turbo-max", source)
    assert error.value.known == ("default-model", "env-model", "header-model", "request-model")


def test_unknown_model_message_shortens_a_long_value() -> None:
    with pytest.raises(UnknownModelError) as error:
        select_model("keywords", request_model="x" * 10_000, settings=settings())
    assert len(str(error.value)) < 200
    assert error.value.value == "x" * 10_000


def test_flag_off_ignores_even_an_unknown_value() -> None:
    selection = select_model(
        "keywords", request_model="nope", headers={"X-LLM-Model": "nope"}, settings=settings(False, False)
    )
    assert selection.source == "env"


def test_no_default_is_a_config_error_naming_the_variables() -> None:
    bare = LLMSettings(api_models={"LLM_MODEL_KEYWORDS": "env-model"})
    assert select_model("keywords", settings=bare).source == "env"
    expected = r"no model for API 'gap-analysis': set LLM_MODEL_GAP_ANALYSIS, LLM_SPLITS or LLM_MODEL_DEFAULT"
    with pytest.raises(ConfigError, match=expected):
        select_model("gap-analysis", settings=bare)


def test_module_level_selection_uses_the_process_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "first")
    assert select_model("keywords").model == "first"
    monkeypatch.setenv("LLM_MODEL_DEFAULT", "second")
    assert select_model("keywords").model == "first"
    reload_settings()
    assert select_model("keywords").model == "second"


def test_selection_is_frozen_and_comparable() -> None:
    selection = select_model("keywords", settings=settings())
    assert selection == Selection("keywords", "env-model", "env")
    with pytest.raises(dataclasses.FrozenInstanceError):
        selection.model = "other"  # type: ignore[misc]


def test_api_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(TypeError, match="api_name must be a non-empty string"):
        select_model("", settings=settings())


@pytest.fixture
def io_events() -> Iterator[list[str]]:
    """Audit events of file and network I/O raised while the test body runs."""
    events: list[str] = []
    active = [True]

    def hook(event: str, args: tuple) -> None:
        if active[0] and event.split(".")[0] in ("open", "socket", "os", "subprocess"):
            events.append(event)

    sys.addaudithook(hook)  # hooks cannot be removed; this one goes quiet after the test
    yield events
    active[0] = False


def test_selection_does_no_io(io_events: list[str]) -> None:
    current = settings()
    io_events.clear()
    for api in ("keywords", "other", "third"):
        select_model(api, settings=current)
        select_model(api, request_model="request-model", settings=current)
        select_model(api, headers=[(b"x-llm-model", b"header-model")], settings=current)
    assert io_events == []


def allowlisted(allowed_models: object = None) -> LLMSettings:
    return LLMSettings(
        models={name: {"provider": "openai", "model": name} for name in ("mini", "big", "huge")},
        model_default="mini",
        enable_llm_model_override=True,
        enable_llm_model_header=True,
        allowed_models=allowed_models or {"*": ["mini"], "keywords": ["mini", "big"]},
    )


@pytest.mark.parametrize(
    ("kwargs", "where"),
    [
        ({"request_model": "huge"}, "the request_model argument"),
        ({"headers": {"X-LLM-Model": "huge"}}, "the X-LLM-Model header"),
    ],
)
def test_an_alias_outside_the_allowlist_is_refused_naming_the_api_and_what_it_allows(kwargs: dict, where: str) -> None:
    with pytest.raises(ModelNotAllowedError) as error:
        select_model("keywords", settings=allowlisted(), **kwargs)
    assert isinstance(error.value, UnknownModelError)
    assert str(error.value) == (
        f"model 'huge' from {where} is not allowed for API 'keywords' (LLM_ALLOWED_MODELS); allowed: big, mini"
    )
    assert (error.value.api_name, error.value.allowed, error.value.value) == ("keywords", ("big", "mini"), "huge")


def test_an_api_not_listed_gets_the_star_entry_and_a_listed_one_only_its_own() -> None:
    settings = allowlisted()
    assert select_model("other", headers={"X-LLM-Model": "mini"}, settings=settings).model == "mini"
    with pytest.raises(ModelNotAllowedError, match=r"allowed: mini$"):
        select_model("other", headers={"X-LLM-Model": "big"}, settings=settings)
    assert select_model("keywords", request_model="big", settings=settings).model == "big"
    assert select_model("Keywords", request_model="big", settings=settings).model == "big"  # one API, any spelling


def test_without_a_star_entry_unlisted_apis_may_choose_any_alias() -> None:
    settings = allowlisted(allowed_models={"keywords": ["mini"]})
    assert select_model("other", request_model="huge", settings=settings).model == "huge"


def test_configured_levels_are_not_limited_by_the_allowlist() -> None:
    settings = LLMSettings(
        models={name: {"provider": "openai", "model": name} for name in ("mini", "big")},
        model_default="big",
        api_models={"LLM_MODEL_KEYWORDS": "big"},
        splits={"summary": {"big": 1}},
        allowed_models={"*": ["mini"]},
    )
    assert select_model("keywords", settings=settings).model == "big"
    assert select_model("summary", settings=settings).model == "big"
    assert select_model("other", settings=settings).model == "big"


def test_an_unknown_value_is_unknown_before_it_is_not_allowed() -> None:
    with pytest.raises(UnknownModelError) as error:
        select_model("keywords", request_model="gpt-9", settings=allowlisted())
    assert not isinstance(error.value, ModelNotAllowedError)

"""Which alias answers a call: request > header > ``LLM_MODEL_<API>`` or split > default.

Selection runs on every request, so it does no I/O and, on the common path
(no override), costs one dictionary lookup. The headers it reads are the
caller's, or, when none are given, those of the request being served (set by
:mod:`otel_llm.middleware`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal

from ._derived import derived
from ._errors import ConfigError, ModelNotAllowedError, UnknownModelError
from ._live import get_settings
from ._settings import LLMSettings, api_entry, api_variable
from ._splits import Split

__all__ = [
    "CONFIGURED_SOURCES",
    "Headers",
    "Selection",
    "SelectionSource",
    "allowed_aliases",
    "configured_selection",
    "request_headers",
    "select_model",
    "selection_headers",
    "split_key_in",
    "split_of",
    "with_request_model",
]

SelectionSource = Literal["request", "header", "env", "split", "default"]
CONFIGURED_SOURCES: frozenset[SelectionSource] = frozenset({"env", "split", "default"})
"""The sources of rules 3 and 4: what the configuration chose, which a reload may change."""

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
"""A dict, any mapping (Starlette's or httpx's ``Headers``), or a list of pairs
(an ASGI scope's raw ``(bytes, bytes)`` headers too)."""

MODEL_HEADER = "x-llm-model"
SPLIT_KEY_HEADER = "x-llm-split-key"
_NAME_LENGTHS = frozenset({len(MODEL_HEADER), len(SPLIT_KEY_HEADER)})
_MAX_MEMOISED_APIS = 1024

request_headers: ContextVar[Headers | None] = ContextVar("otel_llm_request_headers", default=None)
"""The headers of the request being served: the default ``headers`` of a selection."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The alias chosen for one API, and which rule chose it."""

    api_name: str
    model: str
    source: SelectionSource


def select_model(
    api_name: str,
    request_model: str | None = None,
    headers: Headers | None = None,
    settings: LLMSettings | None = None,
    split_key: str | None = None,
) -> Selection:
    """Choose the alias for ``api_name``; the first rule that applies wins.

    1. ``request_model``, when ``ENABLE_LLM_MODEL_OVERRIDE`` is on;
    2. the ``X-LLM-Model`` header, when ``ENABLE_LLM_MODEL_HEADER`` is on;
    3. ``LLM_MODEL_<API>``, or the API's ``LLM_SPLITS`` entry, which assigns
       ``split_key`` (else the ``X-LLM-Split-Key`` header) to the same alias
       every time, and draws at random without a key;
    4. ``LLM_MODEL_DEFAULT``.

    ``headers=None`` means the headers of the request being served, under the
    middleware. Raises ``UnknownModelError`` when a request or header value
    names no alias (``ModelNotAllowedError`` when ``LLM_ALLOWED_MODELS`` keeps
    it from this API), and ``ConfigError`` when nothing chose and there is no
    default.
    """
    settings = settings or get_settings()
    if headers is None:
        headers = request_headers.get()
    if request_model and settings.enable_llm_model_override:
        return Selection(api_name, _requested(request_model, "request", api_name, settings), "request")
    if headers is not None:
        model, key = selection_headers(headers)
        if model and settings.enable_llm_model_header:
            return Selection(api_name, _requested(model, "header", api_name, settings), "header")
        if split_key is None:
            split_key = key
    return configured_selection(api_name, settings, split_key)


def split_key_in(headers: Headers) -> str | None:
    """The ``X-LLM-Split-Key`` header's value; ``None`` when absent or blank."""
    return selection_headers(headers)[1]


def with_request_model(selection: Selection, request_model: str | None, settings: LLMSettings) -> Selection:
    """Apply a per-call ``model=``: it counts as ``request_model`` (rule 1)."""
    if request_model and settings.enable_llm_model_override:
        api_name = selection.api_name
        return Selection(api_name, _requested(request_model, "request", api_name, settings), "request")
    return selection


def configured_selection(api_name: str, settings: LLMSettings, split_key: str | None = None) -> Selection:
    """The selection of rules 3 and 4; what they give an API is worked out once per settings."""
    memo = derived(settings).selections
    rule = memo.get(api_name)
    if rule is None:
        rule = _configured(api_name, settings)
        if len(memo) < _MAX_MEMOISED_APIS:
            memo[api_name] = rule
    if isinstance(rule, Selection):
        return rule
    split, selections = rule
    return selections[split.choose(split_key)]


def split_of(api_name: str, settings: LLMSettings) -> Split | None:
    """The ``LLM_SPLITS`` entry of ``api_name``, whichever way the API name was spelt."""
    weights = api_entry(settings.splits, api_name)
    return None if weights is None else Split(api_variable(api_name), weights)


def _configured(api_name: str, settings: LLMSettings) -> Selection | tuple[Split, dict[str, Selection]]:
    if not isinstance(api_name, str) or not api_name:
        raise TypeError(f"api_name must be a non-empty string, got {api_name!r}")
    variable = api_variable(api_name)
    alias = settings.api_models.get(variable)
    if alias is not None:
        return Selection(api_name, alias, "env")
    split = split_of(api_name, settings)
    if split is not None:
        return split, {alias: Selection(api_name, alias, "split") for alias in split.weights}
    if settings.model_default is not None:
        return Selection(api_name, settings.model_default, "default")
    raise ConfigError(f"no model for API {api_name!r}: set {variable}, LLM_SPLITS or LLM_MODEL_DEFAULT")


def _requested(value: str, source: SelectionSource, api_name: str, settings: LLMSettings) -> str:
    """The alias a request or header asks for, if it is one this API may have."""
    alias = value.strip()
    if alias not in settings.endpoints:
        raise UnknownModelError(value, source, settings.endpoints)
    allowed = allowed_aliases(api_name, settings)
    if allowed is not None and alias not in allowed:
        raise ModelNotAllowedError(value, source, api_name, allowed)
    return alias


def allowed_aliases(api_name: str, settings: LLMSettings) -> frozenset[str] | None:
    """``LLM_ALLOWED_MODELS`` for ``api_name``: its own entry, else ``"*"``, else ``None`` (any alias)."""
    memo = derived(settings).allowed
    if api_name in memo:
        return memo[api_name]
    entry = api_entry(settings.allowed_models, api_name)
    if entry is None:
        entry = settings.allowed_models.get("*")
    allowed = None if entry is None else frozenset(entry)
    if len(memo) < _MAX_MEMOISED_APIS:
        memo[api_name] = allowed
    return allowed


def selection_headers(headers: Headers) -> tuple[str | None, str | None]:
    """The ``X-LLM-Model`` and ``X-LLM-Split-Key`` values, stripped (``None`` when absent or blank).

    One pass over the headers, whatever the case the caller used: a request
    carries a handful of headers and seldom these two, so only a name of the
    right length is lower-cased to compare. The first of a repeated header wins.
    """
    if isinstance(headers, dict) or isinstance(headers, Mapping):  # a dict answers without the ABC machinery
        if _NAME_LENGTHS.isdisjoint(map(len, headers)):  # the usual answer, found without a Python loop
            return None, None
        pairs: Iterable[tuple[str | bytes, str | bytes]] = headers.items()
    else:
        pairs = headers
    model = split_key = None
    for key, value in pairs:
        if len(key) in _NAME_LENGTHS:
            name = _text(key).lower()
            if name == MODEL_HEADER:
                if model is None:
                    model = _text(value).strip()
            elif name == SPLIT_KEY_HEADER and split_key is None:
                split_key = _text(value).strip()
    return model or None, split_key or None


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value

"""Which alias answers a call: request > header > ``LLM_MODEL_<API>`` > default.

Selection runs on every request, so it does no I/O and, on the common path
(no override), costs one dictionary lookup.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from ._derived import derived
from ._errors import ConfigError, UnknownModelError
from ._settings import LLMSettings, api_variable, get_settings

__all__ = ["Headers", "Selection", "SelectionSource", "select_model", "with_request_model"]

SelectionSource = Literal["request", "header", "env", "default"]

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
"""A dict, any mapping (Starlette's or httpx's ``Headers``), or a list of pairs
(an ASGI scope's raw ``(bytes, bytes)`` headers too)."""

HEADER = "x-llm-model"
_MAX_MEMOISED_APIS = 1024


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
) -> Selection:
    """Choose the alias for ``api_name``; the first rule that applies wins.

    1. ``request_model``, when ``ENABLE_LLM_MODEL_OVERRIDE`` is on;
    2. the ``X-LLM-Model`` header, when ``ENABLE_LLM_MODEL_HEADER`` is on;
    3. ``LLM_MODEL_<API>``;
    4. ``LLM_MODEL_DEFAULT``.

    Raises ``UnknownModelError`` when a request or header value names no
    alias, and ``ConfigError`` when nothing chose and there is no default.
    """
    settings = settings or get_settings()
    if request_model and settings.enable_llm_model_override:
        return Selection(api_name, _known(request_model, "request", settings), "request")
    if headers is not None and settings.enable_llm_model_header:
        value = header_value(headers)
        if value:
            return Selection(api_name, _known(value, "header", settings), "header")
    return configured_selection(api_name, settings)


def with_request_model(selection: Selection, request_model: str | None, settings: LLMSettings) -> Selection:
    """Apply a per-call ``model=``: it counts as ``request_model`` (rule 1)."""
    if request_model and settings.enable_llm_model_override:
        return Selection(selection.api_name, _known(request_model, "request", settings), "request")
    return selection


def configured_selection(api_name: str, settings: LLMSettings) -> Selection:
    """The selection from ``LLM_MODEL_<API>`` or the default, memoised per API name."""
    memo = derived(settings).selections
    selection = memo.get(api_name)
    if selection is None:
        selection = _configured(api_name, settings)
        if len(memo) < _MAX_MEMOISED_APIS:
            memo[api_name] = selection
    return selection


def _configured(api_name: str, settings: LLMSettings) -> Selection:
    if not isinstance(api_name, str) or not api_name:
        raise TypeError(f"api_name must be a non-empty string, got {api_name!r}")
    variable = api_variable(api_name)
    alias = settings.api_models.get(variable)
    if alias is not None:
        return Selection(api_name, alias, "env")
    if settings.model_default is not None:
        return Selection(api_name, settings.model_default, "default")
    raise ConfigError(f"no model for API {api_name!r}: set {variable} or LLM_MODEL_DEFAULT")


def _known(value: str, source: SelectionSource, settings: LLMSettings) -> str:
    alias = value.strip()
    if alias not in settings.endpoints:
        raise UnknownModelError(value, source, settings.endpoints)
    return alias


def header_value(headers: Headers) -> str | None:
    """The ``X-LLM-Model`` value, stripped, whatever the case of the header name."""
    if isinstance(headers, Mapping):
        # Case-insensitive mappings (Starlette, httpx) answer directly; a plain
        # dict usually holds one of these two spellings.
        for spelling in (HEADER, "X-LLM-Model"):
            found = headers.get(spelling)
            if found is not None:
                return _text(found).strip()
        pairs: Iterable[tuple[str | bytes, str | bytes]] = headers.items()
    else:
        pairs = headers
    for name, value in pairs:
        if _text(name).lower() == HEADER:
            return _text(value).strip()
    return None


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value

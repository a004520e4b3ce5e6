"""Telemetry never fails a call (SPEC §4).

Recording runs inside the caller's call: an exception in it (a span processor
or metric reader that raises, a response of an unexpected shape) must not
replace the provider's answer. Each such failure is logged once per place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = ["guarded"]

_T = TypeVar("_T")
_log = logging.getLogger("otel_llm")
_reported: set[str] = set()


@overload
def guarded(record: Callable[..., None], *args: Any) -> None: ...
@overload
def guarded(record: Callable[..., _T], *args: Any, default: _T) -> _T: ...
def guarded(record: Callable[..., Any], *args: Any, default: Any = None) -> Any:
    """``record(*args)``, or ``default`` when it raised (logged the first time for that function)."""
    try:
        return record(*args)
    except Exception:
        where = getattr(record, "__qualname__", repr(record))
        if where not in _reported:
            _reported.add(where)
            _log.exception("otel-llm: recording telemetry failed in %s; the call goes on without it", where)
        return default

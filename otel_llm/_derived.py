"""What is computed from one ``LLMSettings`` and reused by every call made with it.

Settings are immutable values; the memos derived from them (selections per
API, prices per alias, clients per selection) live here, next to them rather
than in them, and go away with them.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cost import CostFunction
    from ._selection import Selection
    from ._settings import LLMSettings

__all__ = ["Derived", "derived"]


class Derived:
    """The memos of one settings object (each bounded by its user)."""

    __slots__ = ("clients", "costs", "selections")

    def __init__(self) -> None:
        self.selections: dict[str, Selection] = {}
        self.costs: dict[str, CostFunction | None] = {}
        self.clients: dict[tuple[Selection, bool], Any] = {}


_lock = threading.Lock()
_by_settings: dict[int, Derived] = {}


def derived(settings: LLMSettings) -> Derived:
    """The memos of ``settings``: found by identity, dropped when the settings are collected."""
    found = _by_settings.get(id(settings))
    if found is None:
        with _lock:
            found = _by_settings.get(id(settings))
            if found is None:
                found = _by_settings[id(settings)] = Derived()
                weakref.finalize(settings, _by_settings.pop, id(settings), None)
    return found

"""What is computed from one ``LLMSettings`` and reused by every call made with it.

Settings are immutable values; the memos derived from them (selections per
API, endpoints, allowlists per API, prices per alias, clients per selection) are kept in one ``Derived``
object that the settings carry privately, outside their fields (equality,
``model_dump`` and validation never see it). It lives exactly as long as the
settings: the clients it holds refer back to them, so a registry outside
would keep both alive for ever. A copy of the settings (``model_copy``) gets
memos of its own.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cost import CostFunction
    from ._endpoints import Endpoint
    from ._selection import Selection
    from ._settings import Budget, LLMSettings
    from ._splits import Split

__all__ = ["Derived", "derived"]

_ATTRIBUTE = "_otel_llm_derived"
_lock = threading.Lock()


class Derived:
    """The memos of one settings object (each bounded by its user)."""

    __slots__ = ("allowed", "budgets", "clients", "costs", "endpoints", "owner", "selections")

    def __init__(self, owner: int) -> None:
        self.owner = owner
        """``id()`` of the settings these memos are of (a copy carries the original's)."""
        self.endpoints: dict[str, Endpoint] | None = None
        """Every alias, those named only by a selection variable included."""
        self.selections: dict[str, Selection | tuple[Split, dict[str, Selection]]] = {}
        """What rules 3 and 4 give each API: a selection, or a split and the selections it draws from."""
        self.allowed: dict[str, frozenset[str] | None] = {}
        """``LLM_ALLOWED_MODELS`` per API name."""
        self.budgets: dict[str, Budget | None] = {}
        """``LLM_BUDGETS`` per API name."""
        self.costs: dict[str, CostFunction | None] = {}
        self.clients: dict[Any, Any] = {}


def derived(settings: LLMSettings) -> Derived:
    """The memos of ``settings``."""
    found: Derived | None = settings.__dict__.get(_ATTRIBUTE)
    if found is None or found.owner != id(settings):
        with _lock:
            found = settings.__dict__.get(_ATTRIBUTE)
            if found is None or found.owner != id(settings):
                found = settings.__dict__[_ATTRIBUTE] = Derived(id(settings))
    return found

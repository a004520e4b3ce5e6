"""The SDK's generating resources, with ``model`` optional: the selection fills it.

At run time these are the ``openai`` SDK's own resource classes, with one
change: the generating methods default ``model`` to :data:`SELECTED_MODEL`, a
marker the client's request path replaces with the model of each attempt (a
``model`` the caller passes counts as ``request_model``), and ``timeout`` to
``None``, which the call's deadline bounds (so the SDK need not copy its own
default into every request's options). Everything else, the raw-response
wrappers included, is the SDK's unchanged; the types of this module are in
``_resources.pyi``, generated from the SDK by ``scripts/generate_resources_stub.py``.

The classes are made on first use (a client's first ``.chat``, ``.embeddings``,
``.responses``, ...), in ``_resource_classes``: the SDK's resources and their
streaming helpers were the largest part of what ``import otel_llm`` added to
``import openai``, which defers them to first use too.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["SELECTED_MODEL", "is_selected"]


class _Selected(str):
    """The type of :data:`SELECTED_MODEL`: told apart from any name a caller could pass."""

    __slots__ = ()


SELECTED_MODEL: Final = _Selected("(selected by otel-llm)")
"""The ``model`` a generating method sends when the caller gave none."""


def is_selected(model: object) -> bool:
    """Whether a request body's ``model`` is left to the selection."""
    return model is None or isinstance(model, _Selected)


def __getattr__(name: str) -> Any:
    """A resource class, imported with the others on first use; kept here, so later uses find it directly."""
    if name.startswith("__"):  # the import system's and tools' probes (``__path__``, ...) load nothing
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import _resource_classes

    try:
        value = getattr(_resource_classes, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value

"""Deterministic JSON documents valid against a JSON Schema: the mock's structured outputs.

Code using structured outputs (``response_format`` / ``text.format`` with a JSON
schema, the SDK's ``parse()`` into Pydantic models) needs replies that validate,
which real models guarantee by constrained decoding. :func:`schema_instance`
builds the simplest such document from the JSON Schema that OpenAI's strict
mode accepts: objects get every ``properties`` entry (and any other
``required`` name), arrays one item (or ``minItems``), ``anyOf`` / ``oneOf``
their first non-null branch, ``allOf`` its branches merged, ``enum`` its first
value, ``const`` its value; ``$ref`` resolves local pointers (``#/$defs/...``);
strings are ``"mock"`` (or a sample of their ``format``, padded or cut to
``minLength`` / ``maxLength``), numbers 0 or the bound nearest to it,
booleans ``true``; an untyped schema gives ``null``. Recursive schemas end
through their optional branches: deep down, arrays are left empty and
``anyOf`` takes its null branch. ``pattern`` and ``multipleOf`` are not honoured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["schema_instance"]

_RECURSION_DEPTH = 8  # below it, recursion is cut short through optional branches
_MAX_DEPTH = 64
_STRING = "mock"
_FORMATS = {
    "date-time": "2025-01-01T00:00:00Z",
    "date": "2025-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "mock@example.com",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "uri": "https://example.com/",
}


def schema_instance(schema: Mapping[str, Any]) -> Any:
    """A document valid against ``schema`` (also the root that ``$ref`` s resolve against).

    Raises ``ValueError`` for a ``$ref`` that does not resolve or a recursion
    with no way out.
    """
    return _instance(schema, schema, 0)


def _instance(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ValueError("the schema recurses with no optional branch to end it")
    if not isinstance(schema, Mapping):
        return None  # `true` or a missing schema: anything goes
    if isinstance(schema.get("$ref"), str):
        return _instance(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            return _instance(_branch(options, root, deep=depth >= _RECURSION_DEPTH), root, depth + 1)
    parts = schema.get("allOf")
    if isinstance(parts, list) and parts:
        documents = [_instance(part, root, depth + 1) for part in parts]
        if all(isinstance(document, dict) for document in documents):
            return {key: value for document in documents for key, value in document.items()}
        return documents[0]
    kind = _type(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, depth)
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    return True if kind == "boolean" else None


def _type(schema: Mapping[str, Any]) -> str | None:
    """The schema's type: the first non-null one of a list, else what its keywords imply."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    return "array" if "items" in schema else None


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    """The schema a local JSON pointer (``#/$defs/Name``) names."""
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    target: Any = root
    for token in filter(None, ref[1:].split("/")):
        key = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or key not in target:
            raise ValueError(f"$ref {ref!r} does not resolve")
        target = target[key]
    return target


def _branch(options: list[Any], root: Mapping[str, Any], *, deep: bool) -> Any:
    """The ``anyOf`` / ``oneOf`` branch to follow: the first non-null one, or null when deep in a recursion."""

    def is_null(option: Any) -> bool:
        if isinstance(option, Mapping) and isinstance(option.get("$ref"), str):
            option = _resolve(root, option["$ref"])
        return isinstance(option, Mapping) and option.get("type") == "null"

    nulls = [option for option in options if is_null(option)]
    others = [option for option in options if not is_null(option)]
    preferred = nulls + others if deep else others + nulls
    return preferred[0]


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    document = {name: _instance(sub, root, depth + 1) for name, sub in properties.items()}
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if isinstance(name, str) and name not in document:
            document[name] = _instance(schema.get("additionalProperties"), root, depth + 1)
    return document


def _array(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> list[Any]:
    least = schema.get("minItems")
    least = least if isinstance(least, int) and least > 0 else 0
    count = least if depth >= _RECURSION_DEPTH else max(1, least)
    most = schema.get("maxItems")
    if isinstance(most, int):
        count = min(count, most)
    return [_instance(schema.get("items"), root, depth + 1) for _ in range(count)]


def _string(schema: Mapping[str, Any]) -> str:
    value = _FORMATS.get(schema.get("format") or "", _STRING)
    least, most = schema.get("minLength"), schema.get("maxLength")
    if isinstance(least, int) and len(value) < least:
        value = value.ljust(least, "k")
    if isinstance(most, int):
        value = value[: max(most, 0)]
    return value


def _number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """0 when the bounds allow it, else the first bound (or the middle of the range) they allow."""

    def bound(key: str) -> float | None:
        value = schema.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    low, high, above, below = map(bound, ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"))

    def allowed(value: float) -> bool:
        return (
            (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
            and (below is None or value < below)
        )

    floor = max((v for v in (low, above) if v is not None), default=None)
    ceiling = min((v for v in (high, below) if v is not None), default=None)
    candidates = [0, low, high, None if above is None else above + 1, None if below is None else below - 1]
    if floor is not None and ceiling is not None:
        candidates.append((floor + ceiling) / 2)
    for candidate in [c for c in candidates if c is not None]:
        values = (math.ceil(candidate), math.floor(candidate)) if integer else (float(candidate),)
        for value in values:
            if allowed(value):
                return value
    return 0 if integer else 0.0

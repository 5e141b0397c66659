"""Jolokia's processing parameters, from a request's `config` or the query string."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mbeans.errors import IllegalArgumentException

# The parameters a query string may carry (those not honoured are accepted and ignored).
URL_KEYS = (
    "maxDepth",
    "maxCollectionSize",
    "maxObjects",
    "ignoreErrors",
    "mimeType",
    "canonicalNaming",
    "includeStackTrace",
    "serializeException",
    "ifModifiedSince",
    "includeRequest",
    "serializeLong",
    "listKeys",
)

MIME_TYPES = ("application/json", "text/plain")  # what mimeType may ask for; JSON is the default


def flag(config: Mapping[str, Any], name: str) -> bool:
    """A boolean parameter: true, "true", "1", "yes" or 1."""
    value = config.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return value is True or (type(value) is int and value == 1)


def max_depth(config: Mapping[str, Any]) -> int | None:
    """maxDepth, None when absent or not positive."""
    value = config.get("maxDepth")
    if value in (None, "", 0, "0"):
        return None
    try:
        depth = int(value)
    except (TypeError, ValueError):
        raise IllegalArgumentException(f"maxDepth: {value!r} is not an integer") from None
    return depth if depth > 0 else None


def include_request(config: Mapping[str, Any]) -> bool:
    """includeRequest: true unless given as false ("false", "0", "no" or false)."""
    value = config.get("includeRequest")
    if value is None or value == "":
        return True
    if isinstance(value, str):
        return value.lower() not in ("false", "0", "no")
    return value is not False and value != 0


def longs_as_strings(config: Mapping[str, Any]) -> bool:
    """serializeLong=string: longs go out as JSON strings (the default, number, leaves them)."""
    value = config.get("serializeLong")
    if value in (None, "", "number"):
        return False
    if value == "string":
        return True
    raise IllegalArgumentException(f"serializeLong: {value!r}; allowed: number or string")


def if_modified_since(config: Mapping[str, Any]) -> float | None:
    """ifModifiedSince, epoch seconds (a previous answer's timestamp), or None."""
    value = config.get("ifModifiedSince")
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise IllegalArgumentException(f"ifModifiedSince: {value!r} is not a time in epoch seconds") from None

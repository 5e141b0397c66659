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
)


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

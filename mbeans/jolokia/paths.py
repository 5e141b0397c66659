"""Paths into a value (`a/b/0`, `*` for every entry): what read and list answer, and what write replaces."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from mbeans.errors import AttributeNotFoundException, IllegalArgumentException


def navigate(value: Any, path: list[str]) -> Any:
    """The part of value the path names; `*` takes every entry (those the rest does not fit are dropped)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, Mapping):
            return {k: v for k, v in ((k, _try(v, rest)) for k, v in value.items()) if v is not _MISSING}
        if isinstance(value, list):
            return [v for v in (_try(v, rest) for v in value) if v is not _MISSING]
        raise AttributeNotFoundException("value", "*", [])
    if isinstance(value, Mapping):
        if head not in value:
            raise AttributeNotFoundException("value", "/".join(path), sorted(map(str, value)))
        return navigate(value[head], rest)
    if isinstance(value, list):
        return navigate(value[_index(value, head)], rest)
    raise AttributeNotFoundException("value", "/".join(path), [])


_MISSING = object()


def _try(value: Any, path: list[str]) -> Any:
    try:
        return navigate(value, path)
    except (AttributeNotFoundException, IllegalArgumentException):
        return _MISSING


def _index(value: list[Any], element: str) -> int:
    if not element.lstrip("-").isdigit():
        raise IllegalArgumentException(f"path element {element!r}: a list takes an index")
    index = int(element)
    if not 0 <= index < len(value):
        raise AttributeNotFoundException("value", element, [f"0..{len(value) - 1}"])
    return index


def replace_at(value: Any, path: list[str], new: Any) -> tuple[Any, Any]:
    """(a copy of value with the element at path replaced by new, the element's old value)."""
    if not path:
        return new, value
    if "*" in path:
        raise IllegalArgumentException("a write path cannot hold the wildcard '*'")
    whole = copy.deepcopy(value)
    parent = navigate(whole, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise AttributeNotFoundException("value", "/".join(path), sorted(map(str, parent)))
        old, parent[last] = parent[last], new
    elif isinstance(parent, list):
        index = _index(parent, last)
        old, parent[index] = parent[index], new
    else:
        raise AttributeNotFoundException("value", "/".join(path), [])
    return whole, old

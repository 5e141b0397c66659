"""Jolokia's paths and GET URLs: the `!` escaping, the elements of a raw URI, the request a URL stands
for, and the values written in one (pure functions)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from mbeans.errors import IllegalArgumentException
from mbeans.model import JavaType


def split_path(text: str | None) -> list[str]:
    """A Jolokia path (`a/b!/c/d`) into its elements: `/` separates, `!x` is a literal x."""
    if not text:
        return []
    return _split([(c, c == "/") for c in text])


def split_raw_uri_path(raw: str) -> list[str]:
    """The elements of a raw (still %-encoded) URI path after the agent's prefix.

    Only a literal `/` separates: `%2F` is a `/` inside an element, as is Jolokia's `!/`. %-escapes are
    decoded before `!` escapes are read (so `!%2F` is `!/`). Leading and trailing empty elements go.
    """
    chars: list[tuple[str, bool]] = []
    for piece in re.split(r"((?:%[0-9A-Fa-f]{2})+)", raw):
        if piece.startswith("%"):
            chars.extend((c, False) for c in unquote_to_bytes(piece).decode("utf-8", "replace"))
        else:
            chars.extend((c, c == "/") for c in piece)
    return trimmed(_split(chars))


def trimmed(parts: list[str]) -> list[str]:
    """parts without its leading and trailing empty elements."""
    while parts and parts[0] == "":
        parts.pop(0)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _split(chars: list[tuple[str, bool]]) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(chars):
        char, separator = chars[i]
        if char == "!" and i + 1 < len(chars):
            current.append(chars[i + 1][0])
            i += 2
            continue
        if separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def path_elements(value: Any) -> list[str]:
    """A request's `path`, a string or a list of elements, as its elements."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return split_path(value)
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return list(value)
    raise IllegalArgumentException(f"path: {value!r} is not a string")


def _url_value(text: str) -> Any:
    """Jolokia's GET values: `[null]` is null, `""` the empty string."""
    if text == "[null]":
        return None
    if text == '""':
        return ""
    return text


def get_request(parts: list[str]) -> dict[str, Any]:
    """The request a GET URL's elements (already unescaped) stand for; none is a version request."""
    if not parts:
        return {"type": "version"}
    kind, args = parts[0], parts[1:]
    req: dict[str, Any] = {"type": kind}

    def need(count: int, what: str) -> None:
        if len(args) < count:
            raise IllegalArgumentException(f"GET {kind}: {what} missing (/{kind}/{what})")

    if kind == "read":
        need(1, "mbean")
        req["mbean"] = args[0]
        if len(args) > 1:
            attribute = _url_value(args[1])
            req["attribute"] = attribute.split(",") if attribute and "," in attribute else attribute
        if len(args) > 2:
            req["path"] = args[2:]
    elif kind == "write":
        need(3, "mbean/attribute/value")
        req.update(mbean=args[0], attribute=args[1], value=_url_value(args[2]))
        if len(args) > 3:
            req["path"] = args[3:]
    elif kind == "exec":
        need(2, "mbean/operation")
        req.update(mbean=args[0], operation=args[1], arguments=[_url_value(a) for a in args[2:]])
    elif kind == "search":
        need(1, "pattern")
        req["mbean"] = args[0]
    elif kind == "list":
        req["path"] = args
    return req


def from_url(kind: JavaType, value: Any) -> Any:
    """A GET value for a list or map parameter may be written as JSON (`["O=A, L=B, C=GB"]`)."""
    if kind in (JavaType.LIST, JavaType.MAP) and isinstance(value, str) and value[:1] in "[{" and value:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value

"""JMX ObjectNames: `domain:key=value[,key=value...]`, parsed, printed canonically, and matched.

The rules are JMX's (javax.management.ObjectName), as Jolokia clients send them:

- the domain may not hold `:`; `*` and `?` in it make a pattern;
- keys are non-empty and hold none of `:,="*?`; a key appears once;
- a value is either unquoted (none of `,=:"`, and `*`/`?` only as wildcards of a pattern), or quoted
  `"..."` with the escapes `\\"`, `\\\\`, `\\*`, `\\?` and `\\n`;
- `,*` at the end of the properties, or `*` alone, makes a property-list pattern: names with more
  keys match too;
- the canonical form lists the keys sorted (it is the registry's key, so `b=2,a=1` and `a=1,b=2` are
  the same name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from mbeans.errors import MalformedObjectNameException

_KEY_FORBIDDEN = set(':,="*?')
_VALUE_FORBIDDEN = set(',=:"')
_QUOTE_ESCAPES = {'"': '"', "\\": "\\", "*": "*", "?": "?", "n": "\n"}


@dataclass(frozen=True)
class ObjectName:
    domain: str
    properties: tuple[tuple[str, str], ...]  # as written: values keep their quotes
    property_pattern: bool = False

    @classmethod
    def parse(cls, text: str) -> ObjectName:
        if not isinstance(text, str) or not text:
            raise MalformedObjectNameException(str(text), "empty")
        domain, colon, rest = text.partition(":")
        if not colon:
            raise MalformedObjectNameException(text, "no ':' between the domain and the properties")
        if "\n" in domain:
            raise MalformedObjectNameException(text, "a new line in the domain")
        properties: list[tuple[str, str]] = []
        pattern = False
        for part in _split_properties(text, rest):
            if part == "*":
                if pattern:
                    raise MalformedObjectNameException(text, "'*' twice in the properties")
                pattern = True
                continue
            key, eq, value = part.partition("=")
            if not eq:
                raise MalformedObjectNameException(text, f"property {part!r} has no '='")
            if not key or set(key) & _KEY_FORBIDDEN:
                raise MalformedObjectNameException(text, f'key {key!r} is empty or holds one of :,="*?')
            if any(k == key for k, _ in properties):
                raise MalformedObjectNameException(text, f"key {key!r} appears twice")
            _check_value(text, key, value)
            properties.append((key, value))
        if not properties and not pattern:
            raise MalformedObjectNameException(text, "no key=value property")
        return cls(domain, tuple(properties), pattern)

    # -- printing ----------------------------------------------------------------------------------

    @cached_property
    def canonical(self) -> str:
        """domain:keys sorted,[*]: the registry's key and what searches return."""
        props = [f"{k}={v}" for k, v in sorted(self.properties)]
        if self.property_pattern:
            props.append("*")
        return f"{self.domain}:{','.join(props)}"

    def __str__(self) -> str:
        return self.canonical

    def key(self, name: str) -> str | None:
        """The value of a key, unquoted; None when absent."""
        for k, v in self.properties:
            if k == name:
                return _unquote(v)
        return None

    # -- patterns ----------------------------------------------------------------------------------

    @cached_property
    def is_pattern(self) -> bool:
        return (
            self.property_pattern
            or _has_wildcard(self.domain)
            or any(_value_regex(v) is not None for _, v in self.properties)
        )

    def matches(self, name: ObjectName) -> bool:
        """Whether name (not a pattern) is one this pattern (or plain name) selects."""
        if not _wildcard(self.domain).fullmatch(name.domain):
            return False
        theirs = dict(name.properties)
        if not self.property_pattern and set(theirs) != {k for k, _ in self.properties}:
            return False
        for key, value in self.properties:
            if key not in theirs:
                return False
            regex = _value_regex(value)
            if regex is not None:
                if not regex.fullmatch(_unquote(theirs[key])):
                    return False
            elif _unquote(value) != _unquote(theirs[key]):
                return False
        return True


def _split_properties(text: str, rest: str) -> list[str]:
    """Split on commas outside quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if quoted and ch == "\\":
            current.append(rest[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise MalformedObjectNameException(text, "a quoted value is not closed")
    parts.append("".join(current))
    if any(p == "" for p in parts):
        raise MalformedObjectNameException(text, "an empty property (two commas, or a trailing comma)")
    return parts


def _check_value(text: str, key: str, value: str) -> None:
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            raise MalformedObjectNameException(text, f"value of {key!r} is not a closed quoted string")
        body = value[1:-1]
        i = 0
        while i < len(body):
            if body[i] == "\\":
                if i + 1 >= len(body) or body[i + 1] not in _QUOTE_ESCAPES:
                    raise MalformedObjectNameException(text, f"value of {key!r}: bad escape in {value}")
                i += 2
                continue
            if body[i] == '"':
                raise MalformedObjectNameException(text, f"value of {key!r}: an unescaped quote")
            i += 1
        return
    if not value:
        raise MalformedObjectNameException(text, f"value of {key!r} is empty")
    if set(value) & _VALUE_FORBIDDEN or "\n" in value:
        raise MalformedObjectNameException(text, f'value of {key!r} holds one of ,=:" (quote it)')


def _quoted_body(value: str) -> str:
    return value[1:-1]


def _unquote(value: str) -> str:
    if not value.startswith('"'):
        return value
    out: list[str] = []
    body = _quoted_body(value)
    i = 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            out.append(_QUOTE_ESCAPES.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _value_regex(value: str) -> re.Pattern[str] | None:
    """The value as a wildcard pattern, or None when it has no wildcard (escaped ones are literal)."""
    if not value.startswith('"'):
        return _wildcard(value) if _has_wildcard(value) else None
    body = _quoted_body(value)
    parts: list[str] = []
    wild = False
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            parts.append(re.escape(_QUOTE_ESCAPES.get(body[i + 1], body[i + 1])))
            i += 2
            continue
        if ch in "*?":
            wild = True
            parts.append(".*" if ch == "*" else ".")
        else:
            parts.append(re.escape(ch))
        i += 1
    return re.compile("".join(parts), re.S) if wild else None


def _has_wildcard(text: str) -> bool:
    return "*" in text or "?" in text


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def quote(value: str) -> str:
    """A value as ObjectName needs it: quoted (with escapes) when it holds a special character."""
    if value and not (set(value) & (_VALUE_FORBIDDEN | {"*", "?", "\n"})):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("*", "\\*").replace("?", "\\?")
    return '"' + escaped.replace("\n", "\\n") + '"'

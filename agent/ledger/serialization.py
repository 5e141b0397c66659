"""Canonical serialisation: deterministic CBOR (RFC 8949 section 4.2) through cbor2.

A transaction id is the hash of these bytes, so one value must have exactly one encoding: map keys are
sorted, integers take their shortest form, and floats are refused (amounts are integers; a float's
rounding would be a second truth). Decoding re-encodes and refuses bytes that are not already
canonical, so an id computed by a peer and by us can never differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from agent.errors import SerializationError

# Plain data that a state or a command argument may hold.
Plain = None | bool | int | str | bytes | list["Plain"] | dict[str, "Plain"]

MAX_DEPTH = 32


def check_plain(value: Any, field: str, depth: int = 0) -> None:
    """Refuse anything but plain data (no floats, no non-string map keys), naming the field."""
    if depth > MAX_DEPTH:
        raise SerializationError(field, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, float):
        raise SerializationError(field, "floats are not allowed; use integers (e.g. minor units)")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{field}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(field, f"map key {key!r} is not a string")
            check_plain(item, f"{field}.{key}", depth + 1)
        return
    raise SerializationError(field, f"{type(value).__name__} cannot be serialised")


def encode(value: Any, *, checked: bool = False) -> bytes:
    """Canonical CBOR of plain data (tuples encode as arrays); floats are refused.

    checked=True skips the walk over the value, for callers whose parts were checked on
    construction (a WireTransaction checks its data and arguments when it is built).
    """
    if not checked:
        check_plain(value, "value")
    try:
        return bytes(cbor2.dumps(value, canonical=True))
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise SerializationError("value", f"cannot encode: {exc}") from exc


def decode(data: bytes, field: str, *, plain: bool = True) -> Any:
    """Decode canonical CBOR; truncated, trailing or non-canonical bytes are refused.

    plain=False leaves the float and map-key checks to a caller that checks every field by name
    (the transaction parsers do, and their errors then name the field, not a position).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SerializationError(field, f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    try:
        value = cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise SerializationError(field, f"malformed CBOR: {exc}") from exc
    if plain:
        check_plain(value, field)
    try:
        again = bytes(cbor2.dumps(value, canonical=True))
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise SerializationError(field, f"cannot be re-encoded: {exc}") from exc
    if again != raw:
        raise SerializationError(field, "not in canonical form (or has trailing bytes)")
    return value


def expect(value: Any, kind: type | tuple[type, ...], field: str) -> Any:
    """Check a decoded value's type, naming the field when it is wrong."""
    if isinstance(value, bool) and kind is int:
        raise SerializationError(field, "expected an integer, got a boolean")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SerializationError(field, f"expected {name}, got {type(value).__name__}")
    return value


def expect_list(value: Any, field: str, length: int | None = None) -> list[Any]:
    items: list[Any] = expect(value, list, field)
    if length is not None and len(items) != length:
        raise SerializationError(field, f"expected {length} elements, got {len(items)}")
    return items

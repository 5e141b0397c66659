"""Canonical serialisation: deterministic CBOR (RFC 8949 section 4.2) through cbor2.

A transaction id is the hash of these bytes, so one value must have exactly one encoding: map keys are
sorted, integers take their shortest form, and floats are refused (amounts are integers; a float's
rounding would be a second truth). Decoding refuses bytes that are not already canonical (what a C
walk of the bytes cannot vouch for is encoded again and compared), so an id computed by a peer and by
us can never differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import cbor2

from agent.errors import SerializationError

try:  # optional C extension (setup.py): canonical form vouched for in one walk of the bytes
    from agent.ledger._canonical import is_canonical as _is_canonical
except ImportError:  # pragma: no cover - built wherever a C compiler is
    _is_canonical = None  # type: ignore[assignment]

# Plain data that a state or a command argument may hold.
Plain = None | bool | int | str | bytes | list["Plain"] | dict[str, "Plain"]

T = TypeVar("T")

MAX_DEPTH = 32
# A whole decoded message: an envelope, its payload, a transaction in it and a state's MAX_DEPTH levels.
MAX_MESSAGE_DEPTH = 64


def check_plain(value: Any, field: str, depth: int = 0) -> None:
    """Refuse anything but plain data (no floats, no non-string map keys), naming the field."""
    if not _is_plain(value, MAX_DEPTH - depth):
        _check_plain_named(value, field, depth)


def _is_plain(value: Any, budget: int) -> bool:
    """check_plain's common case, without a field name made for every element: True when value is plain
    data of the exact built-in types within budget levels. False sends it to _check_plain_named, which
    accepts the rest (subclasses, other mappings) or names what is wrong."""
    kind = type(value)
    if budget < 0:
        return False
    if kind is str or kind is int or kind is bytes or kind is bool or value is None:
        return True
    if kind is list or kind is tuple:
        for item in value:  # noqa: SIM110 - all() over a generator costs a frame switch an item
            if not _is_plain(item, budget - 1):
                return False
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _is_plain(item, budget - 1):
                return False
        return True
    return False


def _check_plain_named(value: Any, field: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise SerializationError(field, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | int | str | bytes):
        return
    if isinstance(value, float):
        raise SerializationError(field, "floats are not allowed; use integers (e.g. minor units)")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain_named(item, f"{field}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(field, f"map key {key!r} is not a string")
            _check_plain_named(item, f"{field}.{key}", depth + 1)
        return
    raise SerializationError(field, f"{type(value).__name__} cannot be serialised")


def check_shape(value: Any, field: str) -> None:
    """What decode needs before re-encoding a value that is not checked as plain data: no map key
    that is itself a map or an array, and nesting bounded. Canonical encoding sorts a map's keys by
    their encodings, and each nested map key doubled the work: a 44-byte transaction of nested keys
    took seconds, 30 levels an hour, from any network member (finality, the notary)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | dict) and depth >= MAX_MESSAGE_DEPTH:
            raise SerializationError(field, f"nested deeper than {MAX_MESSAGE_DEPTH} levels")
        if isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str | int | bytes):
                    raise SerializationError(field, f"a map key must be a string, not {type(key).__name__}")
                stack.append((child, depth + 1))
        elif not (item is None or isinstance(item, bool | int | float | str | bytes)):
            # A tag cbor2 knows decodes to its own type (a set, a datetime, a tuple...): nothing we
            # encode has one (a big integer's tag decodes to an int). Floats are left to the fields'
            # parsers, which refuse them by name.
            raise SerializationError(field, f"{type(item).__name__} values are not allowed")


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
    raw, value = _load(data, field)
    if plain:
        check_plain(value, field)
    else:
        check_shape(value, field)
    _check_canonical(value, raw, field)
    return value


def decode_parsed(data: bytes, field: str, parse: Callable[[Any], T]) -> T:
    """decode(plain=False), then parse; for a parser that checks every value of what it is given (the
    type of each field, and plain data as plain data), which then stands for check_shape: it runs before
    anything is re-encoded, and its errors name the field. A transaction's walk with check_shape cost a
    third of its decoding."""
    raw, value = _load(data, field)
    parsed = parse(value)
    _check_canonical(value, raw, field)
    return parsed


def _load(data: bytes, field: str) -> tuple[bytes, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SerializationError(field, f"expected bytes, got {type(data).__name__}")
    raw = bytes(data)
    try:
        return raw, cbor2.loads(raw)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError) as exc:
        raise SerializationError(field, f"malformed CBOR: {exc}") from exc


def _check_canonical(value: Any, raw: bytes, field: str) -> None:
    """One value, one encoding: raw must be what canonical encoding of what it decoded to gives."""
    if _is_canonical is not None and _is_canonical(raw):
        return  # vouched for in one walk of the bytes; anything else is encoded again to find out
    try:
        again = bytes(cbor2.dumps(value, canonical=True))
    except (cbor2.CBOREncodeError, TypeError, ValueError) as exc:
        raise SerializationError(field, f"cannot be re-encoded: {exc}") from exc
    if again != raw:
        raise SerializationError(field, "not in canonical form (or has trailing bytes)")


def expect(value: Any, kind: type | tuple[type, ...], field: str) -> Any:
    """Check a decoded value's type, naming the field when it is wrong."""
    if type(value) is kind:  # the common case, and never a bool taken for an int
        return value
    if isinstance(value, bool) and kind is int:
        raise SerializationError(field, "expected an integer, got a boolean")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SerializationError(field, f"expected {name}, got {type(value).__name__}")
    return value


def expect_list(value: Any, field: str, length: int | None = None) -> list[Any]:
    items: list[Any] = value if type(value) is list else expect(value, list, field)
    if length is not None and len(items) != length:
        raise SerializationError(field, f"expected {length} elements, got {len(items)}")
    return items


PeerHandler = Callable[[Any, Any], Any]


def map_payload(handler: PeerHandler) -> PeerHandler:
    """A peer handler whose payload must be a map: any other payload is refused by name
    (SerializationError "payload: expected dict, got list"), where `payload.get` answered 500."""

    def checked(sender: Any, payload: Any) -> Any:
        return handler(sender, expect(payload, dict, "payload"))

    return checked

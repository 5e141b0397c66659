from __future__ import annotations

import struct
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import SerializationError
from agent.ledger.serialization import check_plain, decode, encode, expect, expect_list

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (True == 1 would hide a changed type)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def _refused(data: bytes, field: str = "payload") -> SerializationError:
    with pytest.raises(SerializationError) as caught:
        decode(data, field)
    assert caught.value.field == field
    return caught.value


@settings(max_examples=100, deadline=None)
@given(plain)
def test_plain_data_round_trips(value: Any) -> None:
    check_plain(value, "value")
    data = encode(value)
    assert same(decode(data, "value"), value)


@settings(max_examples=100, deadline=None)
@given(plain)
def test_encoding_is_deterministic(value: Any) -> None:
    assert encode(value) == encode(value)
    assert encode(decode(encode(value), "value")) == encode(value)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers(), min_size=2, max_size=8))
def test_map_key_order_does_not_change_the_bytes(value: dict[str, int]) -> None:
    assert encode(dict(reversed(value.items()))) == encode(value)


def test_tuples_encode_as_lists() -> None:
    assert encode((1, "a", b"b")) == encode([1, "a", b"b"])


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (1.5, "data"),
        ({"amount": 1.0}, "data.amount"),
        ({"a": [1, {"b": 2.5}]}, "data.a[1].b"),
        ([0, float("nan")], "data[1]"),
    ],
)
def test_floats_are_refused_naming_the_field(value: Any, field: str) -> None:
    with pytest.raises(SerializationError) as caught:
        check_plain(value, "data")
    assert caught.value.field == field
    assert "float" in caught.value.reason


def test_non_string_map_keys_are_refused() -> None:
    with pytest.raises(SerializationError) as caught:
        check_plain({"outer": {1: "x"}}, "data")
    assert caught.value.field == "data.outer"


def test_other_types_are_refused() -> None:
    with pytest.raises(SerializationError) as caught:
        check_plain({"when": {1, 2}}, "data")
    assert caught.value.field == "data.when"


def test_deep_nesting_is_refused() -> None:
    value: Any = 1
    for _ in range(40):
        value = [value]
    with pytest.raises(SerializationError):
        check_plain(value, "data")


@settings(max_examples=100, deadline=None)
@given(plain, st.data())
def test_truncated_bytes_are_refused(value: Any, data: st.DataObject) -> None:
    encoded = encode(value)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    _refused(encoded[:cut])


@settings(max_examples=100, deadline=None)
@given(plain, st.binary(min_size=1, max_size=4))
def test_trailing_bytes_are_refused(value: Any, trailer: bytes) -> None:
    _refused(encode(value) + trailer)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x18\x01", id="integer-not-minimal"),
        pytest.param(b"\x19\x00\x01", id="integer-two-bytes"),
        pytest.param(b"\x78\x01a", id="text-length-not-minimal"),
        pytest.param(b"\x7f\x61a\xff", id="indefinite-text"),
        pytest.param(b"\x9f\x01\xff", id="indefinite-array"),
        pytest.param(b"\xc2\x41\x01", id="bignum-that-fits-an-integer"),
        pytest.param(b"\xfb" + struct.pack(">d", 1.0), id="float-not-shortest"),
        pytest.param(cbor2.dumps({"b": 1, "a": 2}, canonical=False), id="map-keys-unsorted"),
        pytest.param(cbor2.dumps({"aa": 1, "b": 2}, canonical=False), id="map-keys-length-first"),
    ],
)
def test_non_canonical_encodings_are_refused(data: bytes) -> None:
    reason = _refused(data).reason
    assert "canonical" in reason or "floats are not allowed" in reason


def test_the_canonical_forms_of_those_values_are_accepted() -> None:
    assert decode(b"\x01", "payload") == 1
    assert decode(cbor2.dumps({"b": 1, "a": 2}, canonical=True), "payload") == {"a": 2, "b": 1}


@pytest.mark.parametrize("data", [b"", b"\xff", b"\x1c"])
def test_malformed_bytes_are_refused(data: bytes) -> None:
    _refused(data)


def test_decode_wants_bytes() -> None:
    with pytest.raises(SerializationError) as caught:
        decode("a1", "payload")  # type: ignore[arg-type]
    assert caught.value.field == "payload"


def test_decode_refuses_floats() -> None:
    _refused(cbor2.dumps(1.5, canonical=True))


def test_expect_names_the_field() -> None:
    assert expect(3, int, "count") == 3
    with pytest.raises(SerializationError) as caught:
        expect(True, int, "count")
    assert caught.value.field == "count"
    with pytest.raises(SerializationError) as caught:
        expect("3", (int, bytes), "count")
    assert caught.value.field == "count"
    assert "int/bytes" in caught.value.reason


def test_expect_list_checks_the_length() -> None:
    assert expect_list([1, 2], "pair", 2) == [1, 2]
    with pytest.raises(SerializationError) as caught:
        expect_list([1, 2, 3], "pair", 2)
    assert caught.value.field == "pair"
    with pytest.raises(SerializationError):
        expect_list({"a": 1}, "pair")


# Issue 16, item 1: canonical re-encoding sorts map keys by their encodings, and a map used as a key of
# a map used as a key... doubled the work at each level (a 44-byte transaction took 3 to 4 s, 30 levels
# an hour). Before the fix these calls did not return within any test's patience; now each is refused
# by name before anything is re-encoded (a transaction by its parser, which names the field: the
# wire's place holds a map, not bytes).
@pytest.mark.parametrize(
    ("levels", "why", "why_as_transaction"),
    [
        (20, "map key must be a string", "transaction: expected bytes, got dict"),
        (40, "map key must be a string", "transaction: expected bytes, got dict"),
        (1000, "nesting depth", "nesting depth"),
    ],
)
def test_nested_map_keys_are_refused_before_re_encoding(
    levels: int, why: str, why_as_transaction: str
) -> None:
    from agent.ledger.transactions import SignedTransaction

    raw = b"\x83\x01" + b"\xa1" * levels + b"\x00" * (levels + 1) + b"\x80"
    with pytest.raises(SerializationError, match=why_as_transaction):
        SignedTransaction.deserialize(raw)
    with pytest.raises(SerializationError, match=why):
        decode(raw, "payload", plain=False)


def test_decode_refuses_what_no_encoder_of_ours_writes() -> None:
    # A set (tag 258) of arrays: its elements would be sorted by encoding too.
    tagged = cbor2.dumps(cbor2.CBORTag(258, [[1], [2]]))
    with pytest.raises(SerializationError, match="values are not allowed"):
        decode(tagged, "payload", plain=False)
    deep = b"\x81" * 70 + b"\x00"
    with pytest.raises(SerializationError, match="nested deeper than 64"):
        decode(deep, "payload", plain=False)
    # A big integer's tag decodes to an int: still accepted.
    assert decode(cbor2.dumps([2**70], canonical=True), "payload", plain=False) == [2**70]

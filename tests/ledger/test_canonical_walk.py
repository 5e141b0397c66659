"""The C walk that vouches for canonical CBOR (agent/ledger/_canonical.c) never vouches for bytes that
encoding their value again would not give back, and vouches for the canonical bytes of the values a
transaction is made of (else it would save nothing). Differential: cbor2's own re-encoding is the
judge, on canonical bytes, non-canonical ones, mutations of both and random bytes."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledger import serialization

is_canonical = serialization._is_canonical

keys = st.integers(-(2**64), 2**64 - 1) | st.text(max_size=6) | st.binary(max_size=6)
vouched = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25,
)
# What the walk leaves to the re-encoding: floats, big integers (tags), tags, undefined.
others = st.recursive(
    st.none() | st.floats() | st.integers() | st.text(max_size=4) | st.sampled_from([cbor2.undefined]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=10,
)


def judge(data: bytes) -> bool:
    """cbor2's answer: the bytes decode, and encoding the value again gives them back."""
    try:
        return bytes(cbor2.dumps(cbor2.loads(data), canonical=True)) == data
    except Exception:  # any failure to decode or encode is "not canonical"
        return False


def walk_agrees(data: bytes) -> bool:
    """The walk is only asked about bytes that decoded (as serialization asks it)."""
    try:
        cbor2.loads(data)
    except Exception:
        return True
    return not is_canonical(data) or judge(data)


def test_the_walk_is_built() -> None:
    # make builds it (setup.py); without it every check re-encodes and this file tests nothing.
    assert is_canonical is not None


@settings(max_examples=400, deadline=None)
@given(vouched)
def test_it_vouches_for_canonical_bytes_of_what_transactions_hold(value: Any) -> None:
    data = bytes(cbor2.dumps(value, canonical=True))
    assert is_canonical(data)


@settings(max_examples=400, deadline=None)
@given(vouched | others, st.data())
def test_it_never_vouches_for_what_the_re_encoding_refuses(value: Any, data: st.DataObject) -> None:
    canonical = bytes(cbor2.dumps(value, canonical=True))
    plain = bytes(cbor2.dumps(value))  # map keys in insertion order
    assert walk_agrees(canonical) and walk_agrees(plain)
    at = data.draw(st.integers(0, len(canonical) - 1))
    byte = data.draw(st.integers(0, 255))
    mutated = canonical[:at] + bytes([byte]) + canonical[at + 1 :]
    assert walk_agrees(mutated)
    assert walk_agrees(canonical + data.draw(st.binary(min_size=1, max_size=3)))
    assert walk_agrees(canonical[:at])


@settings(max_examples=600, deadline=None)
@given(st.binary(max_size=40))
def test_random_bytes(data: bytes) -> None:
    assert walk_agrees(data)


@pytest.mark.parametrize(
    "data",
    [
        "1817",  # 23 in two bytes
        "190017",  # 23 in three bytes
        "1a000000ff",  # 255 in five bytes
        "1b00000000ffffffff",  # 2**32 - 1 in nine bytes
        "5801ff",  # a one-byte string with a two-byte head
        "9f01ff",  # an indefinite array
        "a2616201616101",  # keys out of order
        "a2616101616102",  # a key twice
        "a2626161016162 01".replace(" ", ""),  # a longer key before a shorter one
        "a202010101",  # 2 before 1: out of order
        "a2f50101 01".replace(" ", ""),  # true and 1 as keys: one key to Python
        "f93c00",  # a float
        "c11a514b67b0",  # a tag
        "f7",  # undefined
        "0000",  # trailing
    ],
)
def test_what_it_does_not_vouch_for(data: str) -> None:
    raw = bytes.fromhex(data)
    assert not is_canonical(raw)
    assert walk_agrees(raw)

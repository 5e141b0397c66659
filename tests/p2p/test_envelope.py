"""The wire format: round trips, malformed bytes refused by name, error codecs."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clock import from_epoch_ms
from agent.errors import MalformedMessageError, NotaryConflictError
from agent.ledger.serialization import encode
from agent.p2p.envelope import (
    Envelope,
    ErrorCodec,
    error_details,
    parse_error_payload,
    parse_sealed,
    rebuild_error,
    register_error_codec,
    wire,
)
from tests.p2p.conftest import PARTY_A, PARTY_B

plain: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
envelopes = st.builds(
    Envelope,
    sender=st.sampled_from([PARTY_A, PARTY_B]),
    recipient=st.sampled_from([PARTY_A, PARTY_B]),
    timestamp=st.integers(0, 2**42).map(from_epoch_ms),
    nonce=st.binary(min_size=16, max_size=16),
    topic=st.text(min_size=1, max_size=30),
    payload=plain,
    in_reply_to=st.none() | st.binary(min_size=16, max_size=16),
)


@given(envelopes, st.binary(max_size=64))
def test_round_trip(envelope: Envelope, signature: bytes) -> None:
    sealed = parse_sealed(wire(envelope.body(), signature))
    assert sealed.envelope == envelope
    assert (sealed.body, sealed.signature) == (envelope.body(), signature)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_malformed_or_parse(data: bytes) -> None:
    with contextlib.suppress(MalformedMessageError):
        parse_sealed(data)


def body_with(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "sender": str(PARTY_A),
        "recipient": str(PARTY_B),
        "timestamp": 1_700_000_000_000,
        "nonce": bytes(16),
        "topic": "t",
        "payload": None,
        "in_reply_to": None,
    }
    fields.update(changes)
    return encode({k: v for k, v in fields.items() if v is not ...})


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "malformed CBOR"),
        (cbor2.dumps({"b": 1, "a": 2}), "not in canonical form"),
        (encode([1, b"", b""]), "malformed CBOR"),
        (encode([1, b"x"]), r"\[version, body, signature\]"),
        (encode([2, body_with(), b""]), "unsupported version 2"),
        (encode([True, body_with(), b""]), "unsupported version True"),
        (encode([1, "text", b""]), "byte strings"),
        (encode([1, body_with(topic=...), b""]), "exactly"),
        (encode([1, body_with(extra=1), b""]), "exactly"),
        (encode([1, body_with(sender="nobody"), b""]), "KEY=value"),
        (encode([1, body_with(timestamp="now"), b""]), "timestamp must be int"),
        (encode([1, body_with(timestamp=True), b""]), "timestamp must be int"),
        (encode([1, body_with(timestamp=2**63), b""]), "out of range"),
        (encode([1, body_with(nonce=bytes(15)), b""]), "nonce must be 16 bytes"),
        (encode([1, body_with(in_reply_to=bytes(17)), b""]), "in_reply_to must be 16 bytes"),
        (encode([1, body_with(topic=""), b""]), "topic is empty"),
        (encode([1, encode([1, 2]), b""]), "exactly"),
    ],
)
def test_malformed_messages_named(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessageError, match=reason):
        parse_sealed(data)


def test_error_codec_round_trip() -> None:
    error = NotaryConflictError("AB" * 32, {"CD" * 32 + ":0": "EF" * 32})
    details = error_details(error)
    assert details == {"tx_id": error.tx_id, "conflicts": error.conflicts}
    rebuilt = rebuild_error("NotaryConflictError", details)
    assert isinstance(rebuilt, NotaryConflictError) and vars(rebuilt) == vars(error)


@pytest.mark.parametrize(
    "details",
    [
        {},
        {"tx_id": 1, "conflicts": {}},
        {"tx_id": "A", "conflicts": ["x"]},
        {"tx_id": "A", "conflicts": {"a": 1}},
    ],
)
def test_unfit_details_are_not_rebuilt(details: dict[str, Any]) -> None:
    assert rebuild_error("NotaryConflictError", details) is None


def test_unknown_types_are_not_rebuilt() -> None:
    assert rebuild_error("SystemExit", {}) is None


def test_details_that_are_not_plain_are_dropped() -> None:
    class Odd(Exception):
        def details(self) -> dict[str, Any]:
            return {"when": datetime.now(UTC)}

    assert error_details(Odd()) is None
    assert error_details(ValueError("no details")) is None


def test_register_error_codec_refuses_duplicates() -> None:
    codec = ErrorCodec(lambda e: {}, lambda d: NotaryConflictError("", {}))
    with pytest.raises(ValueError, match="'NotaryConflictError' is already registered"):
        register_error_codec("NotaryConflictError", codec)


@pytest.mark.parametrize(
    "payload",
    [None, [], {"type": "X"}, {"type": 1, "message": "m"}, {"type": "X", "message": "m", "details": []}],
)
def test_error_payload_shape_checked(payload: Any) -> None:
    with pytest.raises(MalformedMessageError):
        parse_error_payload(payload)

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import cbor2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.clock import from_epoch_ms
from agent.errors import SerializationError
from agent.ledger import serialization as ser
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair, PublicKey
from agent.ledger.token import TOKEN_CONTRACT, party_data
from agent.ledger.transactions import (
    SALT_SIZE,
    Command,
    SignedTransaction,
    StateRef,
    TimeWindow,
    TransactionBuilder,
    TransactionState,
    WireTransaction,
    _bytes_head,
    decode_signatures,
    encode_signatures,
)


def _raw(obj: Any) -> bytes:
    """Canonical CBOR without the encoder's own checks: how a malformed peer's bytes look."""
    return bytes(cbor2.dumps(obj, canonical=True))


NAMES = [
    "O=Bank of London, L=London, C=GB",
    "O=Alice Ltd, L=Leeds, C=GB",
    "CN=Bob, OU=Payments, O=Bob Corp, L=New York, ST=NY, C=US",
    "O=Notary Service, L=Zurich, C=CH",
    "O=Unspecified, L=Nowhere, C=ZZ",
]

public_keys = st.binary(min_size=32, max_size=32).map(PublicKey)
parties = st.builds(Party, st.sampled_from(NAMES).map(X500Name.parse), public_keys)
hashes = st.binary(min_size=32, max_size=32).map(SecureHash)
refs = st.builds(StateRef, hashes, st.integers(min_value=0, max_value=2**31))
plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.binary(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)
plain_dicts = st.dictionaries(st.text(max_size=8), plain, max_size=4)
millis = st.integers(min_value=-(10**12), max_value=10**13).map(from_epoch_ms)


@st.composite
def token_outputs(draw: st.DrawFn) -> TransactionState:
    owner = draw(parties)
    data = {
        "amount": draw(st.integers(min_value=1, max_value=2**70)),
        "currency": draw(st.sampled_from(["GBP", "USD", "CHF"])),
        "issuer": party_data(draw(parties)),
        "owner": party_data(owner),
    }
    return TransactionState(TOKEN_CONTRACT, data, (owner,))


other_outputs = st.builds(
    TransactionState, st.text(max_size=20), plain_dicts, st.lists(parties, max_size=3).map(tuple)
)
commands = st.builds(
    Command,
    st.text(max_size=20),
    st.text(max_size=10),
    st.lists(public_keys, max_size=3).map(tuple),
    plain_dicts,
)
time_windows = st.builds(TimeWindow, st.none() | millis, st.none() | millis)


@st.composite
def wire_transactions(
    draw: st.DrawFn, first_output: st.SearchStrategy[TransactionState] | None = None
) -> WireTransaction:
    outputs = draw(st.lists(token_outputs() | other_outputs, max_size=4))
    if first_output is not None:
        outputs.insert(0, draw(first_output))
    return WireTransaction(
        inputs=tuple(draw(st.lists(refs, max_size=4))),
        references=tuple(draw(st.lists(refs, max_size=2))),
        outputs=tuple(outputs),
        commands=tuple(draw(st.lists(commands, max_size=3))),
        notary=draw(st.none() | parties),
        time_window=draw(st.none() | time_windows),
        salt=draw(st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE)),
    )


# -- round trips and ids ---------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(wire_transactions())
def test_wire_transaction_round_trips(tx: WireTransaction) -> None:
    again = WireTransaction.deserialize(tx.serialized)
    assert again == tx
    assert again.id == tx.id
    assert ser.encode(again.to_obj()) == tx.serialized


@settings(max_examples=100, deadline=None)
@given(wire_transactions())
def test_id_is_sha256_of_the_canonical_bytes(tx: WireTransaction) -> None:
    assert ser.encode(tx.to_obj()) == ser.encode(tx.to_obj()) == tx.serialized
    assert bytes(tx.id) == hashlib.sha256(tx.serialized).digest()
    assert str(tx.id) == hashlib.sha256(tx.serialized).hexdigest().upper()
    # A copy built from the same parts (caches not shared) has the same id.
    assert replace(tx).id == tx.id


@settings(max_examples=50, deadline=None)
@given(wire_transactions(), st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE))
def test_changing_the_salt_changes_the_id(tx: WireTransaction, salt: bytes) -> None:
    assume(salt != tx.salt)
    assert replace(tx, salt=salt).id != tx.id


@settings(max_examples=50, deadline=None)
@given(wire_transactions(first_output=token_outputs()), st.integers(min_value=1, max_value=1000))
def test_changing_an_output_amount_changes_the_id(tx: WireTransaction, more: int) -> None:
    first = tx.outputs[0]
    changed = replace(first, data={**first.data, "amount": first.data["amount"] + more})
    assert replace(tx, outputs=(changed, *tx.outputs[1:])).id != tx.id


@settings(max_examples=50, deadline=None)
@given(wire_transactions(first_output=token_outputs()), parties)
def test_changing_a_participant_changes_the_id(tx: WireTransaction, party: Party) -> None:
    first = tx.outputs[0]
    assume(first.participants != (party,))
    changed = replace(first, participants=(party,))
    assert replace(tx, outputs=(changed, *tx.outputs[1:])).id != tx.id


@settings(max_examples=50, deadline=None)
@given(wire_transactions(), st.none() | parties)
def test_changing_the_notary_changes_the_id(tx: WireTransaction, notary: Party | None) -> None:
    assume(notary != tx.notary)
    assert replace(tx, notary=notary).id != tx.id


@settings(max_examples=50, deadline=None)
@given(wire_transactions(), refs)
def test_adding_an_input_changes_the_id(tx: WireTransaction, ref: StateRef) -> None:
    assert replace(tx, inputs=(*tx.inputs, ref)).id != tx.id


@settings(max_examples=50, deadline=None)
@given(
    wire_transactions(), st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3, unique=True)
)
def test_signed_transaction_round_trips_with_its_signatures(tx: WireTransaction, seeds: list[bytes]) -> None:
    stx = SignedTransaction(tx).signed_by(*(KeyPair.from_seed(seed) for seed in seeds))
    again = SignedTransaction.deserialize(stx.serialize())
    assert again == stx
    assert again.id == tx.id
    assert again.sigs == stx.sigs
    assert all(sig.verify(again.id) for sig in again.sigs)
    rebuilt = SignedTransaction.from_parts(tx.serialized, stx.serialize_signatures())
    assert rebuilt == stx
    assert decode_signatures(encode_signatures(stx.sigs)) == stx.sigs
    # The signatures' bytes deserialize keeps (the tail of what it read) are what encoding them gives.
    assert again.serialize_signatures() == encode_signatures(stx.sigs)


@pytest.mark.parametrize("padding", [0, 300, 70_000])
def test_the_signatures_kept_from_the_bytes_read_follow_a_wire_of_any_length(padding: int) -> None:
    # Wires of about 50 bytes, a few hundred and over 65,536: the byte string's head is 2, 3 and 5 bytes.
    key = KeyPair.from_seed(bytes(32))
    outputs = (TransactionState(TOKEN_CONTRACT, {"pad": b"\x00" * padding}, ()),) if padding else ()
    stx = SignedTransaction(WireTransaction((), (), outputs, (), None)).signed_by(key)
    again = SignedTransaction.deserialize(stx.serialize())
    assert again.serialize_signatures() == encode_signatures(stx.sigs)
    assert SignedTransaction.from_parts(again.tx.serialized, again.serialize_signatures()) == stx


@pytest.mark.parametrize("size", [0, 23, 24, 255, 256, 65_535, 65_536])
def test_a_byte_strings_head_is_sized_as_cbor_writes_it(size: int) -> None:
    assert _bytes_head(size) == len(ser.encode(b"\x00" * size)) - size


def test_signing_twice_with_one_key_keeps_one_signature() -> None:
    key = KeyPair.from_seed(bytes(32))
    tx = WireTransaction((), (), (), (), None)
    stx = SignedTransaction(tx).signed_by(key).signed_by(key)
    assert len(stx.sigs) == 1
    assert stx.signers() == {key.public}


def test_builder_with_a_fixed_salt_is_deterministic() -> None:
    key = KeyPair.from_seed(bytes(32))
    notary = Party(X500Name.parse(NAMES[3]), key.public)
    builder = TransactionBuilder(notary=notary).add_command(Command(TOKEN_CONTRACT, "Issue", (key.public,)))
    salt = bytes(range(32))
    assert builder.to_wire(salt).id == builder.to_wire(salt).id
    assert builder.to_wire().id != builder.to_wire().id


def test_time_window_keeps_milliseconds() -> None:
    window = TimeWindow(from_epoch_ms(1_700_000_000_123), None)
    tx = WireTransaction((), (), (), (), None, window, bytes(32))
    assert WireTransaction.deserialize(tx.serialized).time_window == window


def test_time_window_bounds() -> None:
    window = TimeWindow(from_epoch_ms(1000), from_epoch_ms(2000))
    assert window.contains(from_epoch_ms(1000))
    assert window.contains(from_epoch_ms(1999))
    assert not window.contains(from_epoch_ms(2000))
    assert not window.contains(from_epoch_ms(999))
    assert TimeWindow().contains(from_epoch_ms(0))


def test_a_float_in_output_data_is_refused_naming_the_field() -> None:
    with pytest.raises(SerializationError) as caught:
        WireTransaction((), (), (TransactionState("c", {"amount": 1.5}, ()),), (), None)
    assert caught.value.field == "outputs[0].data.amount"


def test_a_float_in_command_args_is_refused_naming_the_field() -> None:
    with pytest.raises(SerializationError) as caught:
        WireTransaction((), (), (), (Command("c", "n", (), {"rate": [0.5]}),), None)
    assert caught.value.field == "commands[0].args.rate[0]"


def test_a_short_salt_is_refused() -> None:
    with pytest.raises(SerializationError) as caught:
        WireTransaction((), (), (), (), None, None, b"short")
    assert caught.value.field == "salt"


# -- malformed bytes -------------------------------------------------------------------------------

KEY = KeyPair.from_seed(bytes([7]) * 32)
PARTY = Party(X500Name.parse(NAMES[0]), KEY.public)
SAMPLE = WireTransaction(
    inputs=(StateRef(SecureHash(bytes(32)), 0),),
    references=(StateRef(SecureHash(bytes([1]) * 32), 1),),
    outputs=(TransactionState(TOKEN_CONTRACT, {"amount": 5, "currency": "GBP"}, (PARTY,)),),
    commands=(Command(TOKEN_CONTRACT, "Move", (KEY.public,), {"note": "x"}),),
    notary=PARTY,
    time_window=TimeWindow(from_epoch_ms(1000), from_epoch_ms(2000)),
    salt=bytes(range(32)),
)


def _set(path: tuple[int, ...], value: Any) -> Callable[[list[Any]], None]:
    def change(obj: list[Any]) -> None:
        for step in path[:-1]:
            obj = obj[step]
        obj[path[-1]] = value

    return change


MALFORMED = [
    ("version-2", _set((0,), 2), "transaction.version"),
    ("inputs-not-a-list", _set((1,), {"a": 1}), "inputs"),
    ("input-not-a-pair", _set((1, 0), [bytes(32)]), "inputs[0]"),
    ("input-hash-not-bytes", _set((1, 0, 0), "00" * 32), "inputs[0].txhash"),
    ("input-hash-short", _set((1, 0, 0), bytes(31)), "hash"),
    ("input-index-text", _set((1, 0, 1), "0"), "inputs[0].index"),
    ("input-index-bool", _set((1, 0, 1), False), "inputs[0].index"),
    ("input-index-negative", _set((1, 0, 1), -1), "inputs[0].index"),
    ("reference-index-text", _set((2, 0, 1), "1"), "references[0].index"),
    ("output-contract-int", _set((3, 0, 0), 7), "outputs[0].contract"),
    ("output-data-list", _set((3, 0, 1), [1]), "outputs[0].data"),
    ("output-data-non-string-key", _set((3, 0, 1), {1: "x"}), "outputs[0].data"),
    ("participant-bad-name", _set((3, 0, 2, 0, 0), "O=X, L=London, C=GB"), "outputs[0].participants[0]"),
    ("participant-short-key", _set((3, 0, 2, 0, 1), bytes(31)), "outputs[0].participants[0]"),
    ("command-name-bytes", _set((4, 0, 1), b"Move"), "commands[0].name"),
    ("command-signer-text", _set((4, 0, 2, 0), "key"), "commands[0].signers[0]"),
    ("command-args-list", _set((4, 0, 3), []), "commands[0].args"),
    ("notary-not-a-pair", _set((5,), "O=Notary, L=London, C=GB"), "notary"),
    ("notary-bad-country", _set((5, 0), "O=Notary, L=London, C=XX"), "notary"),
    ("time-window-text", _set((6, 0), "1000"), "time_window.from"),
    ("time-window-until-bytes", _set((6, 1), b"\x01"), "time_window.until"),
    ("time-window-one-element", _set((6,), [1000]), "time_window"),
    ("salt-text", _set((7,), "salt"), "salt"),
    ("salt-short", _set((7,), bytes(8)), "salt"),
]


@pytest.mark.parametrize(
    ("change", "field"), [(c, f) for _, c, f in MALFORMED], ids=[i for i, _, _ in MALFORMED]
)
def test_malformed_transaction_names_the_field(change: Callable[[list[Any]], None], field: str) -> None:
    obj = SAMPLE.to_obj()
    change(obj)
    with pytest.raises(SerializationError) as caught:
        WireTransaction.deserialize(_raw(obj))
    assert caught.value.field == field


def test_sample_itself_round_trips() -> None:
    assert WireTransaction.deserialize(ser.encode(SAMPLE.to_obj())) == SAMPLE


@pytest.mark.parametrize("obj", [[1, [], []], {"version": 1}, "transaction"])
def test_wrong_shape_is_refused(obj: Any) -> None:
    with pytest.raises(SerializationError) as caught:
        WireTransaction.deserialize(_raw(obj))
    assert caught.value.field == "transaction"


@pytest.mark.parametrize("cut", [0, 1, 10, len(SAMPLE.serialized) // 2, len(SAMPLE.serialized) - 1])
def test_truncated_transaction_is_refused(cut: int) -> None:
    with pytest.raises(SerializationError) as caught:
        WireTransaction.deserialize(SAMPLE.serialized[:cut])
    assert caught.value.field == "transaction"


def test_malformed_signed_transaction_names_the_field() -> None:
    stx = SignedTransaction(SAMPLE).signed_by(KEY)
    good_sig = [KEY.public.raw, stx.sigs[0].signature]
    cases = [
        ([2, SAMPLE.serialized, [good_sig]], "signed transaction.version"),
        ([1, SAMPLE.to_obj(), [good_sig]], "signed transaction.transaction"),
        ([1, SAMPLE.serialized[:-1], [good_sig]], "transaction"),
        ([1, SAMPLE.serialized, [[KEY.public.raw]]], "signatures[0]"),
        ([1, SAMPLE.serialized, [["key", b"sig"]]], "signatures[0].by"),
        ([1, SAMPLE.serialized, [[KEY.public.raw, "sig"]]], "signatures[0].signature"),
        ([1, SAMPLE.serialized], "signed transaction"),
    ]
    for obj, field in cases:
        with pytest.raises(SerializationError) as caught:
            SignedTransaction.deserialize(_raw(obj))
        assert caught.value.field == field, obj
    with pytest.raises(SerializationError):
        SignedTransaction.deserialize(stx.serialize()[:-3])


def test_boolean_version_is_refused() -> None:
    obj = SAMPLE.to_obj()
    obj[0] = True
    with pytest.raises(SerializationError) as caught:
        WireTransaction.deserialize(_raw(obj))
    assert caught.value.field == "transaction.version"


def test_float_version_is_refused() -> None:
    obj = SAMPLE.to_obj()
    obj[0] = 1.0
    with pytest.raises(SerializationError) as caught:
        WireTransaction.deserialize(_raw(obj))
    assert caught.value.field == "transaction.version"


def test_signed_transaction_boolean_version_is_refused() -> None:
    stx = SignedTransaction(SAMPLE).signed_by(KEY)
    obj = [True, SAMPLE.serialized, [[KEY.public.raw, stx.sigs[0].signature]]]
    with pytest.raises(SerializationError):
        SignedTransaction.deserialize(_raw(obj))


def test_only_the_printed_form_of_a_party_name_is_accepted() -> None:
    obj = SAMPLE.to_obj()
    obj[5] = ["o=Bank of London,L=London,C=GB", KEY.public.raw]
    data = _raw(obj)
    try:
        tx = WireTransaction.deserialize(data)
    except SerializationError as exc:
        assert exc.field == "notary.name"
        return
    # Accepted: then it must at least be the one encoding of its content.
    assert tx == SAMPLE
    assert tx.id == SAMPLE.id

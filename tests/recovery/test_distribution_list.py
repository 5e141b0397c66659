"""The encrypted distribution list: Corda's layout, readable header, tamper-evident at the sender."""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledger.identity import X500Name
from agent.ledger.vault import StatesToRecord
from agent.recovery.aes_keys import KEY_COUNT, NodeAesKeys, wrapping_key
from agent.recovery.distribution_list import (
    HEADER,
    DistributionList,
    DistributionListError,
    PublicHeader,
    decode_plaintext,
    decrypt,
    encode_plaintext,
    encrypt,
    read_header,
)
from agent.store.ledger_store import LedgerStore

BOB = X500Name.parse("O=Bob Plc, L=Rome, C=IT")
CHARLIE = X500Name.parse("O=Charlie Ltd, L=London, C=GB")
WHEN = datetime(2023, 3, 29, 11, 16, 29, tzinfo=UTC)
KEY_ID = uuid.UUID("6f1c0a2e-9d2b-4c1e-8a77-3d5c2b1a0f99")
KEY = bytes(range(16))
LIST = DistributionList(
    StatesToRecord.ONLY_RELEVANT,
    {BOB.peer_id: StatesToRecord.ONLY_RELEVANT, CHARLIE.peer_id: StatesToRecord.ALL_VISIBLE},
)
HEAD = PublicHeader(WHEN, 7)


def test_layout_is_cordas() -> None:
    plain = encode_plaintext(LIST)
    assert plain[:5] == struct.pack(">Bi", 2, 2)
    assert len(plain) == 5 + 2 * 33
    sealed = encrypt(LIST, HEAD, KEY_ID, KEY)
    assert sealed[0] == 1
    assert sealed[1:17] == KEY_ID.bytes
    assert struct.unpack(">I", sealed[17:21]) == (13,)
    assert sealed[21:34] == HEADER.pack(1, int(WHEN.timestamp() * 1000), 7)
    assert len(sealed) == 1 + 16 + 4 + 13 + 12 + len(plain) + 16
    assert encrypt(LIST, HEAD, KEY_ID, KEY) != sealed  # a fresh IV every time


def test_the_sender_reads_back_what_it_sealed() -> None:
    sealed = encrypt(LIST, HEAD, KEY_ID, KEY)
    assert decrypt(sealed, {KEY_ID: KEY}) == (LIST, HEAD)


def test_a_receiver_reads_the_header_without_the_key() -> None:
    assert read_header(encrypt(LIST, HEAD, KEY_ID, KEY)) == HEAD


@pytest.mark.parametrize(
    ("where", "what"),
    [
        (21, "header version"),
        (25, "timestamp"),
        (33, "discriminator"),
        (40, "IV"),
        (60, "ciphertext"),
        (-1, "tag"),
    ],
)
def test_any_tampering_fails_at_the_sender(where: int, what: str) -> None:
    sealed = bytearray(encrypt(LIST, HEAD, KEY_ID, KEY))
    sealed[where] ^= 0x01
    with pytest.raises(DistributionListError, match=r"tampered|unsupported"):
        decrypt(bytes(sealed), {KEY_ID: KEY})


def test_a_tampered_key_id_names_a_key_we_do_not_hold() -> None:
    sealed = bytearray(encrypt(LIST, HEAD, KEY_ID, KEY))
    sealed[5] ^= 0x01
    with pytest.raises(DistributionListError, match="does not hold"):
        decrypt(bytes(sealed), {KEY_ID: KEY})


@pytest.mark.parametrize("cut", [0, 10, 21, 34, 46, 50])
def test_truncated_envelopes_are_refused(cut: int) -> None:
    with pytest.raises(DistributionListError):
        decrypt(encrypt(LIST, HEAD, KEY_ID, KEY)[:cut], {KEY_ID: KEY})


peer_ids = st.binary(min_size=32, max_size=32).map(bytes.hex)
lists = st.builds(
    DistributionList,
    st.sampled_from(list(StatesToRecord)),
    st.dictionaries(peer_ids, st.sampled_from(list(StatesToRecord)), max_size=20),
)


@settings(max_examples=60, deadline=None)
@given(lists, st.integers(0, 2**31 - 1), st.integers(0, 4_000_000_000_000))
def test_round_trip(dl: DistributionList, discriminator: int, millis: int) -> None:
    header = PublicHeader(
        datetime.fromtimestamp(millis / 1000, tz=UTC).replace(microsecond=(millis % 1000) * 1000),
        discriminator,
    )
    assert decode_plaintext(encode_plaintext(dl)) == dl
    assert decrypt(encrypt(dl, header, KEY_ID, KEY), {KEY_ID: KEY}) == (dl, header)


def test_node_keys_are_made_once_and_stored_wrapped(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/node.db"
    store = LedgerStore(url)
    keys = NodeAesKeys(store.keys, BOB).keys()
    assert len(keys) == KEY_COUNT
    stored = store.keys.aes_keys()
    assert len(stored) == KEY_COUNT
    for key_id, key in keys.items():
        assert len(key) == 16
        assert key not in stored[str(key_id)]  # wrapped, not in clear
    again = NodeAesKeys(LedgerStore(url).keys, BOB).keys()
    assert again == keys
    assert wrapping_key(BOB, KEY_ID) != wrapping_key(CHARLIE, KEY_ID)


def test_keys_of_another_node_do_not_unwrap(tmp_path: object) -> None:
    from agent.errors import IdentityError

    store = LedgerStore(f"sqlite:///{tmp_path}/node.db")
    NodeAesKeys(store.keys, BOB).keys()
    with pytest.raises(IdentityError, match="does not unwrap"):
        NodeAesKeys(store.keys, CHARLIE).keys()

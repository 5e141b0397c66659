"""Every decoder of bytes or text a peer or an operator can hand the agent, fuzzed: each either decodes
or refuses with one of the agent's named errors (agent.errors.AgentError); nothing else escapes.

Inputs are drawn three ways: arbitrary bytes; a valid input mutated (bytes flipped, inserted, deleted,
cut short); and, for the CBOR decoders, arbitrary CBOR structures (the shape a hostile member controls
once the bytes parse). Past failures are pinned in the tests of each module (tests/ledger, tests/p2p).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.clock import SystemClock
from agent.config import load_node_config
from agent.errors import AgentError
from agent.hospital.policy import parse_duration
from agent.ledger import token
from agent.ledger.keys import KeyPair
from agent.ledger.serialization import decode
from agent.ledger.transactions import SignedTransaction, WireTransaction, decode_signatures
from agent.ledger.vault import StatesToRecord
from agent.ledgersync.riblt import Encoder, check_batch, decode_batch, encode_batch
from agent.network.bootstrap import CERTIFICATES_DIR, DEFAULT_NOTARY, IDENTITY_KEY_FILE, init_network
from agent.network.network_map import SignedNetworkMap
from agent.network.pki import read_certificate
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.envelope import parse_sealed
from agent.recovery.distribution_list import (
    DistributionList,
    PublicHeader,
    decode_plaintext,
    decrypt,
    encrypt,
    read_header,
)
from tests.conftest import count_fuzzed, make_actor
from tests.fuzz import fuzz_settings
from tests.p2p.conftest import PARTY_A, PARTY_B

Decoder = Callable[[bytes], Any]


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """seed with up to 8 edits: a byte flipped, inserted or deleted; or cut short."""
    edit = st.tuples(
        st.sampled_from(["flip", "insert", "delete", "cut"]), st.integers(0, 2**16), st.integers(0, 255)
    )

    def apply(edits: list[tuple[str, int, int]]) -> bytes:
        data = bytearray(seed)
        for op, at, value in edits:
            i = at % (len(data) + 1)
            if op == "flip" and data:
                data[i % len(data)] ^= value or 1
            elif op == "insert":
                data.insert(i, value)
            elif op == "delete" and data:
                del data[i % len(data)]
            elif op == "cut":
                del data[i:]
        return bytes(data)

    return st.lists(edit, min_size=1, max_size=8).map(apply)


CBOR_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.binary(max_size=48)
    | st.text(max_size=24),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 9), inner, max_size=6)
    ),
    max_leaves=40,
)


def cbor_values() -> st.SearchStrategy[bytes]:
    return CBOR_VALUES.map(cbor2.dumps)


def refuses_by_name(target: str, decoder: Decoder, data: bytes) -> None:
    count_fuzzed(target)
    with contextlib.suppress(AgentError):  # a named refusal: what a bad input must get
        decoder(data)


# -- seeds: one valid input of each kind ------------------------------------------------------------------

ISSUER, NOTARY, OWNER = (
    make_actor("O=Issuer, L=London, C=GB"),
    make_actor("O=Notary, L=Zurich, C=CH"),
    make_actor("O=Owner, L=Paris, C=FR"),
)
SIGNED = token.issue(ISSUER.party, NOTARY.party, [(OWNER.party, 10), (ISSUER.party, 5)], "GBP").sign(
    [ISSUER.key]
)

KEY_ID, AES_KEY = uuid.UUID(int=7), bytes(range(32))
HEADER = PublicHeader(datetime(2026, 12, 3, 12, 0, tzinfo=UTC), 3)
SEALED_LIST = encrypt(
    DistributionList(StatesToRecord.ONLY_RELEVANT, {"ab" * 32: StatesToRecord.ALL_VISIBLE}),
    HEADER,
    KEY_ID,
    AES_KEY,
)

BATCH = encode_batch(Encoder([bytes([i]) * 32 for i in range(20)], b"s" * 16).next_symbols(12), 0)


@pytest.fixture(scope="module")
def authenticators(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[MessageAuthenticator, MessageAuthenticator]:
    """PartyA's and PartyB's authenticators on a bootstrapped network (A opens what B seals)."""
    layout = init_network(tmp_path_factory.mktemp("fuzz") / "net", [PARTY_A, PARTY_B], DEFAULT_NOTARY)
    network_map = SignedNetworkMap.load(
        layout.network_map, read_certificate(layout.root_certificate), SystemClock()
    )

    def of(name: Any) -> MessageAuthenticator:
        key = KeyPair.read_pem(layout.node(name).folder / CERTIFICATES_DIR / IDENTITY_KEY_FILE)
        return MessageAuthenticator(network_map.node(name).party, key, network_map, SystemClock())

    return of(PARTY_A), of(PARTY_B)


# -- the decoders ---------------------------------------------------------------------------------------

BYTE_DECODERS: dict[str, tuple[Decoder, bytes]] = {
    "SignedTransaction.deserialize": (SignedTransaction.deserialize, SIGNED.serialize()),
    "WireTransaction.deserialize": (WireTransaction.deserialize, SIGNED.tx.serialized),
    "decode_signatures": (decode_signatures, SIGNED.serialize_signatures()),
    "serialization.decode": (lambda data: decode(data, "value"), SIGNED.serialize()),
    "distribution list decrypt": (lambda data: decrypt(data, {KEY_ID: AES_KEY}), SEALED_LIST),
    "distribution list read_header": (read_header, SEALED_LIST),
    "distribution list plaintext": (decode_plaintext, b"\x01\x00\x00\x00\x01" + b"\xab" * 32 + b"\x00"),
    "riblt decode_batch": (decode_batch, BATCH),
    "riblt check_batch": (check_batch, BATCH),
    "envelope parse_sealed": (parse_sealed, b""),  # seeded from a sealed message below
}
CBOR_DECODERS = [
    "SignedTransaction.deserialize",
    "WireTransaction.deserialize",
    "decode_signatures",
    "serialization.decode",
    "envelope parse_sealed",
]


@pytest.mark.parametrize("name", sorted(BYTE_DECODERS))
@fuzz_settings()
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_are_decoded_or_refused_by_name(name: str, data: bytes) -> None:
    refuses_by_name(name, BYTE_DECODERS[name][0], data)


@pytest.mark.parametrize("name", sorted(set(BYTE_DECODERS) - {"envelope parse_sealed"}))
@fuzz_settings(2)
@given(data=st.data())
def test_mutations_of_a_valid_input_are_decoded_or_refused_by_name(name: str, data: st.DataObject) -> None:
    decoder, seed = BYTE_DECODERS[name]
    refuses_by_name(name, decoder, data.draw(mutated(seed)))


@pytest.mark.parametrize("name", CBOR_DECODERS)
@fuzz_settings()
@given(data=cbor_values())
def test_arbitrary_cbor_structures_are_decoded_or_refused_by_name(name: str, data: bytes) -> None:
    refuses_by_name(name, BYTE_DECODERS[name][0], data)


@fuzz_settings(2)
@given(data=st.data())
def test_sealed_messages_mutated_are_opened_or_refused_by_name(
    authenticators: tuple[MessageAuthenticator, MessageAuthenticator], data: st.DataObject
) -> None:
    a, b = authenticators
    payload = data.draw(CBOR_VALUES.filter(lambda v: isinstance(v, dict)), "payload")
    try:
        sealed = b.seal(PARTY_A, "fuzz.topic", payload)
    except AgentError:
        return  # a payload the sender itself refuses to seal (floats, deep nesting): nothing to send
    message = data.draw(mutated(sealed), "message")
    refuses_by_name("envelope parse_sealed", parse_sealed, message)
    refuses_by_name("MessageAuthenticator.open", a.open, message)


# -- what an operator writes ----------------------------------------------------------------------------

NODE_CONF = """myLegalName = "O=PartyA, L=London, C=GB"
p2pAddress = "127.0.0.1:10002"
managementAddress = "127.0.0.1:10003"
flowHospital { maxRetries = 3, backoff { initial = 1s, factor = 2, cap = 1m } }
transactionRecoveryPeriod = 7d
"""


@fuzz_settings(0.5)
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_any_node_conf_is_loaded_or_refused_by_name(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "node.conf"
        path.write_text(text, encoding="utf-8", errors="replace")
        refuses_by_name("node.conf", lambda _: load_node_config(path), b"")


@fuzz_settings(0.5)
@given(data=st.data())
def test_node_conf_mutated_is_loaded_or_refused_by_name(data: st.DataObject) -> None:
    text = data.draw(mutated(NODE_CONF.encode())).decode("utf-8", errors="replace")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "node.conf"
        path.write_text(text, encoding="utf-8")
        refuses_by_name("node.conf", lambda _: load_node_config(path), b"")


@fuzz_settings()
@given(value=st.text(max_size=200) | st.integers() | st.floats())
def test_any_duration_is_parsed_or_refused_by_name(value: Any) -> None:
    refuses_by_name("duration", lambda _: parse_duration("flowHospital.backoff.initial", value), b"")

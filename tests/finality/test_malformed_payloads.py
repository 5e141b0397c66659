"""Issue 16, item 6: malformed payloads from a member are refused by name, never answered 500.

Each request below comes from a real member (its messages are sealed and authenticated as any other)
over the in-process network to a real node runtime, whose PeerService answers exactly as over HTTP.
Before the fix each got INTERNAL_ERROR (500) and a traceback in the receiver's log.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.errors import PeerRequestError
from agent.finality.flows import TOPIC_NOTARISE, TOPIC_TRANSACTION
from agent.ledger import serialization as ser
from agent.ledger.transactions import WIRE_VERSION, SignedTransaction
from agent.ledger.vault import StatesToRecord
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.p2p.envelope import INTERNAL_ERROR_TYPE
from agent.p2p.inprocess import InProcessNetwork
from agent.recovery.distribution_list import _PREFIX, DistributionList, PublicHeader, encrypt
from agent.recovery.protocol import TOPIC_PUSH
from agent.runtime import AgentRuntime
from tests.inprocess_net import start_runtimes

A, B = default_node_names(2)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[dict[Any, AgentRuntime]]:
    layout = init_network(tmp_path / "net", [A, B], DEFAULT_NOTARY)
    network = InProcessNetwork()
    runtimes = start_runtimes(layout, network)
    try:
        yield runtimes
    finally:
        for runtime in runtimes.values():
            runtime.stop(5)


def refused(net: dict[Any, AgentRuntime], to: Any, topic: str, payload: Any) -> PeerRequestError:
    with pytest.raises(PeerRequestError) as caught:
        net[A].peers.request(to, topic, payload)
    assert caught.value.error_type != INTERNAL_ERROR_TYPE, caught.value
    return caught.value


def far_future(stx: SignedTransaction) -> bytes:
    """The transaction with a time window in the year 3e7 (A's own signatures kept: it is parsed first)."""
    obj = stx.tx.to_obj()
    obj[6] = [10**18, None]
    return ser.encode([WIRE_VERSION, ser.encode(obj), [[s.by.raw, s.signature] for s in stx.sigs]])


def overflowing_list() -> bytes:
    """A sealed distribution list whose (unauthenticated) header says the year 3e8."""
    key_id, key = uuid.uuid4(), bytes(32)
    listed = DistributionList(StatesToRecord.ONLY_RELEVANT, {})
    envelope = bytearray(encrypt(listed, PublicHeader(datetime(2026, 1, 1, tzinfo=UTC), 1), key_id, key))
    at = _PREFIX.size + 1  # the header's millis, after its version byte
    envelope[at : at + 8] = (10**19 // 2).to_bytes(8, "big")
    return bytes(envelope)


def test_each_malformed_payload_gets_a_named_refusal(net: dict[Any, AgentRuntime]) -> None:
    issued = net[A].tokens.issue([(A, 10)], "GBP", [])
    sealed = overflowing_list()

    error = refused(net, B, TOPIC_TRANSACTION, [1, 2, 3])
    assert (error.error_type, error.message) == ("SerializationError", "payload: expected dict, got list")

    good = {"tx": issued.serialize(), "distribution": sealed, "states_to_record": 7}
    error = refused(net, B, TOPIC_TRANSACTION, good)
    assert error.error_type == "SerializationError"
    assert error.message.startswith("states_to_record: 7 is not a StatesToRecord ordinal")

    error = refused(net, B, TOPIC_TRANSACTION, {**good, "states_to_record": 2})
    assert error.error_type == "DistributionListError"
    assert error.message.startswith("distribution_list: its header's timestamp:")

    late = {"tx": far_future(issued), "distribution": sealed, "states_to_record": 2}
    error = refused(net, B, TOPIC_TRANSACTION, late)
    assert error.error_type == "SerializationError" and "time_window.from" in error.message
    error = refused(net, DEFAULT_NOTARY, TOPIC_NOTARISE, {"tx": far_future(issued)})
    assert error.error_type == "SerializationError" and "out of range" in error.message

    push = {
        "txId": str(issued.id),
        "tx": issued.serialize(),
        "statesToRecord": -1,
        "timestamp": 0,
        "discriminator": 0,
        "distributionList": b"",
    }
    error = refused(net, B, TOPIC_PUSH, push)
    assert "statesToRecord: -1 is not a StatesToRecord ordinal" in error.message
    error = refused(net, B, TOPIC_PUSH, {**push, "statesToRecord": 2, "timestamp": -(10**17)})
    assert "timestamp" in error.message and "out of range" in error.message

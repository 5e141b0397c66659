"""What crosses the wire: a responder never sends an id its requester is not entitled to see.

A tap on the requester's transport keeps every sealed reply as it arrives (envelopes are signed, not
encrypted, so an id sent in any form, in an id page or as a pure coded symbol, shows in the bytes).
"""

from __future__ import annotations

from agent.ledger.hashing import SecureHash
from agent.ledgersync.protocol import METHOD_LIST, METHOD_RIBLT
from agent.p2p.client import RawTransport
from tests.ledgersync.conftest import A, B, C, Net


class Tap:
    """The real transport, with every reply kept."""

    def __init__(self, inner: RawTransport) -> None:
        self.inner = inner
        self.replies: list[bytes] = []

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        status, reply = self.inner.post(address, body, timeout)
        self.replies.append(reply)
        return status, reply


def tap(net: Net, name: object) -> Tap:
    peers = net[name].peers  # type: ignore[index]
    wire = Tap(peers.transport)
    peers.transport = wire
    return wire


def test_a_responder_never_sends_ids_the_requester_may_not_see(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    secret = bytes(t["t3"])  # between B and C only
    wire = tap(net, A)
    for method in (METHOD_RIBLT, METHOD_LIST):
        for both in (False, True):
            result = net.sync(A).reconcile(B, both_directions=both, method=method)
            assert result.missing_here == {t["t4"], t["t5"]}
    assert len(wire.replies) >= 8
    assert not any(secret in reply for reply in wire.replies)
    # B's set for the pair with A, the only ids its replies are built from, does not hold it either.
    entitled = {bytes(i) for i in net.sync(B).pair_set(A)}
    assert secret not in entitled


def test_the_tap_does_see_ids_sent_to_a_party_entitled_to_them(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    wire = tap(net, C)
    net.sync(C).reconcile(B, method=METHOD_LIST)
    assert any(bytes(t["t3"]) in reply for reply in wire.replies)  # the check above could fail

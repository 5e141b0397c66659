"""The fault-processing transport (drop, delay, duplicate, reorder) and a simulated crash in a handler."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.errors import SimulatedCrash, TransientTransportError
from agent.ledger.identity import X500Name
from agent.p2p.faulty import FaultyTransport, HeldMessages, NetworkFaults
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.service import PeerService
from tests.p2p.conftest import PARTY_A, PARTY_B, BootedNetwork
from tests.p2p.test_service import authenticator

WAIT = 10.0  # real seconds a test waits for a condition before failing


class Recording:
    """A RawTransport that answers 200 and remembers what it carried."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        with self._lock:
            self.bodies.append(body)
        return 200, b"reply to " + body


def faulty(inner: Recording, held: HeldMessages | None = None, **chances: float) -> FaultyTransport:
    return FaultyTransport(inner, NetworkFaults(release=0.0, **chances), random.Random(7), held)


def test_a_healthy_network_carries_each_request_once() -> None:
    inner = Recording()
    assert faulty(inner).post("b", b"m1", 1.0) == (200, b"reply to m1")
    assert inner.bodies == [b"m1"]


def test_a_lost_request_never_arrives_and_a_lost_reply_arrives_unanswered() -> None:
    inner = Recording()
    with pytest.raises(TransientTransportError, match="request lost"):
        faulty(inner, drop_request=1.0).post("b", b"m1", 1.0)
    assert inner.bodies == []
    with pytest.raises(TransientTransportError, match="reply lost"):
        faulty(inner, drop_reply=1.0).post("b", b"m2", 1.0)
    assert inner.bodies == [b"m2"]  # the handler ran: its caller will send again


def test_delayed_and_duplicated_messages_arrive_later_by_the_courier() -> None:
    inner, held = Recording(), HeldMessages()
    with pytest.raises(TransientTransportError, match="delayed"):
        faulty(inner, held, delay=1.0).post("b", b"late", 1.0)
    assert faulty(inner, held, duplicate=1.0).post("b", b"twice", 1.0) == (200, b"reply to twice")
    assert inner.bodies == [b"twice"]
    stop = threading.Event()
    courier = threading.Thread(target=held.courier, args=(stop,))
    courier.start()
    try:
        held.release_all()
        assert held.wait_delivered(WAIT)
        assert sorted(inner.bodies) == [b"late", b"twice", b"twice"]
        assert len(held) == 0
    finally:
        held.stop(stop)
        courier.join(WAIT)


def test_the_seed_fixes_the_decisions() -> None:
    chances = NetworkFaults(drop_request=0.2, drop_reply=0.2, delay=0.1, duplicate=0.1)

    def outcomes(seed: int) -> list[str]:
        transport = FaultyTransport(Recording(), chances, random.Random(seed))
        seen = []
        for n in range(50):
            try:
                transport.post("b", b"%d" % n, 1.0)
                seen.append("ok")
            except TransientTransportError as exc:
                seen.append(exc.reason)
        return seen

    assert outcomes(1) == outcomes(1)
    assert outcomes(1) != outcomes(2)
    disabled = FaultyTransport(Recording(), NetworkFaults(drop_request=1.0), random.Random(1))
    disabled.enabled = False
    assert disabled.post("b", b"m", 1.0)[0] == 200


@pytest.mark.parametrize("bad", [{"drop_request": -0.1}, {"drop_reply": 0.7, "delay": 0.7}, {"release": 2.0}])
def test_impossible_chances_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="probabilities"):
        NetworkFaults(**bad)


def test_a_peer_crashing_in_its_handler_is_a_dropped_connection_to_the_caller(
    network: BootedNetwork,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    service = PeerService(authenticator(network, PARTY_B, clock), 10_000)

    def crash(sender: X500Name, payload: Any) -> Any:
        raise SimulatedCrash("the handler")

    service.register("crash", crash)
    net = InProcessNetwork()
    net.attach("b", service)
    sealed = authenticator(network, PARTY_A, clock).seal(PARTY_B, "crash", {})
    with pytest.raises(TransientTransportError, match="connection lost") as err:
        InProcessTransport(net).post("b", sealed, 1.0)
    assert isinstance(err.value.__cause__, SimulatedCrash)

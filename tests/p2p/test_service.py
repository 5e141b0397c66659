"""PeerService and InProcessNetwork on their own: registration, statuses, what is logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from agent.clock import ManualClock
from agent.errors import TransientTransportError
from agent.ledger.serialization import decode
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.envelope import parse_error_payload
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.service import PeerService
from tests.p2p.conftest import PARTY_A, PARTY_B, BootedNetwork, Recorder


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 6, 1, tzinfo=UTC))


def authenticator(network: BootedNetwork, name: object, clock: ManualClock) -> MessageAuthenticator:
    member = network.members[name]  # type: ignore[index]
    return MessageAuthenticator(member.party, member.key, network.network_map, clock)


def test_duplicate_topic_refused_by_name(network: BootedNetwork, clock: ManualClock) -> None:
    service = PeerService(authenticator(network, PARTY_B, clock), 1000)
    service.register("echo", Recorder())
    with pytest.raises(ValueError, match="'echo' is already registered"):
        service.register("echo", Recorder())
    for reserved in ("reply", "error", ""):
        with pytest.raises(ValueError, match="reserved or empty"):
            service.register(reserved, Recorder())
    assert service.topics == ("echo",)


def test_limit_must_be_positive(network: BootedNetwork, clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        PeerService(authenticator(network, PARTY_B, clock), 0)


def test_handle_checks_the_size_itself(network: BootedNetwork, clock: ManualClock) -> None:
    service = PeerService(authenticator(network, PARTY_B, clock), 10)
    status, body = service.handle(b"x" * 11)
    assert status == 413
    assert parse_error_payload(decode(body, "reply"))[2] == {"size": 11, "limit": 10, "at_least": False}


def test_refusals_do_not_log_payloads(
    network: BootedNetwork, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    service = PeerService(authenticator(network, PARTY_B, clock), 10_000)
    service.register("echo", Recorder())
    sealed = authenticator(network, PARTY_A, clock).seal(PARTY_B, "echo", {"password": "hunter2"})
    with caplog.at_level(logging.DEBUG):
        assert service.handle(sealed)[0] == 200
        assert service.handle(sealed)[0] == 400
        assert (
            service.handle(authenticator(network, PARTY_A, clock).seal(PARTY_B, "nope", "hunter2"))[0] == 404
        )
    assert "already received" in caplog.text
    assert "hunter2" not in caplog.text


def test_in_process_network(network: BootedNetwork, clock: ManualClock) -> None:
    net = InProcessNetwork()
    service = PeerService(authenticator(network, PARTY_B, clock), 10_000)
    net.attach("b", service)
    with pytest.raises(ValueError, match="'b' is already attached"):
        net.attach("b", service)
    assert net.addresses == ("b",)
    net.detach("b")
    with pytest.raises(ValueError, match="'b' is not attached"):
        net.detach("b")
    with pytest.raises(TransientTransportError, match="connection refused"):
        InProcessTransport(net).post("b", b"x", 1.0)


def test_a_message_must_come_from_the_party_its_tls_certificate_names(
    network: BootedNetwork, clock: ManualClock
) -> None:
    """Over mutual TLS the transport names the connection's party; a message sealed by another is
    refused before its signature is checked, so its nonce is not spent for the real sender."""
    service = PeerService(authenticator(network, PARTY_B, clock), 10_000)
    recorder = Recorder()
    service.register("echo", recorder)
    a = authenticator(network, PARTY_A, clock)
    sealed = a.seal(PARTY_B, "echo", {"n": 1})
    status, body = service.handle(sealed, tls_peer=PARTY_B)  # B's connection, A's message
    refused = a.open(body, expect_sender=PARTY_B)
    assert (status, refused.payload["type"]) == (400, "SenderCertificateMismatchError")
    assert refused.payload["details"] == {"sender": str(PARTY_A), "certificate": str(PARTY_B)}
    assert recorder.calls == []
    assert service.handle(sealed, tls_peer=PARTY_A)[0] == 200
    assert len(recorder.calls) == 1

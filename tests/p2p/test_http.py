"""What only the HTTP adapter does: size checks from the headers, 411, health, and httpx errors mapped."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent.clock import ManualClock
from agent.errors import MessageTooLargeError, PeerError, TransientTransportError
from agent.ledger.serialization import decode
from agent.p2p.envelope import parse_error_payload
from agent.p2p.http import HttpTransport, ThreadedServer, create_peer_app, message_url
from agent.p2p.service import PeerService
from tests.p2p.conftest import LIMIT, PARTY_A, PARTY_B, BootedNetwork, HttpHarness, Recorder, World


@pytest.fixture
def http_world(network: BootedNetwork) -> Iterator[World]:
    harness = HttpHarness()
    try:
        yield World(network, harness, ManualClock(datetime.now(UTC)))
    finally:
        harness.close()


def serve(world: World, **handlers: Any) -> tuple[str, Recorder]:
    echo = Recorder()
    return world.serve(PARTY_B, world.service(world.member(PARTY_B), echo=echo, **handlers)), echo


def connect(address: str) -> http.client.HTTPConnection:
    host, port = address.split(":")
    # The timeout only bounds a failure: a server that waited for the body would trip it.
    return http.client.HTTPConnection(host, int(port), timeout=5)


def test_declared_oversize_refused_before_the_body_is_read(http_world: World) -> None:
    address, echo = serve(http_world)
    conn = connect(address)
    try:
        conn.putrequest("POST", "/p2p/v1/message")
        conn.putheader("Content-Type", "application/cbor")
        conn.putheader("Content-Length", str(10 * LIMIT))
        conn.endheaders(b"only the first bytes")  # the rest of the body is never sent
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status == 413
    assert response.getheader("Content-Type") == "application/cbor"
    error_type, _, details = parse_error_payload(decode(body, "reply"))
    assert error_type == "MessageTooLargeError"
    assert details == {"size": 10 * LIMIT, "limit": LIMIT, "at_least": False}
    assert echo.calls == []


def test_chunked_oversize_refused_after_reading_one_byte_past_the_limit(http_world: World) -> None:
    address, echo = serve(http_world)
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            sent.append(LIMIT // 2)
            yield b"x" * (LIMIT // 2)

    response = httpx.post(f"http://{address}/p2p/v1/message", content=chunks(), trust_env=False)
    assert response.status_code == 413
    error_type, message, details = parse_error_payload(decode(response.content, "reply"))
    assert (error_type, details) == (
        "MessageTooLargeError",
        {"size": LIMIT + 1, "limit": LIMIT, "at_least": True},
    )
    assert f"at least {LIMIT + 1} bytes" in message
    assert echo.calls == []


def test_chunked_message_within_the_limit_is_served(http_world: World) -> None:
    address, echo = serve(http_world)
    sealed = http_world.authenticator(http_world.member(PARTY_A)).seal(PARTY_B, "echo", "chunked")

    def chunks() -> Iterator[bytes]:
        yield sealed[:10]
        yield sealed[10:]

    response = httpx.post(f"http://{address}/p2p/v1/message", content=chunks(), trust_env=False)
    assert response.status_code == 200
    assert echo.calls == [(PARTY_A, "chunked")]


def test_missing_content_length_refused(http_world: World) -> None:
    address, echo = serve(http_world)
    conn = connect(address)
    try:
        conn.putrequest("POST", "/p2p/v1/message")
        conn.endheaders()
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status == 411
    assert parse_error_payload(decode(body, "reply"))[0] == "MalformedMessageError"
    assert echo.calls == []


def test_garbage_is_a_plain_400(http_world: World) -> None:
    address, _ = serve(http_world)
    response = httpx.post(f"http://{address}/p2p/v1/message", content=b"\xff\x00garbage", trust_env=False)
    assert response.status_code == 400
    assert parse_error_payload(decode(response.content, "reply"))[0] == "MalformedMessageError"


def test_health(http_world: World) -> None:
    address, _ = serve(http_world)
    response = httpx.get(f"http://{address}/p2p/v1/health", trust_env=False)
    assert (response.status_code, response.text) == (200, "ok\n")


def test_read_timeout_is_transient(http_world: World) -> None:
    release = threading.Event()

    def stall(sender: Any, payload: Any) -> Any:
        release.wait(10)
        return None

    address, _ = serve(http_world, stall=stall)
    sealed = http_world.authenticator(http_world.member(PARTY_A)).seal(PARTY_B, "stall", None)
    with HttpTransport() as transport:
        try:
            with pytest.raises(TransientTransportError, match="ReadTimeout"):
                transport.post(address, sealed, 0.2)
        finally:
            release.set()


def test_reply_over_the_response_limit_refused(http_world: World) -> None:
    address, _ = serve(http_world)
    sealed = http_world.authenticator(http_world.member(PARTY_A)).seal(PARTY_B, "echo", b"y" * 2000)
    with HttpTransport(max_response_size=1000) as transport, pytest.raises(MessageTooLargeError):
        transport.post(address, sealed, 5.0)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_failures_are_transient(status: int) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(status)))
    with HttpTransport(client=client) as transport, pytest.raises(TransientTransportError, match=str(status)):
        transport.post("peer.example:10000", b"x", 1.0)


def test_unusable_address_is_not_transient() -> None:
    with HttpTransport() as transport, pytest.raises(PeerError) as caught:
        transport.post("ftp://peer.example", b"x", 1.0)
    assert not isinstance(caught.value, TransientTransportError)


def test_message_url() -> None:
    assert message_url("127.0.0.1:10000") == "http://127.0.0.1:10000/p2p/v1/message"
    assert message_url("https://peer.example:8443/") == "https://peer.example:8443/p2p/v1/message"


def test_app_limit_defaults_to_the_service_limit(http_world: World) -> None:
    service = PeerService(http_world.authenticator(http_world.member(PARTY_B)), 100)
    with ThreadedServer(create_peer_app(service)) as address:
        response = httpx.post(f"http://{address}/p2p/v1/message", content=b"z" * 101, trust_env=False)
    assert response.status_code == 413

"""Fixtures for the peer protocol: a real bootstrapped network, a foreign one, and both transport adapters.

The `harness` fixture runs every protocol test twice: in-process, and over HTTP on 127.0.0.1 with a
real server thread and httpx. Every server a test starts is stopped when it ends.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pytest

from agent.clock import Clock, ManualClock, SystemClock
from agent.errors import TransientTransportError
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.serialization import decode
from agent.network.bootstrap import CERTIFICATES_DIR, DEFAULT_NOTARY, IDENTITY_KEY_FILE, init_network
from agent.network.network_map import NetworkMap, NetworkParameters, SignedNetworkMap
from agent.network.pki import read_certificate
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.client import PeerClient, RawTransport
from agent.p2p.envelope import parse_error_payload
from agent.p2p.http import HttpTransport, ThreadedServer, create_peer_app
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.p2p.service import PeerService

# Small, so the oversize tests stay fast; the network default (10 MiB) is tested in the map's tests.
LIMIT = 16 * 1024
PARTY_A = X500Name.parse("O=PartyA, L=London, C=GB")
PARTY_B = X500Name.parse("O=PartyB, L=New York, C=US")
PARTY_C = X500Name.parse("O=PartyC, L=Paris, C=FR")
STRANGER = X500Name.parse("O=Stranger, L=Oslo, C=NO")


@dataclass(frozen=True)
class Member:
    """A node's identity and key, as read from its bootstrapped folder."""

    party: Party
    key: KeyPair

    @property
    def name(self) -> X500Name:
        return self.party.name


def _load(directory: Path, names: list[X500Name]) -> tuple[NetworkMap, dict[X500Name, Member]]:
    layout = init_network(directory, names, DEFAULT_NOTARY)
    network_map = SignedNetworkMap.load(
        layout.network_map, read_certificate(layout.root_certificate), SystemClock()
    )
    members = {}
    for node in layout.nodes:
        key = KeyPair.read_pem(node.folder / CERTIFICATES_DIR / IDENTITY_KEY_FILE)
        members[node.name] = Member(network_map.node(node.name).party, key)
    return network_map, members


@dataclass(frozen=True)
class BootedNetwork:
    network_map: NetworkMap
    members: dict[X500Name, Member]


@pytest.fixture(scope="session")
def network(tmp_path_factory: pytest.TempPathFactory) -> BootedNetwork:
    """Notary, PartyA, PartyB and PartyC, bootstrapped with keys and a signed map; limit LIMIT."""
    network_map, members = _load(tmp_path_factory.mktemp("net") / "net", [PARTY_A, PARTY_B, PARTY_C])
    small = dataclasses.replace(network_map, parameters=NetworkParameters(max_message_size=LIMIT))
    return BootedNetwork(small, members)


@pytest.fixture(scope="session")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> dict[X500Name, Member]:
    """Another network's nodes: an impostor named PartyA (its own CA and key) and a stranger."""
    _, members = _load(tmp_path_factory.mktemp("foreign") / "net", [PARTY_A, STRANGER])
    return members


class Harness(Protocol):
    transport: RawTransport

    def serve(self, service: PeerService) -> str: ...

    def down_address(self) -> str: ...

    def close(self) -> None: ...


class InProcessHarness:
    def __init__(self) -> None:
        self.network = InProcessNetwork()
        self.transport: RawTransport = InProcessTransport(self.network)
        self._count = 0

    def serve(self, service: PeerService) -> str:
        self._count += 1
        address = f"inprocess-{self._count}"
        self.network.attach(address, service)
        return address

    def down_address(self) -> str:
        return "inprocess-nobody"

    def close(self) -> None:
        pass


class HttpHarness:
    def __init__(self) -> None:
        self.http = HttpTransport(timeout=5.0)
        self.transport: RawTransport = self.http
        self._servers: list[ThreadedServer] = []

    def serve(self, service: PeerService) -> str:
        server = ThreadedServer(create_peer_app(service, LIMIT))
        self._servers.append(server)
        return server.start()

    def down_address(self) -> str:
        # A port that was just free: nothing listens there, so connecting is refused.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"127.0.0.1:{port}"

    def close(self) -> None:
        for server in self._servers:
            server.stop()
        self.http.close()


@pytest.fixture(params=["inprocess", "http"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    made: Harness = InProcessHarness() if request.param == "inprocess" else HttpHarness()
    try:
        yield made
    finally:
        made.close()


@dataclass
class World:
    """One test's nodes on one transport, one manual clock, and the addresses they serve on."""

    network: BootedNetwork
    harness: Harness
    clock: ManualClock
    addresses: dict[X500Name, str] = field(default_factory=dict)

    def member(self, name: X500Name) -> Member:
        return self.network.members[name]

    @property
    def network_map(self) -> NetworkMap:
        """The test map, with each served node at the address it really listens on."""
        nodes = tuple(
            dataclasses.replace(info, addresses=(self.addresses[info.name],))
            if info.name in self.addresses
            else info
            for info in self.network.network_map.nodes
        )
        return dataclasses.replace(self.network.network_map, nodes=nodes)

    def authenticator(
        self, member: Member, clock: Clock | None = None, **kwargs: Any
    ) -> MessageAuthenticator:
        return MessageAuthenticator(member.party, member.key, self.network_map, clock or self.clock, **kwargs)

    def service(self, member: Member, **handlers: Callable[[X500Name, Any], Any]) -> PeerService:
        service = PeerService(self.authenticator(member), LIMIT)
        for topic, handler in handlers.items():
            service.register(topic, handler)
        return service

    def serve(self, name: X500Name, service: PeerService) -> str:
        """Serve service at the address the map gives for name (whoever the service really is)."""
        self.addresses[name] = self.harness.serve(service)
        return self.addresses[name]

    def client(
        self, member: Member, retry: RetryPolicy | None = None, transport: RawTransport | None = None
    ) -> PeerClient:
        return PeerClient(
            self.authenticator(member),
            self.network_map,
            transport or self.harness.transport,
            retry or RetryPolicy(sleep=lambda _: None),
        )

    def read_error(self, member: Member, status: int, body: bytes) -> tuple[str, str, dict[str, Any]]:
        """(type, message, details) of an error reply to member: plain for 413, sealed otherwise."""
        if status == 413:
            return parse_error_payload(decode(body, "reply"))
        envelope = self.authenticator(member).open(body)
        assert envelope.topic == "error"
        return parse_error_payload(envelope.payload)


@pytest.fixture
def world(network: BootedNetwork, harness: Harness) -> World:
    return World(network, harness, ManualClock(datetime.now(UTC)))


class Recorder:
    """A handler that counts its calls and echoes who sent what."""

    def __init__(self) -> None:
        self.calls: list[tuple[X500Name, Any]] = []

    def __call__(self, sender: X500Name, payload: Any) -> Any:
        self.calls.append((sender, payload))
        return {"sender": str(sender), "payload": payload}


class CountingTransport:
    """Wraps a transport; records each body posted and can fail the first few posts transiently."""

    def __init__(self, inner: RawTransport, fail_first: int = 0) -> None:
        self.inner = inner
        self.fail_first = fail_first
        self.bodies: list[bytes] = []

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        self.bodies.append(body)
        if len(self.bodies) <= self.fail_first:
            raise TransientTransportError(address, "connection reset (injected)")
        return self.inner.post(address, body, timeout)

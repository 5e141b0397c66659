"""The in-process adapter of the peer transport: the same bytes through the same PeerService.handle.

For simulations of many nodes in one process. It applies the HTTP app's size check before handing the
body over, so a test suite written against the RawTransport port holds for both adapters. A detached
or unknown address behaves like a peer that is down: TransientTransportError, which the client
retries. The timeout is not applied: the handler runs on the caller's thread. So does a simulated
crash of the peer (SimulatedCrash raised inside its handler): to the caller it is a dropped connection.
"""

from __future__ import annotations

import threading

from agent.errors import SimulatedCrash, TransientTransportError
from agent.p2p.service import PeerService


class InProcessNetwork:
    """Addresses to the services listening on them."""

    def __init__(self) -> None:
        self._services: dict[str, PeerService] = {}
        self._lock = threading.Lock()

    def attach(self, address: str, service: PeerService) -> None:
        """Listen on address; an address in use is refused, naming it."""
        with self._lock:
            if address in self._services:
                raise ValueError(f"address {address!r} is already attached")
            self._services[address] = service

    def detach(self, address: str) -> None:
        """Stop listening on address; its peers then see it as down."""
        with self._lock:
            if self._services.pop(address, None) is None:
                raise ValueError(f"address {address!r} is not attached")

    def service_at(self, address: str) -> PeerService | None:
        with self._lock:
            return self._services.get(address)

    @property
    def addresses(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._services))


class InProcessTransport:
    """RawTransport that delivers to an InProcessNetwork."""

    def __init__(self, network: InProcessNetwork) -> None:
        self.network = network

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        service = self.network.service_at(address)
        if service is None:
            raise TransientTransportError(address, "connection refused (nothing attached there)")
        if len(body) > service.max_message_size:
            return service.too_large(len(body))
        try:
            return service.handle(bytes(body))
        except SimulatedCrash as exc:
            # The peer "died" while handling our request; a real connection would just drop.
            raise TransientTransportError(address, f"connection lost ({exc})") from exc

"""The agent's listening sockets, bound before anything else starts.

`ledger-agent run` binds p2pAddress and managementAddress first: a host that does not resolve, an
address in use or not of this machine is then refused as a ConfigurationError naming the key and the
address (one line, exit 2), before the store is opened or a thread started. cheroot serves the
sockets bound here (agent.http_server); waitress, left to bind them itself, failed with a 33-line traceback
naming neither.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from agent.config import NodeConfig
from agent.errors import ConfigurationError

# Why a bind fails, in an operator's words; other errors keep the system's.
_BIND_REASONS = {
    errno.EADDRINUSE: "address already in use (another process listens there)",
    errno.EADDRNOTAVAIL: "not an address of this machine",
    errno.EACCES: "permission denied (a port below 1024 needs privileges)",
}


@dataclass(frozen=True)
class Listeners:
    """The bound (not yet listening) sockets of both endpoints."""

    peer: list[socket.socket]
    management: list[socket.socket]

    def close(self) -> None:
        for sock in (*self.peer, *self.management):
            sock.close()


def bind(key: str, address: tuple[str, int]) -> list[socket.socket]:
    """A socket bound to each address host resolves to (as a WSGI server would bind them), or a
    ConfigurationError naming key, the address and why."""
    host, port = address
    shown = f"{host}:{port}"
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]
    try:
        found = socket.getaddrinfo(
            name, port, socket.AF_UNSPEC, socket.SOCK_STREAM, socket.IPPROTO_TCP, socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        raise ConfigurationError(key, shown, f"host {name!r} does not resolve: {reason}") from exc
    bound: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, sockaddr in found:
            if (family, sockaddr) in seen:
                continue
            seen.add((family, sockaddr))
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart within TIME_WAIT
            sock.bind(sockaddr)
    except OSError as exc:
        for sock in bound:
            sock.close()
        reason = _BIND_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        raise ConfigurationError(key, shown, f"cannot listen there: {reason}") from exc
    return bound


def bind_listeners(config: NodeConfig) -> Listeners:
    """Both endpoints' sockets; the first bound is closed again if the second cannot be."""
    peer = bind("p2pAddress", config.p2p_address)
    try:
        management = bind("managementAddress", config.management_address)
    except BaseException:
        for sock in peer:
            sock.close()
        raise
    return Listeners(peer, management)

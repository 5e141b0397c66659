"""The HTTP(S) server of `ledger-agent run`: cheroot (CherryPy's production WSGI server).

cheroot rather than waitress because the peer endpoint needs mutual TLS and the management endpoint
HTTPS (docs/security.md): cheroot terminates TLS with Python's ssl module and hands the verified client
certificate to the app in the environ (SSL_CLIENT_CERT, as mod_ssl does), which the peer endpoint
checks against each message's sender. Idle keep-alive connections wait in cheroot's selector, not on a
worker thread, so a listener's threads serve requests only.

agent.listeners binds the sockets first (a clash is one line, exit 2, before anything starts); each
socket is served here by a cheroot server of its own, with the listener's thread count.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from agent.logs.refusals import refusal

log = logging.getLogger("ledger_agent.http")

# Connections waiting to be accepted: a burst of peers' first requests must not be refused.
_BACKLOG = 128
# A client that sends nothing (or half a request) for this long is disconnected.
_IDLE_TIMEOUT = 30.0


class _Server(wsgi.Server):
    """A cheroot server on a socket agent.listeners already bound."""

    def __init__(self, sock: socket.socket, app: Callable[..., Any], name: str, **kwargs: Any) -> None:
        self._adopted = sock
        self._name = name
        super().__init__(sock.getsockname()[:2], app, server_name=name, **kwargs)

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        # cheroot's prepare() binds here: it gets ours, bound and checked before the start.
        self.socket = self._adopted
        return self._adopted

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # A client dropping its connection or failing the TLS handshake is routine on a listener any
        # host can reach: logged as a refusal, so a flood of them is rate-limited (agent.logs.refusals).
        if traceback:
            log.log(max(level, logging.WARNING), "%s: %s", self._name, msg, exc_info=True)
        else:
            log.log(level, "%s: %s", self._name, msg, extra=refusal("ConnectionError", None))


class Listener:
    """One endpoint (peer or management) on its bound sockets, each served on a thread of its own."""

    def __init__(
        self,
        name: str,
        sockets: list[socket.socket],
        app: Callable[..., Any],
        *,
        threads: int,
        tls: ssl.SSLContext | None,
        certificate: tuple[str, str] | None = None,
        max_request_body_size: int = 0,
    ) -> None:
        self.name = name
        self.tls = tls is not None
        self._servers: list[_Server] = []
        for sock in sockets:
            server = _Server(
                sock,
                app,
                name,
                numthreads=threads,
                max=threads,
                request_queue_size=_BACKLOG,
                timeout=_IDLE_TIMEOUT,
            )
            server.max_request_body_size = max_request_body_size
            if tls is not None and certificate is not None:
                adapter = BuiltinSSLAdapter(*certificate)
                adapter.context = tls
                server.ssl_adapter = adapter
            self._servers.append(server)
        self._threads: list[threading.Thread] = []

    def start(self, failed: Callable[[BaseException], None]) -> None:
        """Serve on background threads; failed is called if a server stops on an error."""
        for server in self._servers:
            server.prepare()

            def serve(server: _Server = server) -> None:
                try:
                    server.serve()
                except BaseException as exc:
                    if server.ready:
                        failed(exc)

            thread = threading.Thread(target=serve, name=f"{self.name}-accept", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float) -> None:
        """Stop accepting and give the requests under way up to grace seconds to finish."""
        for server in self._servers:
            server.shutdown_timeout = grace
            server.stop()
        for thread in self._threads:
            thread.join(timeout=grace)

"""The HTTP(S) server of `ledger-agent run`: cheroot (CherryPy's production WSGI server).

cheroot rather than waitress because the peer endpoint needs mutual TLS and the management endpoint
HTTPS (docs/security.md): cheroot terminates TLS with Python's ssl module and hands the verified client
certificate to the app in the environ (SSL_CLIENT_CERT, as mod_ssl does), which the peer endpoint
checks against each message's sender. Idle keep-alive connections wait in cheroot's selector, not on a
worker thread, so a listener's threads serve requests only.

agent.listeners binds the sockets first (a clash is one line, exit 2, before anything starts); each
socket is served here by a cheroot server of its own, with the listener's thread count.

TLS handshakes are not done where cheroot does them, in the one thread that accepts every connection,
blocking for up to the socket timeout: there, a client that connected and sent nothing stopped the
whole listener for that long. Nor on a worker thread: a client opening connections ahead of its
requests (a pool) would hold every worker. Each listener has one thread that drives all its
handshakes without blocking (_Handshakes), each within HANDSHAKE_TIMEOUT, and hands a connection to
cheroot's selector once its handshake is done, with the client certificate in its environ entries.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import selectors
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from agent.logs.refusals import refusal

log = logging.getLogger("ledger_agent.http")

# Connections waiting to be accepted: a burst of peers' first requests must not be refused.
_BACKLOG = 128
# A client that sends nothing (or half a request, or half a handshake) for this long is disconnected.
_IDLE_TIMEOUT = 30.0
# A client has this long to complete its TLS handshake.
HANDSHAKE_TIMEOUT = 10.0
# Idle keep-alive connections kept open (each costs a file descriptor, no thread); cheroot's default
# of 10 closed every further connection after one request, and TLS made each reconnection a handshake.
_KEEP_ALIVE_CONNECTIONS = 1000


class _DeferredHandshake(BuiltinSSLAdapter):
    """cheroot's TLS adapter, with the handshake left to _Handshakes (see above)."""

    def __init__(self, context: ssl.SSLContext, certificate: tuple[str, str]) -> None:
        super().__init__(*certificate)
        self.context = context

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, {}  # the environ's TLS entries: _Handshakes fills them once it is done


class _Handshakes:
    """The TLS handshakes of a server's new connections, all on one thread, none of them blocking it."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._selector = selectors.DefaultSelector()
        self._new: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._deadlines: dict[Any, float] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"{server.label}-tls", daemon=True)
        self._thread.start()

    def add(self, conn: Any) -> None:
        self._new.put(conn)
        self._wake_write.send(b"\0")

    def stop(self) -> None:
        self._stopped = True
        self._wake_write.send(b"\0")
        self._thread.join(timeout=5)
        for conn in list(self._deadlines):
            conn.close()
        self._wake_read.close()
        self._wake_write.close()

    def _run(self) -> None:
        while not self._stopped:
            for key, _ in self._selector.select(timeout=1.0):
                if key.data is None:
                    self._drain()
                else:
                    self._step(key.data)
            now = time.monotonic()
            for conn, deadline in list(self._deadlines.items()):
                if deadline < now:
                    self._drop(conn, f"no TLS handshake within {HANDSHAKE_TIMEOUT:.0f} s")

    def _drain(self) -> None:
        try:
            while self._wake_read.recv(4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                conn = self._new.get_nowait()
            except queue.Empty:
                return
            conn.socket.setblocking(False)
            self._deadlines[conn] = time.monotonic() + HANDSHAKE_TIMEOUT
            self._step(conn)

    def _step(self, conn: Any) -> None:
        sock: ssl.SSLSocket = conn.socket
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._wait(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            self._drop(conn, f"TLS refused: {getattr(exc, 'reason', None) or exc}")
            return
        self._forget(conn)
        sock.settimeout(self._server.timeout)
        # The verified client certificate, as mod_ssl names it in the environ (the peer endpoint
        # checks each message's sender against it).
        der = sock.getpeercert(binary_form=True)
        conn.ssl_env = {"SSL_CLIENT_CERT": ssl.DER_cert_to_PEM_cert(der)} if der else {}
        conn.tls_ready = True
        self._server.put_conn(conn)  # to cheroot's selector: a worker takes it once a request comes

    def _wait(self, conn: Any, event: int) -> None:
        try:
            self._selector.modify(conn.socket, event, conn)
        except KeyError:
            self._selector.register(conn.socket, event, conn)

    def _forget(self, conn: Any) -> None:
        self._deadlines.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.socket)

    def _drop(self, conn: Any, reason: str) -> None:
        self._forget(conn)
        address = getattr(conn, "remote_addr", None)
        log.info(
            "%s: %s from %s", self._server.label, reason, address, extra=refusal("TlsHandshakeError", address)
        )
        conn.close()


class _Server(wsgi.Server):
    """A cheroot server on a socket agent.listeners already bound."""

    def __init__(self, sock: socket.socket, app: Callable[..., Any], name: str, **kwargs: Any) -> None:
        self._adopted = sock
        self.label = name
        self.handshakes: _Handshakes | None = None
        super().__init__(sock.getsockname()[:2], app, server_name=name, **kwargs)

    def process_conn(self, conn: Any) -> None:
        # A new TLS connection goes to the handshake thread first; it comes back through put_conn.
        if self.handshakes is not None and not getattr(conn, "tls_ready", False):
            self.handshakes.add(conn)
        else:
            super().process_conn(conn)

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        # cheroot's prepare() binds here: it gets ours, bound and checked before the start. What
        # cheroot's own binding would set, we set: TCP_NODELAY (inherited by accepted connections),
        # without which an answer written in two parts waits for the client's delayed ACK (40 ms).
        if self._adopted.family in (socket.AF_INET, socket.AF_INET6):
            self._adopted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = self._adopted
        return self._adopted

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        # A client dropping its connection or failing the TLS handshake is routine on a listener any
        # host can reach: logged as a refusal, so a flood of them is rate-limited (agent.logs.refusals).
        # A TLS error on a worker's read (an alert mid-connection) cheroot reports with a traceback;
        # it is a refusal like the others.
        failed = sys.exc_info()[1]
        if traceback and not isinstance(failed, ssl.SSLError):
            log.log(max(level, logging.WARNING), "%s: %s", self.label, msg, exc_info=True)
            return
        if isinstance(failed, ssl.SSLError):
            msg = f"TLS refused: {failed.reason or failed}"
        log.log(level, "%s: %s", self.label, msg, extra=refusal("ConnectionError", None))


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
            server.keep_alive_conn_limit = _KEEP_ALIVE_CONNECTIONS
            if tls is not None and certificate is not None:
                server.ssl_adapter = _DeferredHandshake(tls, certificate)
            self._servers.append(server)
        self._threads: list[threading.Thread] = []

    def start(self, failed: Callable[[BaseException], None]) -> None:
        """Serve on background threads; failed is called if a server stops on an error."""
        for server in self._servers:
            server.prepare()
            if server.ssl_adapter is not None:
                server.handshakes = _Handshakes(server)

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
            if server.handshakes is not None:
                server.handshakes.stop()
        for thread in self._threads:
            thread.join(timeout=grace)

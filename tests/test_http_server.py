"""agent.http_server: cheroot with TLS, where handshakes must not stall the listener."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agent import http_server
from agent.config import load_node_config
from agent.http_server import Listener
from agent.listeners import bind
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.network.tls import TlsFiles, management_server_context

THREADS = 2


def _hello(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
    start("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    net = init_network(tmp_path_factory.mktemp("srv") / "net", default_node_names(1), DEFAULT_NOTARY)
    return load_node_config(net.nodes[1].config).management_tls_files


@pytest.fixture
def served(files: TlsFiles) -> Iterator[tuple[int, ssl.SSLContext]]:
    """A TLS listener with THREADS workers on a loopback port, and a client context trusting it."""
    sockets = bind("managementAddress", ("127.0.0.1", 0))
    listener = Listener(
        "test",
        sockets,
        _hello,
        threads=THREADS,
        tls=management_server_context(files),
        certificate=(str(files.certificate), str(files.key)),
    )
    listener.start(lambda exc: None)
    try:
        yield sockets[0].getsockname()[1], ssl.create_default_context(cafile=str(files.trust_root))
    finally:
        listener.stop(5)


def _still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_connections_that_never_start_a_handshake_do_not_stop_other_clients(
    served: tuple[int, ssl.SSLContext],
) -> None:
    port, trusting = served
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(5 * THREADS)]
    try:
        reply = httpx.get(f"https://127.0.0.1:{port}/", verify=trusting, timeout=20)
        assert reply.text == "hello"
        # Answered while every silent connection is still held open, not after they were dropped.
        assert all(_still_open(s) for s in silent)
    finally:
        for s in silent:
            s.close()


def test_a_pool_may_open_more_connections_than_workers_before_it_sends(
    served: tuple[int, ssl.SSLContext],
) -> None:
    port, trusting = served
    pool = [trusting.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")]
    pool += [
        trusting.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
        for _ in range(3 * THREADS - 1)
    ]
    try:
        for tls in pool:
            tls.settimeout(20)
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        for tls in pool:
            answer = b""
            while not answer.endswith(b"0\r\n\r\n"):
                chunk = tls.recv(4096)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and b"hello" in answer
    finally:
        for tls in pool:
            tls.close()


def test_a_handshake_not_finished_in_time_is_dropped(
    served: tuple[int, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_server, "HANDSHAKE_TIMEOUT", 0.5)
    port, _ = served
    silent = socket.create_connection(("127.0.0.1", port))
    try:
        deadline = time.monotonic() + 20
        tick = threading.Event()
        while _still_open(silent):
            assert time.monotonic() < deadline, "the silent connection was never dropped"
            tick.wait(0.05)
    finally:
        silent.close()


def test_plain_http_to_a_tls_listener_is_dropped_unread(served: tuple[int, ssl.SSLContext]) -> None:
    port, _ = served
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"http://127.0.0.1:{port}/", auth=("operator", "secret"))


def test_the_listening_socket_has_no_nagle_delay(files: TlsFiles) -> None:
    """cheroot sets TCP_NODELAY when it binds; on the sockets agent.listeners bound, we must: without
    it an answer in two writes waited for the client's delayed ACK, 40 ms a request (measured: Ledger
    Recovery's one-request-a-transaction baseline went from 27 to 201 tx/s)."""
    sockets = bind("p2pAddress", ("127.0.0.1", 0))
    listener = Listener("test", sockets, _hello, threads=1, tls=None)
    listener.start(lambda exc: None)
    try:
        assert sockets[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.stop(5)

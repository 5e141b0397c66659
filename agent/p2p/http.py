"""The HTTP adapter of the peer transport: an httpx client and a Flask app around PeerService.

POST /p2p/v1/message carries one sealed message each way (application/cbor); GET /p2p/v1/health
answers 200. Between agents it runs over mutual TLS (agent.network.tls): the transport, given a TLS
context, speaks https and asks each address for the TLS name of the party the network map puts there;
the app, served with a client certificate required, refuses a message whose sender is not the party
that certificate names. The size limit is enforced before the body is read: from Content-Length when there is
one, else by reading a chunked body only up to one byte past the limit. A body with neither is refused
(411) rather than read until the peer stops.

`ledger-agent run` serves the app with cheroot (agent.http_server); ThreadedServer below runs
werkzeug's development server on a thread, for in-process tests only.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from functools import lru_cache
from types import TracebackType
from typing import IO

import httpx
from flask import Flask, Response, request
from werkzeug.serving import BaseWSGIServer, make_server

from agent.errors import MalformedMessageError, MessageTooLargeError, PeerError, TransientTransportError
from agent.ledger.identity import X500Name
from agent.network.network_map import NetworkMap
from agent.network.tls import TlsFiles, name_of_peer_certificate, peer_client_context, peer_tls_name
from agent.p2p.envelope import CONTENT_TYPE
from agent.p2p.service import PeerService, plain_error

MESSAGE_PATH = "/p2p/v1/message"
HEALTH_PATH = "/p2p/v1/health"
LENGTH_REQUIRED = 411
DEFAULT_MAX_RESPONSE = 10 * 1024 * 1024
_CHUNK = 64 * 1024
# What a gateway in front of a peer answers when the peer is down: worth another try, like a refusal.
_GATEWAY_FAILURES = frozenset({502, 503, 504})


def message_url(address: str, *, tls: bool = False) -> str:
    """The message endpoint of a map address ("host:port", or a URL with its scheme)."""
    scheme = "https" if tls else "http"
    base = address.rstrip("/") if "://" in address else f"{scheme}://{address}"
    return base + MESSAGE_PATH


# Headers and body go out as two writes; without TCP_NODELAY, Nagle's algorithm holds the second
# until the server's delayed ACK (40 ms on Linux) and every message costs that.
NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class HttpTransport:
    """RawTransport over HTTP: one pooled httpx client; close() it (or use it as a context manager).

    trust_env is off by default: peer addresses come from the signed network map, and a proxy set in
    the environment should not silently reroute ledger traffic.

    With tls (agent.network.tls.peer_client_context), server_name gives the TLS name expected at an
    address (peer_tls_name of the party the network map puts there): the handshake fails, before the
    request is sent, unless the server's certificate from the network's root carries that name.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_response_size: int = DEFAULT_MAX_RESPONSE,
        trust_env: bool = False,
        tls: ssl.SSLContext | None = None,
        server_name: Callable[[str], str] | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if tls is not None and server_name is None:
            raise ValueError("a TLS transport needs server_name: the name each address must prove")
        self.max_response_size = max_response_size
        self._tls = tls is not None
        self._server_name = server_name
        self._client = client or httpx.Client(
            timeout=timeout,
            trust_env=trust_env,
            transport=httpx.HTTPTransport(socket_options=NO_DELAY, verify=tls if tls is not None else True),
        )

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """(status, reply bytes); TransientTransportError for refused, reset or timed-out connections."""
        headers = {"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE}
        extensions = {}
        if self._tls and self._server_name is not None:
            extensions["sni_hostname"] = self._server_name(address)
        try:
            with self._client.stream(
                "POST",
                message_url(address, tls=self._tls),
                content=body,
                headers=headers,
                timeout=timeout,
                extensions=extensions,
            ) as response:
                if response.status_code in _GATEWAY_FAILURES:
                    raise TransientTransportError(address, f"HTTP {response.status_code} from a gateway")
                return response.status_code, self._read(response)
        except httpx.ConnectError as exc:
            if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # httpx keeps only the ssl error's text
                # Not the party the map names there (or not of this network): retrying cannot help.
                raise PeerError(f"TLS refused at {address}: {exc}") from exc
            raise TransientTransportError(address, f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientTransportError(address, f"{type(exc).__name__}: {exc}") from exc
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            raise PeerError(f"cannot post to {address}: {type(exc).__name__}: {exc}") from exc

    def _read(self, response: httpx.Response) -> bytes:
        # A reply is bounded like a request: a peer must not be able to make us buffer without end.
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_response_size:
            raise MessageTooLargeError(int(declared), self.max_response_size)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_response_size:
                raise MessageTooLargeError(size, self.max_response_size, at_least=True)
            chunks.append(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpTransport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def tls_transport(files: TlsFiles, network_map: NetworkMap) -> HttpTransport:
    """A transport to the peers of network_map over mutual TLS with files' certificate: each address
    must prove the TLS name of the party the map puts there."""
    return HttpTransport(
        tls=peer_client_context(files),
        server_name=lambda address: peer_tls_name(network_map.at_address(address).name),
    )


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _cbor(status: int, body: bytes) -> Response:
    return Response(body, status=status, content_type=CONTENT_TYPE)


# The client certificates of the peers: a handful, each parsed once, not per message.
_certificate_name = lru_cache(maxsize=256)(name_of_peer_certificate)


def create_peer_app(service: PeerService, max_message_size: int | None = None) -> Flask:
    """A WSGI app serving the peer protocol for service; the limit defaults to the service's.

    Served over mutual TLS, the server puts the verified client certificate in the environ
    (SSL_CLIENT_CERT, as mod_ssl and cheroot do) and each message must come from the party it names.
    """
    limit = service.max_message_size if max_message_size is None else max_message_size
    app = Flask(__name__)

    @app.post(MESSAGE_PATH)
    def message() -> Response:
        declared = request.content_length
        source = request.remote_addr  # names the client in the log, whose refusals are rate-limited
        if declared is not None and declared > limit:
            # Refused from the header alone: not one byte of the body is read.
            return _cbor(*service.too_large(declared, source=source))
        if declared is None and not request.environ.get("wsgi.input_terminated"):
            refusal = MalformedMessageError("a Content-Length header (or a chunked body) is required")
            return _cbor(LENGTH_REQUIRED, plain_error(refusal))
        # With a Content-Length the stream stops there; a chunked one is cut one byte past the limit.
        body = _read_at_most(request.stream, limit + 1)
        if len(body) > limit:
            return _cbor(*service.too_large(len(body), at_least=True, source=source))
        certificate = request.environ.get("SSL_CLIENT_CERT")
        tls_peer: X500Name | None = _certificate_name(certificate) if certificate else None
        return _cbor(*service.handle(body, source=source, tls_peer=tls_peer))

    @app.get(HEALTH_PATH)
    def health() -> Response:
        return Response("ok\n", status=200, content_type="text/plain")

    return app


class ThreadedServer:
    """werkzeug's server on a daemon thread, for tests and the local demo; not for production.

    Use as a context manager: the address ("127.0.0.1:port") is ready on entry, the server stopped
    and its socket closed on exit.
    """

    def __init__(self, app: Flask, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def address(self) -> str:
        return f"{self._server.host}:{self._server.port}"

    def start(self) -> str:
        self._thread.start()
        return self.address

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

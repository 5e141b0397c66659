"""The sending end of the peer protocol, on a transport port with an HTTP and an in-process adapter.

A request is sealed for the peer, posted to its address from the network map, and its reply opened:
it must be sealed by that very peer and answer our nonce, or it is refused like any other message.
Only transient transport failures are retried, and each attempt is sealed afresh (new nonce, new
timestamp): resending the same bytes would be refused as a replay, and a refusal is an answer, not a
failure, so it is not retried. One refusal is the exception: "sealed before this receiver's start"
(`sealed_before_start`), which a peer that restarted a moment ago gives when our clock lags its own;
the handler never saw the message, and the same request sealed a little later passes.

A retry after a timeout may deliver a request the peer already handled (the reply was lost, not the
request); handlers must therefore be idempotent, as recording and notarising are.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from agent.errors import (
    IdentityError,
    MalformedMessageError,
    MessageTooLargeError,
    PeerRequestError,
    PeerUnreachableError,
    SerializationError,
    StaleMessageError,
    TransientTransportError,
)
from agent.ledger.identity import X500Name
from agent.ledger.serialization import decode
from agent.network.network_map import NetworkMap
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.envelope import ERROR_TOPIC, REPLY_TOPIC, Envelope, parse_error_payload, rebuild_error
from agent.p2p.retry import RetryPolicy

log = logging.getLogger(__name__)

OK = 200
CONFLICT = 409
TOO_LARGE = 413


class RawTransport(Protocol):
    """Carries sealed bytes to an address and brings back (status, reply bytes)."""

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """Raises TransientTransportError for connection refused or reset and for timeouts."""
        ...


class PeerClient:
    """Requests to peers named in the network map, as the authenticator's identity."""

    def __init__(
        self,
        authenticator: MessageAuthenticator,
        network_map: NetworkMap,
        transport: RawTransport,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.network_map = network_map
        self.transport = transport
        self.retry = retry or RetryPolicy()

    def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any:
        """The peer's reply payload, or the peer's refusal raised as a local error.

        Raises IdentityError (peer not in the map), MessageTooLargeError (over maxMessageSize, not
        sent), the rebuilt domain error for known types (NotaryConflictError, ...), PeerRequestError
        for any other refusal, PeerUnreachableError once the retries are spent, and a
        MessageRejectedError when the reply itself does not check out.
        """
        addresses = self.network_map.node(peer).addresses
        if not addresses:
            raise IdentityError(f"{peer} has no address in the network map")
        limit = self.network_map.parameters.max_message_size
        attempts = 0

        def attempt() -> Any:
            nonlocal attempts
            # Several addresses: the next attempt tries the next one.
            address = addresses[attempts % len(addresses)]
            attempts += 1
            envelope, sealed = self.authenticator.seal_envelope(peer, topic, payload)
            if len(sealed) > limit:
                raise MessageTooLargeError(len(sealed), limit)
            status, body = self.transport.post(address, sealed, timeout)
            return self._reply(peer, envelope, status, body)

        def on_retry(number: int, error: BaseException, delay: float) -> None:
            log.warning("%s: attempt %d failed (%s); retrying in %.2fs", peer, number, error, delay)

        try:
            return self.retry.call(
                attempt,
                retry_on=(TransientTransportError, PeerRequestError),
                retry_if=lambda exc: isinstance(exc, TransientTransportError) or sealed_before_start(exc),
                on_retry=on_retry,
            )
        except TransientTransportError as exc:
            raise PeerUnreachableError(str(peer), attempts, exc) from exc

    def _reply(self, peer: X500Name, request: Envelope, status: int, body: bytes) -> Any:
        if status == TOO_LARGE:
            plain = _plain_error(body)
            if plain is not None:
                error_type, message, details = plain
                raise PeerRequestError(str(peer), error_type, message, details)
        try:
            envelope = self.authenticator.open(body, expect_sender=peer, expect_reply_to=request.nonce)
        except MalformedMessageError as exc:
            raise MalformedMessageError(f"reply from {peer} (HTTP {status}): {exc.reason}") from None
        if envelope.topic == REPLY_TOPIC and status == OK:
            return envelope.payload
        if envelope.topic != ERROR_TOPIC or status == OK:
            raise MalformedMessageError(f"reply from {peer}: topic {envelope.topic!r} with HTTP {status}")
        error_type, message, details = parse_error_payload(envelope.payload)
        remote = PeerRequestError(str(peer), error_type, message, details)
        # Only a domain refusal (409) is rebuilt: a NotaryConflictError must stay one across the wire.
        local = rebuild_error(error_type, details) if status == CONFLICT else None
        if local is not None:
            raise local from remote
        raise remote


def sealed_before_start(exc: BaseException) -> bool:
    """The peer refused our message as stamped before it started (it restarted, our clock lags)."""
    return (
        isinstance(exc, PeerRequestError)
        and exc.error_type == StaleMessageError.__name__
        and exc.error_details.get("before_start") is True
    )


def _plain_error(body: bytes) -> tuple[str, str, dict[str, Any]] | None:
    """The unsealed error map a 413 carries, or None when the body is something else."""
    try:
        value = decode(body, "reply")
    except SerializationError:
        return None
    if not isinstance(value, dict):
        return None
    return parse_error_payload(value)

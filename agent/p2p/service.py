"""The receiving end of the peer protocol, whatever carries the bytes: open, dispatch by topic, seal a reply.

Both adapters (HTTP and in-process) hand the raw body to handle() and send back what it returns, so
the protocol's behaviour does not depend on the transport. Status codes follow HTTP:

    200  the handler's return value, sealed as topic "reply"
    400  the message itself is refused (malformed, unknown sender, bad signature, wrong recipient,
         stale, replayed)
    404  no handler for the topic (UnknownTopicError), unless the flow hospital keeps it for
         observation (on_unknown_topic): then 409 KeptForObservationError, and the sender asks again
    409  the handler refused with an AgentError (a double spend, a transaction that does not verify)
    413  over the network's maxMessageSize (MessageTooLargeError)
    500  anything else: "internal error", never a stack trace; the details stay in our log

Every reply is sealed by us, addressed to the claimed sender and in reply to its nonce, so the sender
can check it came from the peer it asked. Two replies cannot be sealed, because there is no sender to
address yet, and go out as a plain CBOR error map: 413 (refused from the declared length, before the
body is read) and 400 for bytes that do not even parse as a message. A client trusts neither beyond
"refused".
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from agent.errors import (
    AgentError,
    DatabaseError,
    KeptForObservationError,
    MalformedMessageError,
    MessageRejectedError,
    MessageTooLargeError,
    SenderCertificateMismatchError,
    SerializationError,
    UnknownTopicError,
)
from agent.ledger.identity import X500Name
from agent.ledger.serialization import encode
from agent.logs.refusals import refusal
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.envelope import (
    ERROR_TOPIC,
    INTERNAL_ERROR_MESSAGE,
    INTERNAL_ERROR_TYPE,
    REPLY_TOPIC,
    Envelope,
    error_details,
    error_payload,
    parse_sealed,
)

log = logging.getLogger(__name__)

Handler = Callable[[X500Name, Any], Any]
UnknownTopicHook = Callable[[X500Name, str], str | None]
"""(sender, topic) -> why the message is kept for observation, or None to refuse it (404)."""

OK = 200
BAD_REQUEST = 400
NOT_FOUND = 404
CONFLICT = 409
TOO_LARGE = 413
INTERNAL = 500


class PeerService:
    """Topic handlers behind one identity's authenticator."""

    def __init__(self, authenticator: MessageAuthenticator, max_message_size: int) -> None:
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        self.authenticator = authenticator
        self.max_message_size = max_message_size
        self._handlers: dict[str, Handler] = {}
        self._unknown_topic: UnknownTopicHook | None = None
        self._lock = threading.Lock()
        # Messages refused before any handler saw them, by error class, since the start: what the
        # management plane exports (ledgeragent_peer_messages_refused_total), a sign of an attack or
        # of a member whose clock or keys went wrong.
        self._refused: Counter[str] = Counter()

    def refused_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._refused)

    def _count_refusal(self, exc: BaseException) -> None:
        with self._lock:
            self._refused[type(exc).__name__] += 1

    def on_unknown_topic(self, hook: UnknownTopicHook) -> None:
        """Who decides about a message on a topic nobody handles (the flow hospital)."""
        self._unknown_topic = hook

    def register(self, topic: str, handler: Handler) -> None:
        """Serve topic with handler(sender, payload) -> reply payload; a topic is served once."""
        if not topic or topic in (REPLY_TOPIC, ERROR_TOPIC):
            raise ValueError(f"topic {topic!r} is reserved or empty")
        with self._lock:
            if topic in self._handlers:
                raise ValueError(f"a handler for topic {topic!r} is already registered")
            self._handlers[topic] = handler

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))

    def too_large(
        self, declared_length: int, *, at_least: bool = False, source: str | None = None
    ) -> tuple[int, bytes]:
        """The 413 reply, unsealed: the body is not read, so there is no sender to address it to."""
        exc = MessageTooLargeError(declared_length, self.max_message_size, at_least=at_least)
        log.warning("refused a message: %s", exc, extra=refusal(type(exc).__name__, source))
        self._count_refusal(exc)
        return TOO_LARGE, plain_error(exc)

    def handle(
        self, body: bytes, *, source: str | None = None, tls_peer: X500Name | None = None
    ) -> tuple[int, bytes]:
        """Status and reply bytes for one request body; never raises for anything a peer can send.

        source (the client's address, when the transport knows it) names where a refusal came from
        in the log, whose refusals are rate-limited by kind and source (agent.logs.refusals).
        tls_peer: the party the connection's verified TLS client certificate names; a message claiming
        another sender is refused before its signature is checked or its nonce remembered.
        """
        if len(body) > self.max_message_size:
            return self.too_large(len(body), source=source)
        try:
            sealed = parse_sealed(body)
        except MalformedMessageError as exc:
            log.warning("refused a message: %s", exc, extra=refusal(type(exc).__name__, source))
            self._count_refusal(exc)
            return BAD_REQUEST, plain_error(exc)
        request = sealed.envelope
        # Before the signature is checked the sender is only claimed: the address is the better name.
        claimed = source or str(request.sender)
        try:
            if tls_peer is not None and request.sender != tls_peer:
                raise SenderCertificateMismatchError(str(request.sender), str(tls_peer))
            envelope = self.authenticator.verify(sealed)
        except MessageRejectedError as exc:
            log.warning(
                "refused a message on topic %r: %s",
                request.topic,
                exc,
                extra=refusal(type(exc).__name__, claimed),
            )
            self._count_refusal(exc)
            return BAD_REQUEST, self._error(request, type(exc).__name__, str(exc), error_details(exc))
        handler = self._handlers.get(envelope.topic)
        if handler is None and self._unknown_topic is not None:
            try:
                reason = self._unknown_topic(envelope.sender, envelope.topic)
            except Exception:
                return self._internal(envelope, "could not be kept for observation")
            if reason is not None:
                kept = KeptForObservationError(str(self.authenticator.identity.name), reason)
                log.warning(
                    "kept a message from %s for observation: %s",
                    envelope.sender,
                    reason,
                    extra=refusal(type(kept).__name__, str(envelope.sender)),
                )
                return CONFLICT, self._error(envelope, type(kept).__name__, str(kept), kept.details())
        if handler is None:
            unknown = UnknownTopicError(envelope.topic)
            log.warning(
                "refused a message from %s: %s",
                envelope.sender,
                unknown,
                extra=refusal(type(unknown).__name__, str(envelope.sender)),
            )
            self._count_refusal(unknown)
            return NOT_FOUND, self._error(envelope, type(unknown).__name__, str(unknown), unknown.details())
        try:
            result = handler(envelope.sender, envelope.payload)
        except DatabaseError:
            # The store failed: the driver's text (tables, keys) stays in our log, not in a peer's hands.
            return self._internal(envelope, "failed")
        except AgentError as exc:
            # A refusal of the domain: the peer gets the type, the message and the details to rebuild it.
            log.info(
                "topic %r from %s refused: %s",
                envelope.topic,
                envelope.sender,
                exc,
                extra=refusal(type(exc).__name__, str(envelope.sender)),
            )
            return CONFLICT, self._error(envelope, type(exc).__name__, str(exc), error_details(exc))
        except Exception:
            return self._internal(envelope, "failed")
        try:
            return OK, self.authenticator.seal(envelope.sender, REPLY_TOPIC, result, envelope.nonce)
        except SerializationError:
            return self._internal(envelope, "returned a value that is not plain data")

    def _internal(self, request: Envelope, what: str) -> tuple[int, bytes]:
        # The traceback goes to our log only; the peer learns that it failed, and the nonce to quote.
        log.exception(
            "handler for topic %r from %s %s (request nonce %s)",
            request.topic,
            request.sender,
            what,
            request.nonce.hex(),
        )
        return INTERNAL, self._error(request, INTERNAL_ERROR_TYPE, INTERNAL_ERROR_MESSAGE, None)

    def _error(
        self, request: Envelope, error_type: str, message: str, details: dict[str, Any] | None
    ) -> bytes:
        payload = error_payload(error_type, message, details)
        return self.authenticator.seal(request.sender, ERROR_TOPIC, payload, request.nonce)


def plain_error(exc: AgentError) -> bytes:
    """An error map in plain CBOR, for the replies that cannot be sealed (see the module docstring)."""
    return encode(error_payload(type(exc).__name__, str(exc), error_details(exc)))

"""The peer protocol's wire format: the envelope, its sealed bytes, and the error replies.

A sealed message is the canonical CBOR of ``[1, body, signature]``. The body is itself canonical CBOR,
a map of the envelope's fields (names printed, the timestamp in epoch milliseconds), and it is what is
signed, behind a context prefix so that a message signature can never pass for a signature the same
identity key gives elsewhere (transaction ids, for one). Keeping the body as bytes inside the wire form
means the receiver verifies exactly the bytes the sender signed, never a re-encoding of them.

Error replies carry ``{"type", "message", "details"}``. For the domain errors a peer must be able to
act on (a double spend, a transaction that does not verify) ``details`` holds what rebuilds them on the
other side; the codecs for those live here, next to the format, so that both ends agree on the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.clock import from_epoch_ms, to_epoch_ms
from agent.errors import (
    AgentError,
    AmountsNotConservedError,
    ContractRejection,
    InvalidNameError,
    InvalidSignatureError,
    InvalidTransactionError,
    MalformedMessageError,
    MissingSignatureError,
    NotaryConflictError,
    NotaryRejectionError,
    SerializationError,
    SignatureError,
    TransactionResolutionError,
    TransactionVerificationError,
    UnknownContractError,
)
from agent.ledger.identity import X500Name
from agent.ledger.serialization import check_plain, decode, encode

WIRE_VERSION = 1
NONCE_SIZE = 16
SIGNING_CONTEXT = b"ledger-agent/p2p/v1\x00"
REPLY_TOPIC = "reply"
ERROR_TOPIC = "error"
CONTENT_TYPE = "application/cbor"

_FIELDS = frozenset({"sender", "recipient", "timestamp", "nonce", "topic", "payload", "in_reply_to"})


@dataclass(frozen=True)
class Envelope:
    """One message between agents: who to whom, when, which topic, and the plain-data payload."""

    sender: X500Name
    recipient: X500Name
    timestamp: datetime
    nonce: bytes
    topic: str
    payload: Any
    in_reply_to: bytes | None = None

    def body(self) -> bytes:
        """The canonical bytes the sender signs."""
        return encode(
            {
                "sender": str(self.sender),
                "recipient": str(self.recipient),
                "timestamp": to_epoch_ms(self.timestamp),
                "nonce": self.nonce,
                "topic": self.topic,
                "payload": self.payload,
                "in_reply_to": self.in_reply_to,
            }
        )


def signing_input(body: bytes) -> bytes:
    """What the signature covers: the body behind the protocol's context prefix."""
    return SIGNING_CONTEXT + body


@dataclass(frozen=True)
class SealedMessage:
    """A parsed but not yet verified message: the claimed envelope, the signed body and the signature."""

    envelope: Envelope
    body: bytes
    signature: bytes


def wire(body: bytes, signature: bytes) -> bytes:
    return encode([WIRE_VERSION, body, signature])


def parse_sealed(data: bytes) -> SealedMessage:
    """Decode a sealed message without trusting it; MalformedMessageError says what is wrong."""
    try:
        outer = decode(data, "message")
    except SerializationError as exc:
        raise MalformedMessageError(str(exc)) from None
    if not isinstance(outer, list) or len(outer) != 3:
        raise MalformedMessageError("expected [version, body, signature]")
    version, body, signature = outer
    if version != WIRE_VERSION or isinstance(version, bool):
        raise MalformedMessageError(f"unsupported version {version!r}; this agent speaks {WIRE_VERSION}")
    if not isinstance(body, bytes) or not isinstance(signature, bytes):
        raise MalformedMessageError("body and signature must be byte strings")
    return SealedMessage(_parse_body(body), body, signature)


def _parse_body(body: bytes) -> Envelope:
    try:
        fields = decode(body, "body")
    except SerializationError as exc:
        raise MalformedMessageError(str(exc)) from None
    if not isinstance(fields, dict) or set(fields) != _FIELDS:
        raise MalformedMessageError(f"body must be a map of exactly {', '.join(sorted(_FIELDS))}")
    try:
        sender = X500Name.parse(_typed(fields, "sender", str))
        recipient = X500Name.parse(_typed(fields, "recipient", str))
    except InvalidNameError as exc:
        raise MalformedMessageError(str(exc)) from None
    millis = _typed(fields, "timestamp", int)
    try:
        timestamp = from_epoch_ms(millis)
    except SerializationError:
        raise MalformedMessageError(f"timestamp {millis} is out of range") from None
    nonce = _nonce(fields, "nonce")
    topic = _typed(fields, "topic", str)
    if not topic:
        raise MalformedMessageError("topic is empty")
    in_reply_to = None if fields["in_reply_to"] is None else _nonce(fields, "in_reply_to")
    return Envelope(sender, recipient, timestamp, nonce, topic, fields["payload"], in_reply_to)


def _typed(fields: dict[str, Any], name: str, kind: type) -> Any:
    value = fields[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise MalformedMessageError(f"{name} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _nonce(fields: dict[str, Any], name: str) -> bytes:
    value: bytes = _typed(fields, name, bytes)
    if len(value) != NONCE_SIZE:
        raise MalformedMessageError(f"{name} must be {NONCE_SIZE} bytes, got {len(value)}")
    return value


# -- error replies --

INTERNAL_ERROR_TYPE = "InternalError"
INTERNAL_ERROR_MESSAGE = "internal error"


def _verification_details(exc: TransactionVerificationError) -> dict[str, Any]:
    details: dict[str, Any] = {"tx_id": exc.tx_id, "reason": exc.reason}
    for extra in ("key_hex", "contract"):
        if hasattr(exc, extra):
            details[extra] = getattr(exc, extra)
    if hasattr(exc, "missing"):
        details["missing"] = list(exc.missing)
    return details


def _str(details: dict[str, Any], key: str) -> str:
    value = details[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _strings(details: dict[str, Any], key: str) -> list[str]:
    value = details[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"{key} is not a list of strings")
    return value


def _conflicts(details: dict[str, Any]) -> dict[str, str]:
    value = details["conflicts"]
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise TypeError("conflicts is not a map of strings")
    return value


def _tx_reason(cls: type[TransactionVerificationError]) -> Callable[[dict[str, Any]], AgentError]:
    def build(d: dict[str, Any]) -> AgentError:
        return cls(_str(d, "tx_id"), _str(d, "reason"))

    return build


def _contract_rejection(cls: type[ContractRejection]) -> Callable[[dict[str, Any]], AgentError]:
    def build(d: dict[str, Any]) -> AgentError:
        # ContractRejection keeps the reason with its "contract X rejected it: " prefix; peel it off.
        contract = _str(d, "contract")
        reason = _str(d, "reason").removeprefix(f"contract {contract} rejected it: ")
        return cls(_str(d, "tx_id"), contract, reason)

    return build


@dataclass(frozen=True)
class ErrorCodec:
    """How one error class travels: the plain details it sends and how the receiver rebuilds it."""

    details: Callable[[Any], dict[str, Any]]
    rebuild: Callable[[dict[str, Any]], AgentError]


# Keyed by class name, the "type" of an error reply. Only these are rebuilt as local errors; any other
# type arrives as PeerRequestError. Extend with register_error_codec.
ERROR_CODECS: dict[str, ErrorCodec] = {
    "NotaryConflictError": ErrorCodec(
        lambda e: {"tx_id": e.tx_id, "conflicts": dict(e.conflicts)},
        lambda d: NotaryConflictError(_str(d, "tx_id"), _conflicts(d)),
    ),
    "NotaryRejectionError": ErrorCodec(
        lambda e: {"tx_id": e.tx_id, "reason": e.reason},
        lambda d: NotaryRejectionError(_str(d, "tx_id"), _str(d, "reason")),
    ),
    **{
        cls.__name__: ErrorCodec(_verification_details, _tx_reason(cls))
        for cls in (TransactionVerificationError, InvalidTransactionError, SignatureError)
    },
    "InvalidSignatureError": ErrorCodec(
        _verification_details, lambda d: InvalidSignatureError(_str(d, "tx_id"), _str(d, "key_hex"))
    ),
    "MissingSignatureError": ErrorCodec(
        _verification_details, lambda d: MissingSignatureError(_str(d, "tx_id"), _strings(d, "missing"))
    ),
    "UnknownContractError": ErrorCodec(
        _verification_details, lambda d: UnknownContractError(_str(d, "tx_id"), _str(d, "contract"))
    ),
    "ContractRejection": ErrorCodec(_verification_details, _contract_rejection(ContractRejection)),
    "AmountsNotConservedError": ErrorCodec(
        _verification_details, _contract_rejection(AmountsNotConservedError)
    ),
    "TransactionResolutionError": ErrorCodec(
        _verification_details,
        lambda d: TransactionResolutionError(_str(d, "tx_id"), _strings(d, "missing")),
    ),
}


def register_error_codec(name: str, codec: ErrorCodec) -> None:
    """Teach both ends a new rebuildable error; a name registered twice is refused, naming it."""
    if name in ERROR_CODECS:
        raise ValueError(f"an error codec for {name!r} is already registered")
    ERROR_CODECS[name] = codec


def error_details(exc: BaseException) -> dict[str, Any] | None:
    """The plain data that travels with an error: its own details(), else its codec's, else None."""
    codec = ERROR_CODECS.get(type(exc).__name__)
    own = getattr(exc, "details", None)
    try:
        if codec is not None:
            details = codec.details(exc)
        elif callable(own):
            details = own()
        else:
            return None
        check_plain(details, "details")
    except (AgentError, AttributeError, TypeError):
        # Details are a courtesy; an error that cannot describe itself still travels, by type and message.
        return None
    return dict(details)


def error_payload(error_type: str, message: str, details: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": error_type, "message": message, "details": details}


def parse_error_payload(payload: Any) -> tuple[str, str, dict[str, Any]]:
    """(type, message, details) of an error reply; MalformedMessageError when it is not one."""
    if not isinstance(payload, dict) or not {"type", "message"} <= set(payload):
        raise MalformedMessageError("an error reply must carry type and message")
    error_type, message, details = payload["type"], payload["message"], payload.get("details")
    if not isinstance(error_type, str) or not isinstance(message, str):
        raise MalformedMessageError("an error reply's type and message must be strings")
    if details is not None and not isinstance(details, dict):
        raise MalformedMessageError("an error reply's details must be a map")
    return error_type, message, details or {}


def rebuild_error(error_type: str, details: dict[str, Any]) -> AgentError | None:
    """The local error a peer's reply describes, for the types with a codec; None otherwise."""
    codec = ERROR_CODECS.get(error_type)
    if codec is None:
        return None
    try:
        return codec.rebuild(details)
    except (KeyError, TypeError, ValueError, AgentError):
        # A peer's details that do not fit: report the reply as it came rather than guess.
        return None

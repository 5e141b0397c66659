"""The agent's errors: one root, a tree a newcomer can read in one screen.

    AgentError
    ├── ConfigurationError            a config key has a bad or unknown value
    ├── InvalidArgumentError          an operator's argument outside what is allowed (field, value, allowed)
    ├── InvalidNameError              an X.500 name breaks CordaX500Name's rules
    ├── SerializationError            bytes that are not a well-formed transaction (or part of one)
    │   └── ReconciliationCodecError      set-reconciliation symbols: truncated, oversized, wrong version
    ├── IdentityError                 a certificate, key or network map that does not check out
    ├── TransactionVerificationError  a transaction that must not be recorded
    │   ├── InvalidTransactionError       its structure breaks a ledger rule
    │   ├── SignatureError
    │   │   ├── InvalidSignatureError         a signature does not verify
    │   │   └── MissingSignatureError         a required signer has not signed
    │   ├── UnknownContractError          a state names a contract nobody registered
    │   ├── ContractRejection             a contract's rules refuse it
    │   │   └── AmountsNotConservedError
    │   └── TransactionResolutionError    its back-chain is not all here
    ├── NotaryError
    │   ├── NotaryConflictError           an input was already consumed (a double spend)
    │   └── NotaryRejectionError          wrong notary, time window out of range, ...
    ├── StoreError
    │   ├── TransactionNotFoundError
    │   ├── MigrationError
    │   └── DatabaseError                 the database refused or failed a statement (code, constraint, table)
    │       ├── DeadlockError                 picked as a deadlock or serialization victim: rolled back, retry
    │       ├── ConstraintViolationError      a unique, primary or foreign key, not-null or check constraint
    │       └── TransientConnectionError      connection refused, lost or terminated; SQLite busy: retry later
    ├── ReconciliationError           LedgerSync (names as in the reference)
    │   ├── ReconciliationAlreadyScheduledException
    │   ├── CannotReconcileWithSelfException
    │   ├── MaxIncomingSessionsExceededException
    │   ├── ReconciliationRateLimitExceededException
    │   ├── ReconciliationSessionLostError    the responder restarted since the session began: begin again
    │   └── LedgerGraphNotReadyException
    ├── TransactionAccessDeniedError  a peer asked for a transaction it may not see
    ├── TooManyLoginAttemptsError     an address failed too many management logins: refused until its back-off ends
    ├── FinalityError                 finality cannot go on (a bad message, an unusable receiver)
    │   ├── ReceiverBusyError             the receiver's flow is still at work: ask again later
    │   └── FlowRecoveryException         finality recovery could not recover (a receiver alone: not notarised)
    ├── LedgerRecoveryException       Ledger Recovery cannot go on (a peer unreachable); what it did is kept
    │   └── LedgerRecoveryInProgressError new flows held until a recovery completes (holdNewFlowsUntilRecovered)
    ├── HospitalizeFlowError          a step asks to be kept for observation (Corda's HospitalizeFlowException)
    ├── KeptForObservationError       the peer keeps our message's flow in its hospital: ask again later
    └── PeerError                     a message between agents went wrong
        ├── MessageRejectedError          the receiver refused the message itself (HTTP 400/404/413)
        │   ├── MalformedMessageError         not a well-formed sealed message
        │   ├── UnknownSenderError            the sender is not in the network map
        │   ├── BadMessageSignatureError      not signed by the sender's key in the map
        │   ├── WrongRecipientError           addressed to another node
        │   ├── StaleMessageError             timestamp outside the clock skew or replay window
        │   ├── ReplayedMessageError          its nonce was already seen
        │   ├── MessageTooLargeError          over the network's maxMessageSize
        │   ├── UnknownTopicError             no handler for its topic
        │   └── UnexpectedReplyError          a reply from another peer, or to another request
        ├── PeerRequestError              the peer refused or failed the request (type, message, details)
        ├── PeerUnreachableError          transient failures outlasted the retries
        └── TransientTransportError       connection refused or reset, timeout: worth retrying

Adapters map these to their protocol (JSON-RPC codes, Jolokia status, HTTP status); the domain only
raises them.

Outside the tree, on purpose: SimulatedCrash, a BaseException that stands for the process dying in a
simulation (docs/simulation.md). No `except Exception` stops it, so the thread it is raised on unwinds
without writing anything more; the in-process transport turns it into a dropped connection for the peer
that was talking to the crashed node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


def shown(value: object, limit: int = 200) -> str:
    """value's repr for an error message, cut to about limit characters: a refusal must not echo a
    10,000-character field back whole."""
    try:
        text = repr(value)
    except ValueError:  # an int past Python's 4,300 digits
        return f"(a {type(value).__name__} too long to print)"
    if len(text) <= limit:
        return text
    size = f" ({len(value)} characters)" if isinstance(value, str) else ""
    return f"{text[:limit]}...{size}"


class ConfigurationError(AgentError):
    """A configuration key has a value outside what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{key}: {shown(value)} is not allowed; {allowed}")


class InvalidArgumentError(AgentError, ValueError):
    """An argument an operator gave (a token amount, a currency, a party) outside what is allowed; names
    the field, the value and what is allowed. Every adapter answers it as a bad request (REST 400)."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: {shown(value)} is not allowed; {allowed}")


class InvalidNameError(AgentError, ValueError):
    """An X.500 name that CordaX500Name would refuse; names the attribute at fault."""

    def __init__(self, name: str, attribute: str | None, reason: str) -> None:
        self.name = name
        self.attribute = attribute
        self.reason = reason
        where = f"attribute {attribute}" if attribute else "name"
        super().__init__(f"invalid X.500 name {name!r}: {where}: {reason}")


class SerializationError(AgentError, ValueError):
    """Bytes or a structure that do not decode to what was expected; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class IdentityError(AgentError):
    """A key, certificate or signed network map that fails its checks."""


class TransactionVerificationError(AgentError):
    """A transaction that must not be recorded."""

    def __init__(self, tx_id: str, reason: str) -> None:
        self.tx_id = tx_id
        self.reason = reason
        super().__init__(f"transaction {tx_id}: {reason}")


class InvalidTransactionError(TransactionVerificationError):
    """The transaction's structure breaks a ledger rule (notary, duplicate inputs, ...)."""


class SignatureError(TransactionVerificationError):
    """A signature problem."""


class InvalidSignatureError(SignatureError):
    """A signature that does not verify over the transaction id."""

    def __init__(self, tx_id: str, key_hex: str) -> None:
        self.key_hex = key_hex
        super().__init__(tx_id, f"signature by key {key_hex} does not verify")


class MissingSignatureError(SignatureError):
    """Required signers that have not signed."""

    def __init__(self, tx_id: str, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(tx_id, f"missing signatures from {', '.join(self.missing)}")


class UnknownContractError(TransactionVerificationError):
    """A state refers to a contract that no one registered."""

    def __init__(self, tx_id: str, contract: str) -> None:
        self.contract = contract
        super().__init__(tx_id, f"unknown contract {contract!r}")


class ContractRejection(TransactionVerificationError):
    """A contract's rules refuse the transaction."""

    def __init__(self, tx_id: str, contract: str, reason: str) -> None:
        self.contract = contract
        super().__init__(tx_id, f"contract {contract} rejected it: {reason}")


class AmountsNotConservedError(ContractRejection):
    """A fungible move or exit whose amounts do not add up."""


class TransactionResolutionError(TransactionVerificationError):
    """Transactions of the back-chain that are not present (or not verified) here."""

    def __init__(self, tx_id: str, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(tx_id, f"back-chain incomplete: missing {', '.join(self.missing)}")


class NotaryError(AgentError):
    """The notary refused to sign."""


class NotaryConflictError(NotaryError):
    """Inputs or references that another transaction already consumed."""

    def __init__(self, tx_id: str, conflicts: Mapping[str, str]) -> None:
        self.tx_id = tx_id
        self.conflicts = dict(conflicts)
        detail = ", ".join(f"{ref} consumed by {by}" for ref, by in sorted(self.conflicts.items()))
        super().__init__(f"notary conflict for transaction {tx_id}: {detail}")


class NotaryRejectionError(NotaryError):
    """A request the notary will not serve: not its notary, time window, bad signatures."""

    def __init__(self, tx_id: str, reason: str) -> None:
        self.tx_id = tx_id
        self.reason = reason
        super().__init__(f"notary refused transaction {tx_id}: {reason}")


class StoreError(AgentError):
    """The store cannot do what was asked."""


class TransactionNotFoundError(StoreError, KeyError):
    """No transaction with that id (in the wanted status)."""

    def __init__(self, tx_id: str) -> None:
        self.tx_id = tx_id
        super().__init__(f"transaction {tx_id} not found")

    def __str__(self) -> str:
        return str(self.args[0])


class MigrationError(StoreError):
    """The schema cannot be brought to the version this code needs."""


# Made only by agent.store.db_errors, the one module that knows the drivers' exceptions; the message is
# the driver's with any credentials taken out, and the driver's exception is the __cause__.


class DatabaseError(StoreError):
    """A database error; code is the SQLSTATE (PostgreSQL) or result code name (SQLite) when known."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        constraint: str | None = None,
        table: str | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.constraint = constraint
        self.table = table
        super().__init__(f"{message} [{code}]" if code else message)


class DeadlockError(DatabaseError):
    """The database rolled this transaction back to break a deadlock or a serialization conflict."""


class ConstraintViolationError(DatabaseError):
    """A write refused by a unique, primary or foreign key, not-null or check constraint."""


class TransientConnectionError(DatabaseError):
    """The connection was refused, lost or terminated, or SQLite stayed locked: worth retrying later."""


# -- flows and finality --


class TransactionAccessDeniedError(AgentError):
    """A peer asked for a transaction it has no right to see."""

    def __init__(self, requester: str, tx_id: str, reason: str) -> None:
        self.requester = requester
        self.tx_id = tx_id
        super().__init__(f"{requester} may not see transaction {tx_id}: {reason}")


class FinalityError(AgentError):
    """Finality cannot go on: a receiver refused or a message was out of turn."""


class ReceiverBusyError(FinalityError):
    """The receiver's flow has not reached the step the message waits for yet (a slow back-chain,
    a busy node); the sender asks again, as for a peer that is down."""


class FlowRecoveryException(FinalityError):
    """Finality recovery could not recover a transaction (Corda's name): no such flow or transaction,
    a flow still running without forceRecover, a receiver's transaction the notary never signed (only
    its initiator can recover it), or the recovery flow itself failed (its error is the cause)."""


class LedgerRecoveryException(AgentError):
    """Ledger Recovery cannot go on (Corda's name): a recovery peer unreachable or refusing. What the
    run recovered before is kept, with its cursors, so running it again resumes there."""


class LedgerRecoveryInProgressError(LedgerRecoveryException):
    """A new flow refused while Ledger Recovery runs, as node.conf's ledgerRecovery.holdNewFlowsUntilRecovered
    asks: a restored vault offers states its lost transactions spent."""


class HospitalizeFlowError(AgentError):
    """Raised by a step that cannot go on until someone looks (Corda's HospitalizeFlowException): the
    flow hospital keeps the flow for observation."""


class KeptForObservationError(AgentError):
    """The peer keeps the flow our message started (or belongs to) in its flow hospital: a topic it does
    not handle yet, or a receiving flow that failed there. We ask again later, as for a peer that is down."""

    def __init__(self, peer: str, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"{peer} keeps it for observation: {reason}")

    def details(self) -> dict[str, object]:
        return {"peer": self.peer, "reason": self.reason}


# -- peer protocol --
# Names travel as printed X.500 strings here (errors sit below agent.ledger.identity in the imports).
# details() gives the data a peer needs to rebuild or show the error; it is plain CBOR data.


class PeerError(AgentError):
    """A message between agents that could not be sent, was refused, or could not be answered."""

    def details(self) -> dict[str, object]:
        return {}


class MessageRejectedError(PeerError):
    """The receiver refused the message itself, before any handler saw it; resending it is pointless."""


class MalformedMessageError(MessageRejectedError):
    """Bytes that are not a sealed message of a version we speak."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed message: {reason}")

    def details(self) -> dict[str, object]:
        return {"reason": self.reason}


class UnknownSenderError(MessageRejectedError):
    """A sender the network map does not list: no key to check it against, so no trust."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        super().__init__(f"sender {sender} is not in the network map")

    def details(self) -> dict[str, object]:
        return {"sender": self.sender}


class BadMessageSignatureError(MessageRejectedError):
    """The signature does not verify against the key the map holds for the claimed sender."""

    def __init__(self, sender: str) -> None:
        self.sender = sender
        super().__init__(f"signature of a message claiming to be from {sender} does not verify")

    def details(self) -> dict[str, object]:
        return {"sender": self.sender}


class WrongRecipientError(MessageRejectedError):
    """A message signed for another node; accepting it would let a message to A be replayed to B."""

    def __init__(self, sender: str, recipient: str, me: str) -> None:
        self.sender = sender
        self.recipient = recipient
        self.me = me
        super().__init__(f"message from {sender} is addressed to {recipient}, not to {me}")

    def details(self) -> dict[str, object]:
        return {"sender": self.sender, "recipient": self.recipient, "me": self.me}


class StaleMessageError(MessageRejectedError):
    """A timestamp too far ahead (clock skew), too old (replay window) or from before a restart.

    before_start: stamped before the receiver started; sealed afresh, the message may pass.
    """

    def __init__(self, sender: str, timestamp: str, reason: str, *, before_start: bool = False) -> None:
        self.sender = sender
        self.timestamp = timestamp
        self.reason = reason
        self.before_start = before_start
        super().__init__(f"message from {sender} timestamped {timestamp}: {reason}")

    def details(self) -> dict[str, object]:
        details: dict[str, object] = {
            "sender": self.sender,
            "timestamp": self.timestamp,
            "reason": self.reason,
        }
        if self.before_start:
            details["before_start"] = True
        return details


class ReplayedMessageError(MessageRejectedError):
    """A nonce already seen within the replay window."""

    def __init__(self, sender: str, nonce_hex: str) -> None:
        self.sender = sender
        self.nonce_hex = nonce_hex
        super().__init__(f"message from {sender} with nonce {nonce_hex} was already received")

    def details(self) -> dict[str, object]:
        return {"sender": self.sender, "nonce": self.nonce_hex}


class MessageTooLargeError(MessageRejectedError):
    """A message over the network's maxMessageSize, refused before it is read whole."""

    def __init__(self, size: int, limit: int, *, at_least: bool = False) -> None:
        self.size = size
        self.limit = limit
        self.at_least = at_least
        shown = f"at least {size}" if at_least else str(size)
        super().__init__(f"message of {shown} bytes exceeds the network's maxMessageSize of {limit} bytes")

    def details(self) -> dict[str, object]:
        return {"size": self.size, "limit": self.limit, "at_least": self.at_least}


class UnknownTopicError(MessageRejectedError):
    """No handler is registered for the message's topic."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"no handler for topic {topic!r}")

    def details(self) -> dict[str, object]:
        return {"topic": self.topic}


class SenderCertificateMismatchError(MessageRejectedError):
    """A message whose sender is not the party the connection's TLS client certificate names."""

    def __init__(self, sender: str, certificate: str) -> None:
        self.sender = sender
        self.certificate = certificate
        super().__init__(f"message claiming to be from {sender} came over a TLS connection of {certificate}")

    def details(self) -> dict[str, object]:
        return {"sender": self.sender, "certificate": self.certificate}


class UnexpectedReplyError(MessageRejectedError):
    """A well-signed reply that is not the one awaited: from another peer, or to another request."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"unexpected reply: {reason}")

    def details(self) -> dict[str, object]:
        return {"reason": self.reason}


class PeerRequestError(PeerError):
    """The peer refused or failed a request; error_type is the class name it reported."""

    def __init__(
        self, peer: str, error_type: str, message: str, details: Mapping[str, object] | None = None
    ) -> None:
        self.peer = peer
        self.error_type = error_type
        self.message = message
        self.error_details = dict(details) if details else {}
        super().__init__(f"{peer} refused the request: {error_type}: {message}")

    def details(self) -> dict[str, object]:
        return {"peer": self.peer, "error_type": self.error_type, "details": self.error_details}


class PeerUnreachableError(PeerError):
    """Every attempt to reach the peer failed transiently."""

    def __init__(
        self, peer: str, attempts: int, last_error: BaseException, *, waited: timedelta | None = None
    ) -> None:
        self.peer = peer
        self.attempts = attempts
        self.last_error = last_error
        self.waited = waited
        over = "" if waited is None else f" over {waited}"
        super().__init__(f"{peer} unreachable after {attempts} attempt(s){over}: {last_error}")

    def details(self) -> dict[str, object]:
        return {"peer": self.peer, "attempts": self.attempts, "last_error": str(self.last_error)}


class TransientTransportError(PeerError):
    """Connection refused or reset, or a timeout: the message may be sent again, freshly sealed."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"transient failure talking to {address}: {reason}")

    def details(self) -> dict[str, object]:
        return {"address": self.address, "reason": self.reason}


# -- LedgerSync --
# Exception names as the reference (ledger-sync.md) gives them, so operators recognise them in logs.


class ReconciliationError(AgentError):
    """A reconciliation cannot be scheduled or run."""


class ReconciliationAlreadyScheduledException(ReconciliationError):
    """A reconciliation with that party is already scheduled or running, in either direction.

    responder: when a responder refuses a requester's session, the responder's name (party is then
    the requester): the message says who holds what. advice: what to do about it.
    """

    def __init__(self, party: str, *, responder: str | None = None, advice: str = "") -> None:
        self.party = party
        self.responder = responder
        self.advice = advice
        if responder is None:
            message = f"a reconciliation with {party} is already scheduled or running"
        else:
            message = f"{responder} is already answering a reconciliation requested by {party}"
        super().__init__(f"{message}; {advice}" if advice else message)


class CannotReconcileWithSelfException(ReconciliationError):
    def __init__(self, party: str) -> None:
        self.party = party
        super().__init__(f"{party} cannot reconcile with itself")


class MaxIncomingSessionsExceededException(ReconciliationError):
    """The responder's pool of reconciliations is full; try again later."""


class ReconciliationRateLimitExceededException(ReconciliationError):
    """The responder's per-party limit of requests in its time window is used up."""


class ReconciliationSessionLostError(ReconciliationError):
    """The responder has no record of the session: it restarted since the session began (sessions live
    in memory). The requester may begin a new one."""

    def __init__(self, requester: str, session_hex: str) -> None:
        self.requester = requester
        self.session_hex = session_hex
        super().__init__(
            f"no reconciliation session {session_hex} with {requester} here: this node has restarted "
            "since it began, or never had it; begin a new session"
        )

    def details(self) -> dict[str, object]:
        return {"requester": self.requester, "session": self.session_hex}


class KilledFlowException(ReconciliationError):
    """The flow was killed by an operator (killFlow, StopReconciliationForPartyFlow) while it ran."""

    def __init__(self, flow_id: str, reason: str = "killed by killFlow") -> None:
        self.flow_id = flow_id
        super().__init__(f"flow {flow_id} was {reason}")


class LedgerGraphNotReadyException(ReconciliationError):
    """The ledger graph is not initialised yet, or the ledger is not self-consistent."""


class ReconciliationCodecError(SerializationError):
    """Set-reconciliation data that cannot be decoded: truncated or oversized symbols, wrong version."""


class TooManyLoginAttemptsError(AgentError):
    """A client address failed too many management logins; every request from it is refused until its
    back-off ends (agent.login_throttle). Adapters answer HTTP 429 with Retry-After."""

    def __init__(self, address: str, retry_after_s: int) -> None:
        self.address = address
        self.retry_after_s = retry_after_s
        super().__init__(f"too many failed logins from {address}; try again in {retry_after_s} s")


class SimulatedCrash(BaseException):
    """A simulated process death at a named point; raised by a FaultPlan whose crash action is simulate_crash."""

    def __init__(self, where: str) -> None:
        self.where = where
        super().__init__(f"simulated crash at {where}")

"""The hospital's staff: who looks at which error, what each diagnoses, and how long a retry waits.

Corda's StaffedFlowHospital, on our error tree (docs/hospital.md has the table). Every member is
consulted about every error and the highest diagnosis wins:

    RESUSCITATE > TERMINAL > DISCHARGE > OVERNIGHT_OBSERVATION > NOT_MY_SPECIALTY

DISCHARGE retries the step from the flow's last checkpoint after a delay; OVERNIGHT_OBSERVATION keeps
the flow HOSPITALIZED until an operator or a restart retries it; NOT_MY_SPECIALTY from everyone lets
the error through (the flow FAILS). Retry budgets count per checkpoint: `Patient.discharges` holds how
many times each member discharged the flow since it last committed a step, so progress resets them.

Two members are ours, not Corda's, because our engine sees as errors what Corda's messaging hides:
UnreachablePeerNurse (a peer that is down or still at work: Corda queues the message and the flow
waits; here the step is retried, for ever, visibly) and UnknownFlowSpecialist (a checkpoint or a
peer's message naming a flow or topic this node does not have: Corda's missing CorDapp).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Protocol

from agent.errors import (
    ConstraintViolationError,
    DatabaseError,
    DeadlockError,
    HospitalizeFlowError,
    KeptForObservationError,
    NotaryConflictError,
    NotaryError,
    NotaryRejectionError,
    PeerRequestError,
    PeerUnreachableError,
    ReceiverBusyError,
    TransientConnectionError,
    TransientTransportError,
    UnknownTopicError,
)
from agent.flows.checkpoints import FlowCheckpoint
from agent.flows.engine import UnknownFlowNameError

RECEIVE_FINALITY_FLOW = "ReceiveFinalityFlow"


class Diagnosis(IntEnum):
    """Ordered by priority: the highest any member gives wins."""

    NOT_MY_SPECIALTY = 0
    OVERNIGHT_OBSERVATION = 1
    DISCHARGE = 2
    TERMINAL = 3
    RESUSCITATE = 4


@dataclass(frozen=True)
class FlowTimeoutSettings:
    """node.conf's flowTimeout (Corda's): how long the notary gets, and how that grows per retry."""

    timeout_s: float = 30.0
    max_restart_count: int = 6
    backoff_base: float = 1.8


@dataclass
class Patient:
    """One error of one flow, as the staff see it."""

    checkpoint: FlowCheckpoint
    error: BaseException
    now: datetime
    discharges: Mapping[str, int]  # per member, since the flow's last checkpoint
    admitted_at: datetime  # the first error since that checkpoint
    is_notary: Callable[[str], bool] = field(default=lambda _: False)

    @property
    def flow_name(self) -> str:
        return self.checkpoint.flow_name

    def remote_type(self) -> str | None:
        """The error's type as the peer named it, for an error a peer replied with."""
        return self.error.error_type if isinstance(self.error, PeerRequestError) else None


@dataclass(frozen=True)
class Consultation:
    """One member's view: its diagnosis and, for a discharge, how long to wait before the retry."""

    staff: str
    diagnosis: Diagnosis
    delay_s: float = 0.0
    waiting_for: str | None = None
    chronic: bool = False  # retries for ever: the alert on retry loops watches these


class Staff(Protocol):
    name: str

    def consult(self, patient: Patient, rng: random.Random) -> Consultation: ...


def corda_backoff(previous: int, rng: random.Random) -> float:
    """Corda's back-off for chronic conditions: none for the first retry at a checkpoint, then
    max(10, 10 + rand * min(110, 10 * 1.5^n / 2)) seconds (10 to 120 s)."""
    if previous <= 0:
        return 0.0
    return max(10.0, 10.0 + rng.random() * min(110.0, 10.0 * 1.5**previous / 2))


def notary_backoff(retry: int, settings: FlowTimeoutSettings, rng: random.Random) -> float:
    """Corda's FlowTimeoutScheduler: timeout * base^min(retry, maxRestartCount) * U[1, 1.5]."""
    growth = settings.backoff_base ** min(retry, settings.max_restart_count)
    return settings.timeout_s * growth * rng.uniform(1.0, 1.5)


def peer_backoff(previous: int, rng: random.Random) -> float:
    """1 s, 2 s, 4 s ... capped at 30 s, each cut by up to a quarter so restarted peers are not stampeded."""
    ceiling = min(30.0, float(2 ** min(previous, 16)))
    return ceiling * (1 - 0.25 * rng.random())


def _no(name: str) -> Consultation:
    return Consultation(name, Diagnosis.NOT_MY_SPECIALTY)


def _database_error(error: BaseException) -> DatabaseError | None:
    """The database error itself, or the one a store error was raised from."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DatabaseError):
            return seen
        seen = seen.__cause__
    return None


def _peer_of(error: BaseException) -> str | None:
    if isinstance(error, PeerUnreachableError | PeerRequestError | KeptForObservationError):
        return error.peer
    if isinstance(error, TransientTransportError):
        return error.address
    return None


class DeadlockNurse:
    """A deadlock or serialization victim: retry, with back-off, for ever (chronic)."""

    name = "DeadlockNurse"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if not isinstance(_database_error(patient.error), DeadlockError):
            return _no(self.name)
        n = patient.discharges.get(self.name, 0)
        return Consultation(
            self.name,
            Diagnosis.DISCHARGE,
            corda_backoff(n, rng),
            "the database (deadlock retry)",
            chronic=True,
        )


class DuplicateInsertSpecialist:
    """A constraint violation: racing flows, rare; retried 3 times at the same checkpoint, then the
    next member decides (DatabaseEndocrinologist keeps it for observation)."""

    name = "DuplicateInsertSpecialist"
    retries = 3

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if not isinstance(_database_error(patient.error), ConstraintViolationError):
            return _no(self.name)
        n = patient.discharges.get(self.name, 0)
        if n >= self.retries:
            return _no(self.name)
        return Consultation(
            self.name, Diagnosis.DISCHARGE, corda_backoff(n, rng), "the database (constraint retry)"
        )


class DoctorTimeout:
    """The notary did not answer: ask again, for ever, each wait longer (Corda's flow timeout)."""

    name = "DoctorTimeout"

    def __init__(self, settings: FlowTimeoutSettings) -> None:
        self.settings = settings

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        error = patient.error
        peer = _peer_of(error)
        if not isinstance(error, PeerUnreachableError | TransientTransportError) or peer is None:
            return _no(self.name)
        if not patient.is_notary(peer):
            return _no(self.name)
        n = patient.discharges.get(self.name, 0)
        delay = notary_backoff(n, self.settings, rng)
        return Consultation(
            self.name, Diagnosis.DISCHARGE, delay, f"{peer} (notary not answering)", chronic=True
        )


class NotaryDoctor:
    """The notary failed in itself (not a double spend, not a refusal of the transaction): retry with
    back-off, for ever (chronic)."""

    name = "NotaryDoctor"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        error = patient.error
        if isinstance(error, NotaryConflictError | NotaryRejectionError):
            return _no(self.name)
        general = isinstance(error, NotaryError)
        if isinstance(error, PeerRequestError) and patient.is_notary(error.peer):
            general = error.error_type not in (NotaryConflictError.__name__, NotaryRejectionError.__name__)
        if not general:
            return _no(self.name)
        n = patient.discharges.get(self.name, 0)
        return Consultation(
            self.name,
            Diagnosis.DISCHARGE,
            corda_backoff(n, rng),
            "the notary (its error: retrying)",
            chronic=True,
        )


class UnreachablePeerNurse:
    """A peer that is down, still at work on our message, or keeping it for observation: wait and ask
    again, for ever (Corda keeps the message queued and the flow suspended)."""

    name = "UnreachablePeerNurse"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        error = patient.error
        peer = _peer_of(error)
        remote = patient.remote_type()
        if isinstance(error, PeerUnreachableError | TransientTransportError):
            why = "unreachable"
        elif remote == ReceiverBusyError.__name__:
            why = "still at work on it"
        elif remote == KeptForObservationError.__name__:
            why = "keeps it for observation"
        else:
            return _no(self.name)
        n = patient.discharges.get(self.name, 0)
        return Consultation(
            self.name, Diagnosis.DISCHARGE, peer_backoff(n, rng), f"{peer} ({why})", chronic=True
        )


class FinalityDoctor:
    """Any error inside ReceiveFinalityFlow: keep it, so the transaction is not lost while the cause is
    put right (a missing contract, a database refusing writes) - unless the counterparty propagated a
    notary failure or ended the session, which end the flow as they should."""

    name = "FinalityDoctor"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if patient.flow_name != RECEIVE_FINALITY_FLOW:
            return _no(self.name)
        error = patient.error
        if isinstance(error, NotaryError) or patient.remote_type() in (
            NotaryConflictError.__name__,
            NotaryRejectionError.__name__,
        ):
            return _no(self.name)
        return Consultation(self.name, Diagnosis.OVERNIGHT_OBSERVATION)


class TransientConnectionCardiologist:
    """The database connection was refused, lost or terminated: retry twice, then keep for observation."""

    name = "TransientConnectionCardiologist"
    retries = 2

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if not isinstance(_database_error(patient.error), TransientConnectionError):
            return _no(self.name)
        n = patient.discharges.get(self.name, 0)
        if n >= self.retries:
            return Consultation(self.name, Diagnosis.OVERNIGHT_OBSERVATION)
        return Consultation(
            self.name, Diagnosis.DISCHARGE, corda_backoff(n, rng), "the database (reconnecting)"
        )


class DatabaseEndocrinologist:
    """Any other database error: keep for observation (a full disk, a revoked grant, a missing table)."""

    name = "DatabaseEndocrinologist"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if _database_error(patient.error) is None:
            return _no(self.name)
        return Consultation(self.name, Diagnosis.OVERNIGHT_OBSERVATION)


class SedationNurse:
    """A step that asks to be kept (HospitalizeFlowError)."""

    name = "SedationNurse"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if not isinstance(patient.error, HospitalizeFlowError):
            return _no(self.name)
        return Consultation(self.name, Diagnosis.OVERNIGHT_OBSERVATION)


class UnknownFlowSpecialist:
    """A flow or topic this node does not have (a newer peer, a checkpoint from a newer agent): keep it
    until the node is upgraded and restarted, or an operator kills it."""

    name = "UnknownFlowSpecialist"

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        if not isinstance(patient.error, UnknownTopicError | UnknownFlowNameError):
            return _no(self.name)
        return Consultation(self.name, Diagnosis.OVERNIGHT_OBSERVATION)


def default_staff(flow_timeout: FlowTimeoutSettings | None = None) -> tuple[Staff, ...]:
    """Corda's staff and ours, in the order their reports are listed."""
    return (
        DeadlockNurse(),
        DuplicateInsertSpecialist(),
        DoctorTimeout(flow_timeout or FlowTimeoutSettings()),
        NotaryDoctor(),
        UnreachablePeerNurse(),
        FinalityDoctor(),
        TransientConnectionCardiologist(),
        DatabaseEndocrinologist(),
        SedationNurse(),
        UnknownFlowSpecialist(),
    )

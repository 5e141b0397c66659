"""The flow hospital: the engine's error policy, its medical records, and its patients.

Every error in a flow's step comes here (FlowEngine's policy). node.conf's rules are asked first (the
first that matches decides); otherwise every member of the staff is consulted and the highest
diagnosis wins (agent.hospital.staff). The engine then retries the step from the checkpoint after
the delay (DISCHARGE), keeps the flow HOSPITALIZED (OVERNIGHT_OBSERVATION), kills it (TERMINAL, only
by a node.conf rule), or lets the error through (NOT_MY_SPECIALTY: FAILED). Each consultation is a
record (node_flow_hospital): a flow's records are its retry history.

Patients are the flows under the hospital's care: HOSPITALIZED ones, and RUNNABLE or PAUSED ones whose
last record is a retry not yet followed by progress. A flow that commits a step after its errors is
discharged (a RECOVERED record); one that completes or is killed loses its records (Corda removes a
killed flow's; a completed one has nothing left to look at, and the counters keep the totals); a
FAILED flow keeps them. The hospital never ends a flow by itself: only a node.conf rule may kill.

An ERROR is logged when a flow is kept for observation, and a WARN every patientsLogInterval lists
the patients (both Corda's).
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock
from agent.errors import PeerRequestError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import FlowEngine
from agent.flows.triage import Decision, Fail, Kill, Observe, Retry
from agent.hospital.policy import HospitalSettings, Rule
from agent.hospital.records import FAILED, KILLED, OBSERVATION, RECOVERED, RETRY, MedicalRecord
from agent.hospital.staff import Consultation, Diagnosis, Patient, Staff, default_staff
from agent.ports.checkpoints import Checkpoints
from agent.ports.hospital import MedicalRecords

log = logging.getLogger("ledger_agent.hospital")

UNDER_CARE = (FlowStatus.RUNNABLE, FlowStatus.HOSPITALIZED, FlowStatus.PAUSED)
_OUTCOME = {
    Diagnosis.DISCHARGE: RETRY,
    Diagnosis.OVERNIGHT_OBSERVATION: OBSERVATION,
    Diagnosis.TERMINAL: KILLED,
    Diagnosis.RESUSCITATE: RETRY,
    Diagnosis.NOT_MY_SPECIALTY: FAILED,
}


@dataclass
class _Episode:
    """A flow's errors since its last checkpoint: the budgets count here."""

    admitted_at: datetime
    discharges: Counter[str] = field(default_factory=Counter)
    attempts: int = 0


@dataclass(frozen=True)
class PatientView:
    """A flow under care (or a failed flow), as operators list it."""

    checkpoint: FlowCheckpoint
    history: tuple[MedicalRecord, ...]
    waiting_for: str | None = None
    next_retry_at: datetime | None = None

    @property
    def last(self) -> MedicalRecord | None:
        consultations = [r for r in self.history if r.outcome != RECOVERED]
        return consultations[-1] if consultations else None

    @property
    def admitted_at(self) -> datetime | None:
        """The first error of the current stay (since the last recovery)."""
        stay = self.current_stay
        return stay[0].at if stay else None

    @property
    def current_stay(self) -> tuple[MedicalRecord, ...]:
        since = 0
        for i, record in enumerate(self.history):
            if record.outcome == RECOVERED:
                since = i + 1
        return self.history[since:]

    @property
    def attempts(self) -> int:
        return len(self.current_stay)

    @property
    def under_care(self) -> bool:
        """The hospital has it: it is not over (COMPLETED, FAILED, KILLED) and its last record is a
        consultation, not a recovery."""
        return (
            self.checkpoint.status in UNDER_CARE
            and bool(self.history)
            and self.history[-1].outcome != RECOVERED
        )

    @property
    def staff(self) -> str | None:
        last = self.last
        return None if last is None else last.staff

    @property
    def diagnosis(self) -> str | None:
        last = self.last
        return None if last is None else last.diagnosis

    @property
    def error_type(self) -> str | None:
        last = self.last
        return None if last is None else last.error_type

    def age_s(self, now: datetime) -> float:
        admitted = self.admitted_at
        return 0.0 if admitted is None else max(0.0, (now - admitted).total_seconds())

    def as_dict(self, now: datetime, *, history: bool = True) -> dict[str, Any]:
        cp, last = self.checkpoint, self.last
        found: dict[str, Any] = {
            "flowId": cp.flow_id,
            "flowName": cp.flow_name,
            "status": cp.status.name,
            "step": cp.progress_step,
            "txId": None if cp.tx_id is None else str(cp.tx_id),
            "counterparties": [str(c) for c in cp.counterparties],
            "diagnosis": self.diagnosis,
            "staff": self.staff,
            "errorType": self.error_type,
            "error": None if last is None else last.error_message,
            "admittedAt": None if self.admitted_at is None else self.admitted_at.isoformat(),
            "secondsInHospital": round(self.age_s(now), 3),
            "attempts": self.attempts,
            "nextRetryAt": None if self.next_retry_at is None else self.next_retry_at.isoformat(),
            "waitingFor": self.waiting_for,
        }
        if history:
            found["history"] = [r.as_dict() for r in self.history]
        return found


@dataclass(frozen=True)
class PatientFilter:
    """Every field given must match (operators' filters: status, diagnosis, staff, error class, flow
    name, peer, step, age in the hospital, attempts; under_care: only the hospital's patients)."""

    status: FlowStatus | None = None
    diagnosis: str | None = None
    staff: str | None = None
    error_type: str | None = None
    flow_name: str | None = None
    peer: str | None = None
    step: str | None = None
    min_age_s: float | None = None
    min_attempts: int | None = None
    under_care: bool = False

    def accepts(self, patient: PatientView, now: datetime) -> bool:
        cp = patient.checkpoint
        return (
            (self.status is None or cp.status is self.status)
            and (self.diagnosis is None or patient.diagnosis == self.diagnosis)
            and (self.staff is None or patient.staff == self.staff)
            and (self.error_type is None or patient.error_type == self.error_type)
            and (self.flow_name is None or cp.flow_name == self.flow_name)
            and (self.peer is None or self.peer in {str(c) for c in cp.counterparties})
            and (self.step is None or cp.progress_step == self.step)
            and (self.min_age_s is None or patient.age_s(now) >= self.min_age_s)
            and (self.min_attempts is None or patient.attempts >= self.min_attempts)
            and (not self.under_care or patient.under_care)
        )


class FlowHospital:
    """The engine's error policy on a node, with its records and patients."""

    def __init__(
        self,
        records: MedicalRecords,
        checkpoints: Checkpoints,
        clock: Clock,
        settings: HospitalSettings | None = None,
        *,
        staff: tuple[Staff, ...] | None = None,
        is_notary: Callable[[str], bool] = lambda _: False,
        rng: random.Random | None = None,
    ) -> None:
        self.records = records
        self.checkpoints = checkpoints
        self.clock = clock
        self.settings = settings or HospitalSettings()
        self.staff = staff if staff is not None else default_staff(self.settings.flow_timeout)
        self.rules: tuple[Rule, ...] = self.settings.rules
        self.is_notary = is_notary
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._episodes: dict[str, _Episode] = {}
        self._engine: FlowEngine | None = None
        # Counters for the metrics: (staff, diagnosis) -> admissions; staff -> retries.
        self.admissions: Counter[tuple[str, str]] = Counter()
        self.retries: Counter[str] = Counter()
        self._stop = threading.Event()
        self._logger: threading.Thread | None = None

    # -- the engine's policy -------------------------------------------------------------------------

    def attach(self, engine: FlowEngine) -> None:
        """Become engine's error policy and hear of its flows' progress and ends."""
        self._engine = engine
        engine.policy = self
        engine.on_status(self._status_changed)
        engine.on_recovered(self._recovered)

    def __call__(self, checkpoint: FlowCheckpoint, error: BaseException, attempts: int) -> Decision:
        now = self.clock.now()
        with self._lock:
            episode = self._episodes.get(checkpoint.flow_id)
            if episode is None or attempts == 0:
                episode = self._episodes[checkpoint.flow_id] = _Episode(now)
            patient = Patient(
                checkpoint, error, now, dict(episode.discharges), episode.admitted_at, self.is_notary
            )
            consultation = self._consult(patient)
            if consultation.diagnosis in (Diagnosis.DISCHARGE, Diagnosis.RESUSCITATE):
                episode.discharges[consultation.staff] += 1
            episode.attempts += 1
            attempt = episode.attempts
            self.admissions[(consultation.staff, consultation.diagnosis.name)] += 1
            if consultation.diagnosis is Diagnosis.DISCHARGE:
                self.retries[consultation.staff] += 1
        decision = self._decision(consultation, checkpoint, error)
        record = MedicalRecord(
            flow_id=checkpoint.flow_id,
            flow_name=checkpoint.flow_name,
            at=now,
            step=checkpoint.progress_step,
            error_type=type(error).__name__
            if not _remote(error)
            else f"{type(error).__name__}({_remote(error)})",
            error_message=str(error),
            staff=consultation.staff,
            diagnosis=consultation.diagnosis.name,
            outcome=_OUTCOME[consultation.diagnosis],
            delay_s=round(consultation.delay_s, 3) if isinstance(decision, Retry) else None,
            attempt=attempt,
        )
        try:
            self.records.add_record(record)
        except Exception:  # the decision stands without its record (the database may be what failed)
            log.warning(
                "could not write the hospital's record for flow %s", checkpoint.flow_id, exc_info=True
            )
        self._log(record, consultation)
        return decision

    def _consult(self, patient: Patient) -> Consultation:
        for rule in self.rules:
            if rule.matches(patient):
                return rule.consult(patient, self._rng)
        best: Consultation | None = None
        for member in self.staff:
            opinion = member.consult(patient, self._rng)
            if best is None or opinion.diagnosis > best.diagnosis:
                best = opinion  # ties go to the first asked
        assert best is not None
        if best.diagnosis is Diagnosis.NOT_MY_SPECIALTY:
            return Consultation("-", Diagnosis.NOT_MY_SPECIALTY)
        return best

    def _decision(
        self, consultation: Consultation, checkpoint: FlowCheckpoint, error: BaseException
    ) -> Decision:
        diagnosis = consultation.diagnosis
        if diagnosis in (Diagnosis.DISCHARGE, Diagnosis.RESUSCITATE):
            waiting = consultation.waiting_for or f"a retry ({consultation.staff})"
            return Retry(consultation.delay_s, waiting)
        if diagnosis is Diagnosis.OVERNIGHT_OBSERVATION:
            return Observe(f"the flow hospital ({consultation.staff}: {type(error).__name__})")
        if diagnosis is Diagnosis.TERMINAL:
            return Kill()
        return Fail()

    def _log(self, record: MedicalRecord, consultation: Consultation) -> None:
        what = f"flow {record.flow_name} {record.flow_id} at {record.step}: {record.error_type}: {record.error_message}"
        if record.outcome == OBSERVATION:
            # Corda logged nothing when a flow was hospitalised (PR 4015): an operator must see it.
            log.error(
                "%s; kept for observation by %s (flow retry %s once the cause is put right)",
                what,
                record.staff,
                record.flow_id,
            )
        elif record.outcome == RETRY:
            log.info("%s; %s retries it in %.1f s", what, record.staff, record.delay_s or 0.0)
        elif record.outcome == KILLED:
            log.error("%s; killed by node.conf's flowHospital.%s", what, record.staff)

    # -- what the engine tells us --------------------------------------------------------------------

    def _recovered(self, checkpoint: FlowCheckpoint) -> None:
        """The flow committed a step after errors at its previous checkpoint: discharged."""
        with self._lock:
            self._episodes.pop(checkpoint.flow_id, None)
        if checkpoint.status in (FlowStatus.COMPLETED, FlowStatus.KILLED):
            return  # _status_changed removes its records
        self._write(
            MedicalRecord(
                checkpoint.flow_id,
                checkpoint.flow_name,
                self.clock.now(),
                checkpoint.progress_step,
                None,
                None,
                None,
                None,
                RECOVERED,
            )
        )

    def _status_changed(self, checkpoint: FlowCheckpoint) -> None:
        if checkpoint.status in (FlowStatus.COMPLETED, FlowStatus.KILLED):
            with self._lock:
                self._episodes.pop(checkpoint.flow_id, None)
            try:
                self.records.remove_records(checkpoint.flow_id)
            except Exception:
                log.warning(
                    "could not remove the hospital's records of flow %s", checkpoint.flow_id, exc_info=True
                )
        elif checkpoint.status is FlowStatus.FAILED:
            with self._lock:
                self._episodes.pop(checkpoint.flow_id, None)

    def _write(self, record: MedicalRecord) -> None:
        try:
            self.records.add_record(record)
        except Exception:
            log.warning("could not write the hospital's record for flow %s", record.flow_id, exc_info=True)

    # -- patients ------------------------------------------------------------------------------------

    def patients(self, where: PatientFilter | None = None, *, failed: bool = False) -> list[PatientView]:
        """The flows under care (with failed, the FAILED flows with a history too), longest in first."""
        where = where or PatientFilter()
        now = self.clock.now()
        history: dict[str, list[MedicalRecord]] = {}
        for record in self.records.records():
            history.setdefault(record.flow_id, []).append(record)
        found = []
        for flow_id, records in history.items():
            checkpoint = self.checkpoints.get_checkpoint(flow_id)
            if checkpoint is None:
                continue
            engine = self._engine
            view = PatientView(
                checkpoint,
                tuple(records),
                None if engine is None else engine.waiting_for(flow_id),
                None if engine is None else engine.wake_at(flow_id),
            )
            if not view.under_care and not (failed and checkpoint.status is FlowStatus.FAILED):
                continue
            if where.accepts(view, now):
                found.append(view)
        found.sort(key=lambda p: (p.admitted_at or now, p.checkpoint.flow_id))
        return found

    def patient(self, flow_id: str) -> PatientView | None:
        """One flow's view with its whole history (any status), None without records or checkpoint."""
        checkpoint = self.checkpoints.get_checkpoint(flow_id)
        if checkpoint is None:
            return None
        records = tuple(self.records.records([flow_id]))
        engine = self._engine
        return PatientView(
            checkpoint,
            records,
            None if engine is None else engine.waiting_for(flow_id),
            None if engine is None else engine.wake_at(flow_id),
        )

    def log_patients(self) -> list[PatientView]:
        """The WARN that lists the patients (Corda's, every minute); the patients it listed."""
        patients = self.patients()
        if patients:
            now = self.clock.now()
            lines = "; ".join(
                f"{p.checkpoint.flow_id} {p.checkpoint.flow_name} {p.checkpoint.status.name} at "
                f"{p.checkpoint.progress_step} ({p.staff}: {p.error_type}, {p.attempts} attempt(s), "
                f"{p.age_s(now):.0f} s)"
                for p in patients
            )
            log.warning("flow hospital: %d patient(s): %s", len(patients), lines)
        return patients

    def counts(self) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """Copies of the counters since start: admissions by (staff, diagnosis), and retries by staff,
        where every member of the staff and every retry rule is present (0 before its first retry), so
        that a rate over them sees the first one."""
        with self._lock:
            admissions = dict(self.admissions)
            retried = dict(self.retries)
        retries = {member.name: 0 for member in self.staff}
        retries.update({rule.name: 0 for rule in self.rules if rule.action == "retry"})
        retries.update(retried)
        return admissions, retries

    # -- the periodic WARN ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._logger is not None:
            return
        self._logger = threading.Thread(target=self._log_loop, name="flow-hospital", daemon=True)
        self._logger.start()

    def stop(self) -> None:
        self._stop.set()
        if self._logger is not None:
            self._logger.join(5)

    def _log_loop(self) -> None:
        interval = timedelta(seconds=self.settings.patients_log_interval_s)
        due = self.clock.now() + interval
        while not self._stop.wait(min(1.0, self.settings.patients_log_interval_s)):
            if self._engine is not None and self._engine.stopping:
                return  # its engine was shut down (a stopped or crashed node): nothing more to watch
            if self.clock.now() < due:
                continue
            due = self.clock.now() + interval
            try:
                self.log_patients()
            except Exception:  # the store may be down: say so and try at the next interval
                log.warning("flow hospital: could not list the patients", exc_info=True)


def _remote(error: BaseException) -> str | None:
    return error.error_type if isinstance(error, PeerRequestError) else None

"""Which flows an operator's filter selects, and what a bulk action would do to each of them.

A filter (PatientFilter) looks at any flow, not only the hospital's patients: its status, name, step
and counterparties, and, through the flow's medical records, its diagnosis, staff, error class, age in
the hospital and attempts (a flow without records has none of those, so a filter on them leaves it
out). Without a status the flows still going on are looked at (RUNNABLE, HOSPITALIZED, PAUSED): the
ended ones only when a status asks for them. Bulk jobs are never selected: a bulk pause must not
pause itself.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowEngine
from agent.hospital.hospital import PatientFilter, PatientView
from agent.hospital.records import MedicalRecord
from agent.ports.checkpoints import Checkpoints
from agent.ports.hospital import MedicalRecords

GOING_ON = (FlowStatus.RUNNABLE, FlowStatus.HOSPITALIZED, FlowStatus.PAUSED)


@dataclass(frozen=True)
class BulkVerb:
    """What a bulk action does to one flow: from which statuses, to which, and how a result says so."""

    name: str  # retry, pause, kill
    takes: tuple[FlowStatus, ...]
    to: FlowStatus
    done: str  # the outcome of a flow it acted on: retried, paused, killed

    def plan(self, status: FlowStatus) -> str:
        """What would happen to a flow in this status: `retry: HOSPITALIZED -> RUNNABLE`, `skip: COMPLETED`."""
        if status in self.takes:
            return f"{self.name}: {status.name} -> {self.to.name}"
        return f"skip: {status.name}"

    @property
    def takes_text(self) -> str:
        return " or ".join(s.name for s in self.takes)


VERBS: dict[str, BulkVerb] = {
    verb.name: verb
    for verb in (
        BulkVerb("retry", (FlowStatus.HOSPITALIZED, FlowStatus.PAUSED), FlowStatus.RUNNABLE, "retried"),
        BulkVerb("pause", (FlowStatus.RUNNABLE, FlowStatus.HOSPITALIZED), FlowStatus.PAUSED, "paused"),
        BulkVerb(
            "kill",
            (FlowStatus.RUNNABLE, FlowStatus.PAUSED, FlowStatus.HOSPITALIZED),
            FlowStatus.KILLED,
            "killed",
        ),
    )
}


def select_flows(
    checkpoints: Checkpoints,
    records: MedicalRecords,
    engine: FlowEngine | None,
    where: PatientFilter,
    now: datetime,
    *,
    exclude: Collection[str] = (),
) -> list[PatientView]:
    """The flows where selects (each with its history), oldest started first; flows named in exclude
    are never selected."""
    statuses = (where.status,) if where.status is not None else GOING_ON
    candidates = [
        cp
        for status in statuses
        for cp in checkpoints.iter_checkpoints(status, flow_name=where.flow_name)
        if cp.flow_name not in exclude
    ]
    history: dict[str, list[MedicalRecord]] = {}
    for record in records.records([cp.flow_id for cp in candidates]):
        history.setdefault(record.flow_id, []).append(record)
    found = []
    for cp in candidates:
        view = PatientView(
            cp,
            tuple(history.get(cp.flow_id, ())),
            None if engine is None else engine.waiting_for(cp.flow_id),
            None if engine is None else engine.wake_at(cp.flow_id),
        )
        if where.accepts(view, now):
            found.append(view)
    found.sort(key=lambda v: (v.checkpoint.started_at, v.checkpoint.flow_id))
    return found


def filter_json(where: PatientFilter) -> dict[str, Any]:
    """The filter as operators give it (the catalogue's keys), only what was given."""
    fields: dict[str, Any] = {
        "status": None if where.status is None else where.status.name,
        "diagnosis": where.diagnosis,
        "staff": where.staff,
        "errorType": where.error_type,
        "flowName": where.flow_name,
        "peer": where.peer,
        "step": where.step,
        "minAgeSeconds": where.min_age_s,
        "minAttempts": where.min_attempts,
        "underCare": where.under_care or None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def filter_from_json(given: dict[str, Any]) -> PatientFilter:
    """filter_json's inverse (for a job's saved filter); the keys are checked by the catalogue."""
    status = given.get("status")
    age = given.get("minAgeSeconds")
    return PatientFilter(
        status=None if status is None else FlowStatus[status],
        diagnosis=given.get("diagnosis"),
        staff=given.get("staff"),
        error_type=given.get("errorType"),
        flow_name=given.get("flowName"),
        peer=given.get("peer"),
        step=given.get("step"),
        min_age_s=None if age is None else float(age),
        min_attempts=given.get("minAttempts"),
        under_care=bool(given.get("underCare")),
    )


def sample_row(view: PatientView, plan: str) -> dict[str, Any]:
    """One flow of a dry run's sample: what it is, and what would happen to it."""
    cp = view.checkpoint
    return {
        "flowId": cp.flow_id,
        "flowName": cp.flow_name,
        "status": cp.status.name,
        "step": cp.progress_step,
        "diagnosis": view.diagnosis,
        "staff": view.staff,
        "errorType": view.error_type,
        "attempts": view.attempts,
        "plan": plan,
    }

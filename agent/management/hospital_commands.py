"""The flow hospital's commands on one node (their declarations are the catalogue's): its patients
and one flow's history, Corda Enterprise's bulk verbs, bulk actions by filter and their jobs, and the
audit log. retryFlow is with the engine's other verbs (agent.management.commands).

Corda Enterprise's verbs start a job at once on the flows their fixed filter selects now, as its
shell's do (no dry run); `bulkAction` is the general form, a dry run unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.flows.checkpoints import FlowStatus
from agent.hospital.bulk import Actor, JobPlan
from agent.hospital.hospital import PatientFilter
from agent.hospital.selection import VERBS
from agent.runtime import AgentRuntime

# The commands whose implementation also takes who asked (a job records it), after the arguments.
WITH_ACTOR = frozenset(
    {"pauseAll", "pauseAllHospitalized", "retryAllPaused", "retryAllPausedHospitalized", "bulkAction"}
)


@dataclass(frozen=True)
class CordaBulkVerb:
    action: str
    where: PatientFilter


CORDA_BULK_VERBS = {
    # No status: every flow still going on, of which pause takes the RUNNABLE and HOSPITALIZED.
    "pauseAll": CordaBulkVerb("pause", PatientFilter()),
    "pauseAllHospitalized": CordaBulkVerb("pause", PatientFilter(status=FlowStatus.HOSPITALIZED)),
    "retryAllPaused": CordaBulkVerb("retry", PatientFilter(status=FlowStatus.PAUSED)),
    # Paused while the hospital was keeping them (their last record is not a recovery).
    "retryAllPausedHospitalized": CordaBulkVerb(
        "retry", PatientFilter(status=FlowStatus.PAUSED, under_care=True)
    ),
}


def hospital_commands(runtime: AgentRuntime) -> dict[str, Callable[..., Any]]:
    """The implementations, by the catalogue's names; each takes the converted arguments in the
    order of the command's params (and the actor, for those of WITH_ACTOR)."""
    hospital, bulk, audit = runtime.hospital, runtime.bulk, runtime.node.store.audit
    clock = runtime.node.clock

    def list_patients(where: PatientFilter | None, include_failed: bool) -> list[dict[str, Any]]:
        where = where or PatientFilter()
        failed = include_failed or where.status is FlowStatus.FAILED
        now = clock.now()
        return [p.as_dict(now) for p in hospital.patients(where, failed=failed)]

    def flow_history(flow_id: str) -> dict[str, Any] | None:
        found = hospital.patient(flow_id)
        return None if found is None else found.as_dict(clock.now())

    def corda_verb(name: str) -> Callable[[str, Actor], dict[str, Any]]:
        verb = CORDA_BULK_VERBS[name]

        def start(reason: str, actor: Actor) -> dict[str, Any]:
            plan = JobPlan(name, VERBS[verb.action], verb.where, reason, actor, only_applicable=True)
            return bulk.start(plan)

        return start

    def bulk_action(
        action: str,
        where: PatientFilter,
        reason: str,
        dry_run: bool,
        batch_size: int,
        interval_s: float,
        actor: Actor,
    ) -> dict[str, Any]:
        if dry_run:
            return bulk.dry_run(action, where)
        plan = JobPlan("bulkAction", VERBS[action], where, reason, actor, batch_size, interval_s)
        return bulk.start(plan)

    def audit_log(user: str | None, action: str | None, limit: int) -> list[dict[str, Any]]:
        return [e.as_dict() for e in audit.entries(user=user, action=action, limit=limit)]

    return {
        "listPatients": list_patients,
        "flowHistory": flow_history,
        **{name: corda_verb(name) for name in CORDA_BULK_VERBS},
        "bulkAction": bulk_action,
        "bulkJob": bulk.job,
        "listBulkJobs": bulk.jobs,
        "auditLog": audit_log,
    }

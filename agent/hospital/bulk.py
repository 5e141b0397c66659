"""Bulk actions on flows by filter: a dry run first, then a job on the node that survives restarts.

A job is a durable flow on the engine, BulkFlowActionFlow. Its state holds the action, the filter,
the reason and who asked, the ids of the flows the filter selected when the job started (its
snapshot: a flow that matches later is not taken in), and a result per flow so far. Each step acts on
one batch and commits the batch's results with the checkpoint, so after a crash or a restart the
engine resumes the job at the first flow without a result. A batch cut off half way runs again: a
flow it finds already where the action puts it is reported done, saying so. Between two batches the
job may wait (batchIntervalSeconds), parked on the engine's clock and holding no thread, so a bulk
retry of a thousand flows does not storm the notary. When the job ends, an entry of the audit log
says how it went, in the name of whoever started it: it commits with the job's last checkpoint, or,
for a job killed or failed, the engine's status listener writes it (agent.hospital.jobs). The
listing of jobs (jobs()) shows every kind of job on the engine, finality recovery jobs too.

A job is a flow like any other: listed, paused, resumed or killed by its id, and kept in the
hospital's care if its own step fails (the database refusing its checkpoint, say).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock
from agent.errors import AgentError
from agent.flows.checkpoints import FlowCheckpoint
from agent.flows.engine import TERMINAL, FlowEngine
from agent.flows.flow import STARTED, Advance, Await, Flow, FlowContext, StepOutcome
from agent.hospital.hospital import PatientFilter, PatientView
from agent.hospital.jobs import (
    DONE,
    JobListing,
    Summary,
    closing_entry,
    common_fields,
    ended_text,
    on_end,
)
from agent.hospital.records import AuditEntry
from agent.hospital.selection import VERBS, BulkVerb, filter_json, sample_row, select_flows
from agent.ledger import serialization as ser
from agent.ports.checkpoints import Checkpoints
from agent.ports.hospital import AuditLog, MedicalRecords

log = logging.getLogger("ledger_agent.hospital.bulk")

BULK_FLOW = "BulkFlowActionFlow"
SAMPLE_SIZE = 20  # flows a dry run shows
MAX_FLOWS_PER_JOB = 10_000  # its results live in its checkpoint: narrow the filter beyond that


class BulkActionError(AgentError):
    """A bulk action the node will not start (too many flows for one job)."""


@dataclass(frozen=True)
class Actor:
    """Who started a job, as the audit log names them."""

    user: str
    role: str
    surface: str


@dataclass(frozen=True)
class JobPlan:
    """What a job is to do, before it starts."""

    name: str  # the catalogue's command: bulkAction, pauseAll, retryAllPausedHospitalized, ...
    verb: BulkVerb
    where: PatientFilter
    reason: str
    actor: Actor
    batch_size: int = 50
    interval_s: float = 0.0
    only_applicable: bool = False  # the snapshot keeps only flows in a status the verb takes


class BulkActions:
    """Bulk actions on one node's flows: dry runs, and jobs on its engine."""

    def __init__(
        self,
        engine: FlowEngine,
        checkpoints: Checkpoints,
        records: MedicalRecords,
        audit: AuditLog,
        clock: Clock,
        kill: Callable[[str], bool],
    ) -> None:
        self.engine = engine
        self.checkpoints = checkpoints
        self.records = records
        self.audit = audit
        self.clock = clock
        self._verbs: dict[str, Callable[[str], bool]] = {
            "retry": engine.retry,
            "pause": engine.pause,
            "kill": kill,
        }
        self.listing = JobListing(checkpoints)
        self.listing.add_kind(BULK_FLOW, lambda cp: self._job_json(cp, results=False))

    def register(self) -> None:
        """Teach the engine to rebuild a job after a restart (before it resumes its flows), and to tell
        the audit log of a job killed or failed."""
        self.engine.register(BULK_FLOW, lambda state: BulkFlowActionFlow(state, self))
        on_end(self.engine, BULK_FLOW, self._ended)

    def list_also(self, flow_name: str, summary: Summary) -> None:
        """Show another kind of job (a finality recovery job) in jobs()."""
        self.listing.add_kind(flow_name, summary)

    # -- what operators call -------------------------------------------------------------------------

    def dry_run(self, action: str, where: PatientFilter) -> dict[str, Any]:
        """How many flows where selects, a sample, and what action would do to each; nothing changes."""
        verb = VERBS[action]
        views = self._select(where)
        plans = [verb.plan(v.checkpoint.status) for v in views]
        acting = sum(1 for v in views if v.checkpoint.status in verb.takes)
        return {
            "dryRun": True,
            "action": action,
            "filter": filter_json(where),
            "total": len(views),
            "wouldAct": acting,
            "wouldSkip": len(views) - acting,
            "plans": dict(Counter(plans)),
            "sample": [sample_row(v, p) for v, p in zip(views[:SAMPLE_SIZE], plans, strict=False)],
        }

    def start(self, plan: JobPlan) -> dict[str, Any]:
        """Take the snapshot of the flows plan selects now, and start the job on them; the job."""
        ids = [
            v.checkpoint.flow_id
            for v in self._select(plan.where)
            if not plan.only_applicable or v.checkpoint.status in plan.verb.takes
        ]
        if len(ids) > MAX_FLOWS_PER_JOB:
            raise BulkActionError(
                f"{plan.name}: the filter selects {len(ids)} flows; one job takes {MAX_FLOWS_PER_JOB} "
                "at most: narrow the filter (flowName, step, status, minAgeSeconds, ...)"
            )
        state: dict[str, Any] = {
            "name": plan.name,
            "action": plan.verb.name,
            "filter": json.dumps(filter_json(plan.where), sort_keys=True),
            "reason": plan.reason,
            "user": plan.actor.user,
            "role": plan.actor.role,
            "surface": plan.actor.surface,
            "ids": ids,
            "results": [],
            "batchSize": plan.batch_size,
            "intervalMs": round(plan.interval_s * 1000),
            "createdAt": self.clock.now().isoformat(),
            "nextAt": None,
        }
        handle = self.engine.start(BulkFlowActionFlow(state, self, fresh=True))
        log.warning(
            "bulk job %s: %s (%s) of %d flow(s) by %s: %s",
            handle.flow_id,
            plan.name,
            plan.verb.name,
            len(ids),
            plan.actor.user,
            plan.reason,
        )
        started = self.job(handle.flow_id, results=False)
        assert started is not None  # its checkpoint was saved before it was scheduled
        return {"dryRun": False, **started}

    def job(self, job_id: str, *, results: bool = True) -> dict[str, Any] | None:
        """A job's progress (and its result per flow); None if there is no such job."""
        checkpoint = self.checkpoints.get_checkpoint(job_id)
        if checkpoint is None or checkpoint.flow_name != BULK_FLOW:
            return None
        return self._job_json(checkpoint, results=results)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first, without its results: bulk jobs and every kind added by list_also
        (each with its kind, the flow's name)."""
        return self.listing.jobs()

    # -- what a job does -----------------------------------------------------------------------------

    def act(self, verb: BulkVerb, flow_id: str, replay: bool) -> list[str | None]:
        """Do verb to one flow: [outcome, status before, status after, detail]."""
        checkpoint = self.checkpoints.get_checkpoint(flow_id)
        if checkpoint is None:
            return ["skipped", None, None, "no such flow any more"]
        before = checkpoint.status
        if replay and before is verb.to:
            return [
                verb.done,
                before.name,
                verb.to.name,
                f"already {before.name}: done before an interruption of this job, or by someone else",
            ]
        if before not in verb.takes:
            return ["skipped", before.name, None, f"{verb.name} takes {verb.takes_text} flows"]
        try:
            done = self._verbs[verb.name](flow_id)
        except Exception as exc:  # one flow's failure is its result; the job goes on
            log.warning("bulk %s of flow %s failed: %s", verb.name, flow_id, exc, exc_info=True)
            return ["failed", before.name, None, f"{type(exc).__name__}: {exc}"]
        if not done:
            return ["skipped", before.name, None, f"no longer {verb.takes_text} when the job reached it"]
        return [verb.done, before.name, verb.to.name, ""]

    def finished(self, job_id: str, state: dict[str, Any], at: datetime) -> None:
        """The audit log's entry for a job that has done every flow (committed with its checkpoint)."""
        self.audit.append(self._closing(job_id, state, at, "finished"))

    def _ended(self, checkpoint: FlowCheckpoint, state: dict[str, Any]) -> None:
        """The audit log's entry for a job killed, or failed by its own step (the engine's listener)."""
        self.audit.append(
            self._closing(checkpoint.flow_id, state, checkpoint.updated_at, ended_text(checkpoint))
        )

    def _closing(self, job_id: str, state: dict[str, Any], at: datetime, ended: str) -> AuditEntry:
        return closing_entry(
            state,
            at=at,
            action=str(state.get("name")),
            target=f"job {job_id}: {state.get('action')} {state.get('filter')}",
            ended=ended,
            processed=len(state.get("results", [])),
            total=len(state.get("ids", [])),
            nothing="no flows",
        )

    # -- helpers -------------------------------------------------------------------------------------

    def _select(self, where: PatientFilter) -> list[PatientView]:
        return select_flows(
            self.checkpoints, self.records, self.engine, where, self.clock.now(), exclude=(BULK_FLOW,)
        )

    def _job_json(self, checkpoint: FlowCheckpoint, *, results: bool) -> dict[str, Any]:
        state = ser.decode(checkpoint.value or ser.encode({}), "checkpoint")
        ids, done = list(state.get("ids", [])), list(state.get("results", []))
        found: dict[str, Any] = {
            "jobId": checkpoint.flow_id,
            **common_fields(checkpoint),
            "name": state.get("name"),
            "action": state.get("action"),
            "filter": json.loads(state.get("filter") or "{}"),
            "reason": state.get("reason"),
            "user": state.get("user"),
            "role": state.get("role"),
            "surface": state.get("surface"),
            "status": checkpoint.status.name,
            "finished": checkpoint.status in TERMINAL,
            "step": checkpoint.progress_step,
            "waitingFor": self.engine.waiting_for(checkpoint.flow_id),
            "error": checkpoint.error,
            "total": len(ids),
            "processed": len(done),
            "counts": dict(_counts(done)),
            "batchSize": state.get("batchSize"),
            "batchIntervalSeconds": (state.get("intervalMs") or 0) / 1000,
            "createdAt": state.get("createdAt"),
            "updatedAt": checkpoint.updated_at.isoformat(),
            "nextBatchAt": state.get("nextAt"),
        }
        if results:
            found["results"] = [
                {"flowId": flow_id, "outcome": r[0], "from": r[1], "to": r[2], "detail": r[3]}
                for flow_id, r in zip(ids, done, strict=False)
            ]
        return found


def _counts(results: list[Any]) -> Counter[str]:
    return Counter(str(r[0]) for r in results)


class BulkFlowActionFlow(Flow):
    """One bulk job: a batch of flows a step, its results in its state (see the module)."""

    name = BULK_FLOW

    def __init__(self, state: dict[str, Any], actions: BulkActions, *, fresh: bool = False) -> None:
        super().__init__(state)
        self.actions = actions
        # The step this instance committed itself: the batch after it has not run yet. Any other
        # (an instance rebuilt after a restart or an error) may be replaying a batch cut off half way.
        self._committed: str | None = STARTED if fresh else None

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        state = self.state
        ids, results = state["ids"], state["results"]
        replay = progress_step != self._committed
        if len(results) >= len(ids):
            counts = dict(_counts(results))
            return Advance(
                DONE,
                effect=lambda: self.actions.finished(ctx.flow_id, state, ctx.now),
                done=True,
                result=counts,
            )
        due = state.get("nextAt")
        if due is not None and ctx.now < datetime.fromisoformat(due):
            return Await(
                (f"{BULK_FLOW}.{ctx.flow_id}.never",), datetime.fromisoformat(due), f"its next batch at {due}"
            )
        verb = VERBS[state["action"]]
        size = int(state["batchSize"])
        for flow_id in ids[len(results) : len(results) + size]:
            results.append(self.actions.act(verb, flow_id, replay))
        interval_ms = int(state.get("intervalMs") or 0)
        more = len(results) < len(ids)
        state["nextAt"] = (
            (ctx.now + timedelta(milliseconds=interval_ms)).isoformat() if more and interval_ms else None
        )
        step = f"BATCH_{math.ceil(len(results) / size)}"
        self._committed = step
        return Advance(step)

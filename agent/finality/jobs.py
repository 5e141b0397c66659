"""Bulk finality recovery as a job on the node: a durable flow with a result per transaction.

A job is FinalityRecoveryJobFlow, a flow on the engine like the hospital's bulk jobs
(agent.hospital.bulk). Its state holds the selection's snapshot when it started (the transactions
and the keys the bulk recoveries would answer by), forceRecover, the wait per recovery, the reason,
and a result per transaction so far. Each step recovers one transaction (recover_finality_flow_by_txn_id,
waiting for its FinalityRecoveryFlow on another worker) and commits its result with the checkpoint,
so after a crash or a restart the engine resumes the job at the first transaction without a result.
A transaction cut off half way is not recovered twice: its recovery flow, resumed by the engine too,
is waited for (or, if it has finished, the transaction needs nothing more).

Each result is [outcome, detail]: recovered, notNeeded (nothing to recover: VERIFIED here), timedOut
(its recovery goes on: the detail says where), failed (why).

When the job ends, an entry of the audit log (recoverFinalityJob, in the name of whoever started it)
says how it went: its last step writes it, committed with its last checkpoint; a job killed or failed
outside a step has it written by the engine's status listener (agent.hospital.jobs). The hospital's
listing of jobs shows these jobs beside its bulk jobs (summary, wired by the composition root).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from agent.clock import Clock
from agent.errors import AgentError, FlowRecoveryException
from agent.finality.queries import RECOVERY_FLOW
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import TERMINAL, FlowEngine, FlowTimeoutError
from agent.flows.flow import Advance, Flow, FlowContext, StepOutcome
from agent.hospital.jobs import DONE, closing_entry, common_fields, ended_text, on_end
from agent.hospital.records import AuditEntry
from agent.ledger import serialization as ser
from agent.ledger.hashing import SecureHash
from agent.ports.checkpoints import Checkpoints
from agent.ports.hospital import AuditLog

log = logging.getLogger("ledger_agent.finality.jobs")

RECOVERY_JOB_FLOW = "FinalityRecoveryJobFlow"
JOB_COMMAND = "recoverFinalityJob"  # the catalogue's command that starts one: its audit entries' action
MAX_TRANSACTIONS_PER_JOB = 10_000  # its snapshot and results live in its checkpoint
RECOVERED, NOT_NEEDED, TIMED_OUT, FAILED = "recovered", "notNeeded", "timedOut", "failed"


class RecoveryJobs:
    """Finality recovery jobs on one node's engine."""

    def __init__(
        self,
        recovery: Any,
        engine: FlowEngine,
        checkpoints: Checkpoints,
        clock: Clock,
        audit: AuditLog | None = None,
    ) -> None:
        self.recovery = recovery  # agent.finality.recovery.FinalityRecoveryService
        self.engine = engine
        self.checkpoints = checkpoints
        self.clock = clock
        self.audit = audit  # None: no closing entries (a service built without the node's audit log)

    def register(self) -> None:
        """Teach the engine to rebuild a job after a restart (before it resumes its flows), and to tell
        the audit log of a job killed or failed."""
        self.engine.register(RECOVERY_JOB_FLOW, lambda state: FinalityRecoveryJobFlow(state, self))
        on_end(self.engine, RECOVERY_JOB_FLOW, self._ended)

    def start(
        self,
        selected: Iterable[tuple[str, SecureHash]],
        *,
        force: bool,
        timeout: float,
        reason: str | None,
        user: str = "(in-process)",
        role: str = "",
        surface: str = "",
    ) -> dict[str, Any]:
        """Start a job on the transactions selected now (key, tx id); the job, without its results."""
        chosen = list(selected)
        if len(chosen) > MAX_TRANSACTIONS_PER_JOB:
            raise FlowRecoveryException(
                f"{len(chosen)} transactions selected; one recovery job takes {MAX_TRANSACTIONS_PER_JOB} at "
                "most: narrow the selection (flowStartFromTime, flowStartUntilTime, initiatedBy, ...)"
            )
        state: dict[str, Any] = {
            "keys": [key for key, _ in chosen],
            "txIds": [str(tx_id) for _, tx_id in chosen],
            "results": [],
            "force": force,
            "timeoutMs": round(timeout * 1000),
            "reason": reason,
            "user": user,
            "role": role,
            "surface": surface,
            "createdAt": self.clock.now().isoformat(),
        }
        handle = self.engine.start(FinalityRecoveryJobFlow(state, self))
        log.warning(
            "finality recovery job %s: %d transaction(s) by %s: %s", handle.flow_id, len(chosen), user, reason
        )
        job = self.job(handle.flow_id, results=False)
        assert job is not None  # its checkpoint was saved before it was scheduled
        return job

    def job(self, job_id: str, *, results: bool = True) -> dict[str, Any] | None:
        """A job's progress (and its result per transaction); None if there is no such job."""
        checkpoint = self.checkpoints.get_checkpoint(job_id)
        if checkpoint is None or checkpoint.flow_name != RECOVERY_JOB_FLOW:
            return None
        return self._job_json(checkpoint, results=results)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first, without the results per transaction."""
        return [self.summary(cp) for cp in self.checkpoints.iter_checkpoints(flow_name=RECOVERY_JOB_FLOW)]

    def summary(self, checkpoint: FlowCheckpoint) -> dict[str, Any]:
        """A job as listings show it, without its results (the hospital's listing of every job too)."""
        return self._job_json(checkpoint, results=False)

    def finished(self, job_id: str, state: dict[str, Any], at: datetime) -> None:
        """The audit log's entry for a job that has done every transaction (committed with its checkpoint)."""
        if self.audit is not None:
            self.audit.append(self._closing(job_id, state, at, "finished"))

    def _ended(self, checkpoint: FlowCheckpoint, state: dict[str, Any]) -> None:
        """The audit log's entry for a job killed, or failed by its own step (the engine's listener)."""
        if self.audit is not None:
            self.audit.append(
                self._closing(checkpoint.flow_id, state, checkpoint.updated_at, ended_text(checkpoint))
            )

    def _closing(self, job_id: str, state: dict[str, Any], at: datetime, ended: str) -> AuditEntry:
        total = len(state.get("txIds", []))
        return closing_entry(
            state,
            at=at,
            action=JOB_COMMAND,
            target=f"job {job_id}: recoverFinality {total} transaction(s)",
            ended=ended,
            processed=len(state.get("results", [])),
            total=total,
            nothing="no transactions",
        )

    def recover(self, tx_id: SecureHash, force: bool, timeout: float) -> list[str]:
        """Recover one transaction: [outcome, detail]."""
        resumed = [
            f
            for f in self.engine.flows(tx_id=tx_id, flow_name=RECOVERY_FLOW)
            if f.status is FlowStatus.RUNNABLE
        ]
        try:
            if resumed:  # this job's own recovery, cut off by a restart and resumed by the engine
                handle = self.engine.handle(resumed[-1].flow_id)
                if handle is not None:
                    done = bool(handle.result(timeout))
                    return (
                        [RECOVERED, f"by {RECOVERY_FLOW} {handle.flow_id}, resumed"]
                        if done
                        else [NOT_NEEDED, ""]
                    )
            done = self.recovery.recover_finality_flow_by_txn_id(tx_id, force, timeout=timeout)
        except FlowTimeoutError as exc:
            return [TIMED_OUT, str(exc)]
        except AgentError as exc:  # one transaction's failure is its result; the job goes on
            return [FAILED, f"{type(exc).__name__}: {exc}"]
        return [RECOVERED, ""] if done else [NOT_NEEDED, "nothing to recover here (see the agent's log)"]

    def _job_json(self, checkpoint: FlowCheckpoint, *, results: bool) -> dict[str, Any]:
        state = ser.decode(checkpoint.value or ser.encode({}), "checkpoint")
        keys, tx_ids, done = (
            list(state.get("keys", [])),
            list(state.get("txIds", [])),
            list(state.get("results", [])),
        )
        found: dict[str, Any] = {
            "jobId": checkpoint.flow_id,
            **common_fields(checkpoint),
            "name": JOB_COMMAND,
            "action": "recoverFinality",
            "filter": None,
            "reason": state.get("reason"),
            "user": state.get("user"),
            "role": state.get("role"),
            "surface": state.get("surface"),
            "forceRecover": state.get("force"),
            "status": checkpoint.status.name,
            "finished": checkpoint.status in TERMINAL,
            "step": checkpoint.progress_step,
            "error": checkpoint.error,
            "total": len(tx_ids),
            "processed": len(done),
            "counts": dict(Counter(str(r[0]) for r in done)),
            "createdAt": state.get("createdAt"),
            "updatedAt": checkpoint.updated_at.isoformat(),
        }
        if results:
            found["results"] = [
                {"key": key, "txId": tx, "outcome": r[0], "detail": r[1]}
                for key, tx, r in zip(keys, tx_ids, done, strict=False)
            ]
        return found


class FinalityRecoveryJobFlow(Flow):
    """One recovery job: a transaction a step, its result in its state (see the module)."""

    name = RECOVERY_JOB_FLOW

    def __init__(self, state: dict[str, Any], jobs: RecoveryJobs) -> None:
        super().__init__(state)
        self.jobs = jobs

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        state = self.state
        tx_ids, results = state["txIds"], state["results"]
        if len(results) >= len(tx_ids):
            return Advance(
                DONE,
                effect=lambda: self.jobs.finished(ctx.flow_id, state, ctx.now),
                done=True,
                result=dict(Counter(str(r[0]) for r in results)),
            )
        tx_id = SecureHash.parse(tx_ids[len(results)], "txId")
        results.append(self.jobs.recover(tx_id, bool(state["force"]), int(state["timeoutMs"]) / 1000))
        return Advance(f"TRANSACTION_{len(results)}")

"""What every kind of job on the engine shares: the operator's one listing of them, their common
fields, and the audit log's closing entry.

A job is a durable flow (agent.hospital.bulk's BulkFlowActionFlow, agent.finality.jobs'
FinalityRecoveryJobFlow); the listing reads their checkpoints by flow name, each kind summing up its
own. A job that completes writes its closing entry in its last step's effect, so the entry commits
with its last checkpoint; a job killed, or failed by its own step, ends outside a step, and the
engine's status listener (on_end) writes the entry then.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import TERMINAL, FlowEngine
from agent.hospital.records import AuditEntry
from agent.ledger import serialization as ser
from agent.ports.checkpoints import Checkpoints

JOB_SURFACE = "job"  # the audit log's surface for what a job records itself
DONE = "DONE"  # a job's last step: its closing entry committed with it

Summary = Callable[[FlowCheckpoint], dict[str, Any]]


class JobListing:
    """The operator's listing of every kind of job: each kind's summary of its jobs, oldest first."""

    def __init__(self, checkpoints: Checkpoints) -> None:
        self.checkpoints = checkpoints
        self._kinds: dict[str, Summary] = {}

    def add_kind(self, flow_name: str, summary: Summary) -> None:
        """List the jobs of flow_name, each as summary(checkpoint) says; a name added twice is refused."""
        if flow_name in self._kinds:
            raise ValueError(f"jobs of flow {flow_name!r} are listed already")
        self._kinds[flow_name] = summary

    def jobs(self) -> list[dict[str, Any]]:
        """Every job of every kind, oldest started first, without its results."""
        found = [cp for name in self._kinds for cp in self.checkpoints.iter_checkpoints(flow_name=name)]
        found.sort(key=lambda cp: cp.started_at)
        return [self._kinds[cp.flow_name](cp) for cp in found]


def common_fields(checkpoint: FlowCheckpoint) -> dict[str, Any]:
    """The fields every kind of job has in the listing besides its own: its kind and its times."""
    ended = checkpoint.status in TERMINAL
    return {
        "kind": checkpoint.flow_name,
        "startedAt": checkpoint.started_at.isoformat(),
        "finishedAt": checkpoint.updated_at.isoformat() if ended else None,
    }


def counts_text(counts: Mapping[str, int], nothing: str) -> str:
    """`1 failed, 1 recovered`: a job's outcomes, as its closing entry says them."""
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or nothing


def closing_entry(
    state: Mapping[str, Any],
    *,
    at: datetime,
    action: str,
    target: str,
    ended: str,
    processed: int,
    total: int,
    nothing: str,
) -> AuditEntry:
    """The audit log's entry for a job that ended (ended: finished, killed, failed: why), in the name of
    whoever started it."""
    counts = Counter(str(r[0]) for r in state.get("results", []))
    said = counts_text(counts, nothing)
    if processed < total:
        said += f" ({processed} of {total} done)"
    return AuditEntry(
        at=at,
        user=str(state.get("user") or "(unknown)"),
        role=str(state.get("role") or ""),
        action=action,
        reason=state.get("reason"),
        target=target,
        outcome=f"job {ended}: {said}",
        surface=JOB_SURFACE,
    )


def on_end(
    engine: FlowEngine, flow_name: str, write: Callable[[FlowCheckpoint, dict[str, Any]], None]
) -> None:
    """write(checkpoint, its state) when a job of flow_name ends KILLED or FAILED outside its last step
    (one that completes wrote its entry in that step)."""

    def listener(checkpoint: FlowCheckpoint) -> None:
        if checkpoint.flow_name != flow_name or checkpoint.status not in (
            FlowStatus.KILLED,
            FlowStatus.FAILED,
        ):
            return
        if checkpoint.progress_step == DONE:  # killed as its last step committed: that step wrote it
            return
        state = ser.decode(checkpoint.value or ser.encode({}), "checkpoint")
        write(checkpoint, state if isinstance(state, dict) else {})

    engine.on_status(listener)


def ended_text(checkpoint: FlowCheckpoint) -> str:
    """How a job ended outside its last step, for its closing entry."""
    if checkpoint.status is FlowStatus.KILLED:
        return "killed"
    return f"failed at {checkpoint.progress_step}: {checkpoint.error}"

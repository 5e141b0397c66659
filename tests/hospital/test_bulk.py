"""Bulk actions by filter on a real runtime and store: a dry run's plans and sample, a job's snapshot and
its result per flow, batches paced on the clock, a job going on after its node restarts, a batch run
again after an interruption, and Corda Enterprise's bulk verbs.

Patients are real: node.conf keeps an injected failure of FinalityFlow for observation (a rule), so
each issuance stops HOSPITALIZED at AFTER_RECORD; retried, it goes past the fault and completes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowTimeoutError
from agent.flows.flow import STARTED, Await, Flow, FlowContext, StepOutcome
from agent.hospital import bulk as bulk_module
from agent.hospital.bulk import BULK_FLOW, Actor, BulkActionError, BulkFlowActionFlow, JobPlan
from agent.hospital.hospital import PatientFilter
from agent.hospital.selection import VERBS
from agent.management.hospital_commands import CORDA_BULK_VERBS
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.runtime import AgentRuntime, build_runtime

WAIT = 15.0  # real seconds a test waits for a condition before failing
KEEP_INJECTED_FAILURES = """
flowHospital.rules = [{ match = InjectedFaultError, action = observe }]
faultInjection = ["FinalityFlow.AFTER_RECORD=fail"]
"""
OPERATOR = Actor("alice", "operator", "rest")


class WaitFlow(Flow):
    """A flow that waits for a message that never comes: RUNNABLE, and never in the hospital."""

    name = "WaitFlow"

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        return Await(("never",), ctx.now + timedelta(days=365), "a message that never comes")


class Node:
    """One node's runtime over its own store; restartable over that store."""

    def __init__(self, tmp_path: Path, *, manual_clock: bool = False) -> None:
        layout = init_network(tmp_path / "net", default_node_names(1), DEFAULT_NOTARY)
        self.entry = layout.nodes[1]
        with self.entry.config.open("a") as conf:
            conf.write(KEEP_INJECTED_FAILURES)
        # A manual clock starts after the certificates were made (checked against it), on a whole second.
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
        self.clock: ManualClock | None = ManualClock(start) if manual_clock else None
        self.runtime = self._build()

    def _build(self) -> AgentRuntime:
        runtime = build_runtime(
            open_node(self.entry.config, clock=self.clock),
            InProcessTransport(InProcessNetwork()),
            start=False,
        )
        runtime.engine.register(WaitFlow.name, WaitFlow)
        runtime.start()
        return runtime

    def restart(self) -> None:
        self.runtime.stop(5)
        self.runtime = self._build()

    def status(self, flow_id: str) -> FlowStatus:
        checkpoint = self.runtime.node.store.checkpoints.get_checkpoint(flow_id)
        assert checkpoint is not None
        return checkpoint.status

    def hospitalize(self, n: int) -> list[str]:
        """n issuances kept for observation at AFTER_RECORD; their flows' ids."""
        me = self.runtime.node.identity.name
        ids = []
        for _ in range(n):
            with pytest.raises(FlowTimeoutError) as running:
                self.runtime.tokens.issue([(me, 5)], "GBP", [], timeout=0.2)
            ids.append(running.value.flow_id)
        wait_until(lambda: all(self.status(i) is FlowStatus.HOSPITALIZED for i in ids), "hospitalized")
        return ids

    def waiting(self) -> str:
        """A RUNNABLE flow the hospital never saw."""
        return self.runtime.engine.start(WaitFlow({})).flow_id

    def job(self, job_id: str) -> dict[str, Any]:
        found = self.runtime.bulk.job(job_id)
        assert found is not None
        return found


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {WAIT} s"
        pause.wait(0.02)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    yield n
    n.runtime.stop(5)


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path, manual_clock=True)
    yield n
    n.runtime.stop(5)


def test_a_dry_run_says_how_many_what_would_happen_and_changes_nothing(node: Node) -> None:
    first, second, third = node.hospitalize(3)
    assert node.runtime.engine.pause(third)
    bulk = node.runtime.bulk
    retry = bulk.dry_run("retry", PatientFilter())
    assert (retry["total"], retry["wouldAct"], retry["wouldSkip"]) == (3, 3, 0)
    assert retry["plans"] == {"retry: HOSPITALIZED -> RUNNABLE": 2, "retry: PAUSED -> RUNNABLE": 1}
    assert [s["flowId"] for s in retry["sample"]] == [first, second, third]
    assert retry["sample"][0] | {"flowId": None} == {
        "flowId": None,
        "flowName": "FinalityFlow",
        "status": "HOSPITALIZED",
        "step": "AFTER_RECORD",
        "diagnosis": "OVERNIGHT_OBSERVATION",
        "staff": "rules[0]",
        "errorType": "InjectedFaultError",
        "attempts": 1,
        "plan": "retry: HOSPITALIZED -> RUNNABLE",
    }
    pause = bulk.dry_run("pause", PatientFilter())
    assert pause["plans"] == {"pause: HOSPITALIZED -> PAUSED": 2, "skip: PAUSED": 1}
    assert (pause["wouldAct"], pause["wouldSkip"]) == (2, 1)
    kill = bulk.dry_run("kill", PatientFilter(status=FlowStatus.COMPLETED))
    assert kill["total"] == 0  # nothing has completed: the hospital holds every issuance
    # The hospital's fields filter too; a flow without records has none of them.
    waiting = node.waiting()
    by_error = bulk.dry_run("retry", PatientFilter(error_type="InjectedFaultError", step="AFTER_RECORD"))
    assert by_error["total"] == 3
    assert bulk.dry_run("retry", PatientFilter(staff="rules[0]", min_attempts=1))["total"] == 3
    assert bulk.dry_run("retry", PatientFilter(min_attempts=2))["total"] == 0
    assert bulk.dry_run("retry", PatientFilter(diagnosis="DISCHARGE"))["total"] == 0
    assert bulk.dry_run("pause", PatientFilter(flow_name="WaitFlow"))["plans"] == {
        "pause: RUNNABLE -> PAUSED": 1
    }
    assert bulk.dry_run("pause", PatientFilter(under_care=True))["total"] == 3
    assert [node.status(i) for i in (first, second, third, waiting)] == [
        FlowStatus.HOSPITALIZED,
        FlowStatus.HOSPITALIZED,
        FlowStatus.PAUSED,
        FlowStatus.RUNNABLE,
    ]


def test_a_job_acts_on_its_snapshot_batch_by_batch_and_records_a_result_per_flow(timed: Node) -> None:
    ids = timed.hospitalize(3)
    plan = JobPlan(
        "bulkAction",
        VERBS["retry"],
        PatientFilter(status=FlowStatus.HOSPITALIZED),
        "the contract is installed",
        OPERATOR,
        batch_size=2,
        interval_s=60,
    )
    t0 = timed.runtime.node.clock.now()
    started = timed.runtime.bulk.start(plan)
    job_id = started["jobId"]
    assert started["total"] == 3 and started["dryRun"] is False and started["user"] == "alice"
    wait_until(lambda: timed.job(job_id)["processed"] == 2, "the first batch done")
    job = timed.job(job_id)
    assert job["status"] == "RUNNABLE" and job["step"] == "BATCH_1"
    assert job["nextBatchAt"] == (t0 + timedelta(seconds=60)).isoformat()
    assert job["waitingFor"] == f"its next batch at {job['nextBatchAt']}"
    # A flow that matches after the job started is not in its snapshot.
    (late,) = timed.hospitalize(1)
    assert timed.clock is not None
    timed.clock.advance(timedelta(seconds=60))
    wait_until(lambda: timed.job(job_id)["finished"], "the job finished")
    job = timed.job(job_id)
    assert job["status"] == "COMPLETED" and job["step"] == "DONE" and job["counts"] == {"retried": 3}
    assert sorted((r["flowId"], r["outcome"], r["from"], r["to"]) for r in job["results"]) == sorted(
        (i, "retried", "HOSPITALIZED", "RUNNABLE") for i in ids
    )
    wait_until(lambda: all(timed.status(i) is FlowStatus.COMPLETED for i in ids), "the retried completed")
    assert timed.status(late) is FlowStatus.HOSPITALIZED
    (entry,) = timed.runtime.node.store.audit.entries()
    assert (entry.user, entry.action, entry.surface, entry.reason) == (
        "alice",
        "bulkAction",
        "job",
        "the contract is installed",
    )
    assert entry.target.startswith(f"job {job_id}: retry ") and entry.outcome == "job finished: 3 retried"
    assert [j["jobId"] for j in timed.runtime.bulk.jobs()] == [job_id]
    assert "results" not in timed.runtime.bulk.jobs()[0]


def test_a_job_goes_on_after_its_node_restarts(timed: Node) -> None:
    ids = timed.hospitalize(3)
    for flow_id in ids:
        assert timed.runtime.engine.pause(flow_id)  # PAUSED stays PAUSED over a restart
    plan = JobPlan(
        "bulkAction",
        VERBS["retry"],
        PatientFilter(status=FlowStatus.PAUSED),
        "retry after the fix",
        OPERATOR,
        batch_size=1,
        interval_s=30,
    )
    job_id = timed.runtime.bulk.start(plan)["jobId"]
    wait_until(lambda: timed.job(job_id)["processed"] == 1, "the first batch done")
    timed.restart()
    assert job_id in {cp.flow_id for cp in timed.runtime.resumed}
    job = timed.job(job_id)
    assert (job["processed"], job["status"]) == (1, "RUNNABLE")  # waiting for its next batch, as before
    for expected in (2, 3):
        assert timed.clock is not None
        timed.clock.advance(timedelta(seconds=30))
        wait_until(lambda n=expected: timed.job(job_id)["processed"] == n, f"batch {expected} done")  # type: ignore[misc]
    wait_until(lambda: timed.job(job_id)["finished"], "the job finished")
    job = timed.job(job_id)
    assert [r["outcome"] for r in job["results"]] == ["retried"] * 3
    wait_until(lambda: all(timed.status(i) is FlowStatus.COMPLETED for i in ids), "the retried completed")


def test_a_batch_run_again_after_an_interruption_says_what_was_done_before(node: Node) -> None:
    (flow_id,) = node.hospitalize(1)
    assert node.runtime.engine.retry(flow_id)  # as if the job retried it, then the process died
    wait_until(lambda: node.status(flow_id) is FlowStatus.COMPLETED, "completed")
    waiting = node.waiting()
    assert node.runtime.engine.pause(waiting)
    state: dict[str, Any] = {"action": "retry", "ids": [waiting], "results": [], "batchSize": 10}
    ctx = FlowContext("job", datetime.now(UTC))
    # A job that committed STARTED itself is not replaying: a RUNNABLE flow was not its doing.
    rebuilt = BulkFlowActionFlow({**state, "ids": [flow_id], "results": []}, node.runtime.bulk)
    rebuilt.step(STARTED, ctx)
    assert rebuilt.state["results"] == [
        ["skipped", "COMPLETED", None, "retry takes HOSPITALIZED or PAUSED flows"]
    ]
    running = node.waiting()
    fresh = BulkFlowActionFlow({**state, "ids": [running], "results": []}, node.runtime.bulk, fresh=True)
    fresh.step(STARTED, ctx)
    assert fresh.state["results"][0][0] == "skipped"
    replayed = BulkFlowActionFlow({**state, "ids": [running], "results": []}, node.runtime.bulk)
    replayed.step(STARTED, ctx)
    assert replayed.state["results"] == [
        [
            "retried",
            "RUNNABLE",
            "RUNNABLE",
            "already RUNNABLE: done before an interruption of this job, or by someone else",
        ]
    ]
    acted = BulkFlowActionFlow({**state, "results": []}, node.runtime.bulk)
    acted.step(STARTED, ctx)
    assert acted.state["results"] == [["retried", "PAUSED", "RUNNABLE", ""]]


def test_corda_enterprise_bulk_verbs_and_jobs_never_act_on_jobs(node: Node) -> None:
    bulk = node.runtime.bulk
    patients = node.hospitalize(2)
    waiting = node.waiting()

    def corda(name: str) -> dict[str, Any]:
        verb = CORDA_BULK_VERBS[name]
        plan = JobPlan(
            name, VERBS[verb.action], verb.where, f"{name} for a test", OPERATOR, only_applicable=True
        )
        job = bulk.start(plan)
        wait_until(lambda: node.job(job["jobId"])["finished"], f"{name} finished")
        return node.job(job["jobId"])

    held = corda("pauseAllHospitalized")
    assert {r["flowId"] for r in held["results"]} == set(patients)
    assert node.status(waiting) is FlowStatus.RUNNABLE
    everything = corda("pauseAll")
    assert [r["flowId"] for r in everything["results"]] == [waiting]  # the PAUSED ones are not taken in
    assert node.status(waiting) is FlowStatus.PAUSED
    hospitalized_only = corda("retryAllPausedHospitalized")
    assert {r["flowId"] for r in hospitalized_only["results"]} == set(patients)
    assert node.status(waiting) is FlowStatus.PAUSED  # paused, but never the hospital's
    rest = corda("retryAllPaused")
    assert [r["flowId"] for r in rest["results"]] == [waiting] and rest["counts"] == {"retried": 1}
    jobs = [cp.flow_id for cp in node.runtime.engine.flows(flow_name=BULK_FLOW)]
    assert len(jobs) == 4
    for job in (held, everything, hospitalized_only, rest):
        assert not set(jobs) & {r["flowId"] for r in job["results"]}


def test_a_filter_selecting_more_than_a_job_takes_is_refused(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    node.hospitalize(2)
    monkeypatch.setattr(bulk_module, "MAX_FLOWS_PER_JOB", 1)
    plan = JobPlan("bulkAction", VERBS["kill"], PatientFilter(), "too many", OPERATOR)
    with pytest.raises(BulkActionError, match="selects 2 flows; one job takes 1 at most: narrow the filter"):
        node.runtime.bulk.start(plan)
    assert node.runtime.bulk.jobs() == []


def test_a_job_killed_between_batches_writes_its_closing_entry_and_shows_in_the_listing(timed: Node) -> None:
    ids = timed.hospitalize(3)
    plan = JobPlan(
        "bulkAction",
        VERBS["retry"],
        PatientFilter(status=FlowStatus.HOSPITALIZED),
        "retry a few, then think again",
        OPERATOR,
        batch_size=1,
        interval_s=60,
    )
    job_id = timed.runtime.bulk.start(plan)["jobId"]
    wait_until(lambda: timed.job(job_id)["processed"] == 1, "the first batch done")
    # Parked between batches it ends at once; caught in the tail of its step (a loaded machine), when
    # that step returns: the same closing entry either way.
    assert timed.runtime.engine.kill(job_id)
    wait_until(lambda: timed.job(job_id)["status"] == "KILLED", "the job killed")
    job = timed.job(job_id)
    assert (job["status"], job["finished"], job["processed"], job["total"]) == ("KILLED", True, 1, 3)
    assert (job["kind"], job["finishedAt"]) == (BULK_FLOW, job["updatedAt"])
    (entry,) = timed.runtime.node.store.audit.entries()
    assert (entry.user, entry.role, entry.action, entry.surface, entry.reason) == (
        "alice",
        "operator",
        "bulkAction",
        "job",
        "retry a few, then think again",
    )
    assert entry.target.startswith(f"job {job_id}: retry ")
    assert entry.outcome == "job killed: 1 retried (1 of 3 done)"
    (retried,) = [r["flowId"] for r in job["results"]]
    assert [timed.status(i) for i in ids if i != retried] == [FlowStatus.HOSPITALIZED] * 2
    (listed,) = timed.runtime.bulk.jobs()
    assert (listed["jobId"], listed["kind"], listed["status"]) == (job_id, BULK_FLOW, "KILLED")

"""Bulk finality recovery as a job on the engine: one transaction a step, its result checkpointed,
resumed after a restart (agent.finality.jobs)."""

from __future__ import annotations

import time

import pytest

from agent.flows.checkpoints import FlowStatus
from agent.flows.faults import FaultAction, FaultPlan, InjectedFaultError, simulate_crash
from agent.ledger.vault import TransactionStatus
from tests.finality.test_recovery import (
    WAIT,
    A,
    B,
    C,
    Net,
    a_pays,
    assert_final_everywhere,
    fail_at,
    failed_flow,
    issue,
    no_faults,
)
from tests.finality.test_recovery import net as net  # noqa: PLC0414  (the fixture)


def finished(net: Net, job_id: str) -> dict[str, object]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        job = net[A].recovery.jobs.job(job_id)
        assert job is not None
        if job["finished"]:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {net[A].recovery.jobs.job(job_id)}")


def test_a_recovery_job_recovers_each_transaction_and_resumes_after_a_restart(net: Net) -> None:
    issue(net, (A, 100), (A, 50))
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    first, second = a_pays(net, C, 5, index=0), a_pays(net, B, 6, index=1)
    for stx in (first, second):
        with pytest.raises(InjectedFaultError):
            net[A].finality.finalise(stx)
    no_faults(net)
    keys = [failed_flow(net, A, first.id), failed_flow(net, A, second.id)]
    # The job crashes once it has checkpointed its first result.
    net[A].engine.faults = FaultPlan(
        {("FinalityRecoveryJobFlow", "TRANSACTION_1"): FaultAction.CRASH}, simulate_crash
    )
    job = net[A].recovery.start_job(tx_ids=[first.id, second.id], reason="after the notary's outage")
    assert (job["total"], job["processed"], job["finished"]) == (2, 0, False)
    job_id = str(job["jobId"])
    deadline = time.monotonic() + WAIT
    while (net[A].recovery.jobs.job(job_id) or {}).get("processed") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cut = net[A].recovery.jobs.job(job_id)
    assert cut is not None and (cut["status"], cut["step"]) == (FlowStatus.RUNNABLE.name, "TRANSACTION_1")
    assert net.status(A, second.id) is TransactionStatus.IN_FLIGHT
    net.stop(A)
    restarted = net.start(A)  # resumes the job from its checkpoint
    assert job_id in [r.flow_id for r in restarted.resumed]
    done = finished(net, job_id)
    assert done["status"] == "COMPLETED" and done["counts"] == {"recovered": 2}
    assert done["results"] == [
        {"key": keys[0], "txId": str(first.id), "outcome": "recovered", "detail": ""},
        {"key": keys[1], "txId": str(second.id), "outcome": "recovered", "detail": ""},
    ]
    assert_final_everywhere(net, first.id, (A, C))
    assert_final_everywhere(net, second.id, (A, B))
    assert [j["jobId"] for j in net[A].recovery.jobs.jobs()] == [job_id]


def test_a_job_over_a_stopped_receiver_times_out_on_its_transaction_and_does_the_other(net: Net) -> None:
    issue(net, (A, 100), (A, 50))
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    to_c, to_b = a_pays(net, C, 5, index=0), a_pays(net, B, 6, index=1)
    for stx in (to_c, to_b):
        with pytest.raises(InjectedFaultError):
            net[A].finality.finalise(stx)
    no_faults(net)
    keys = [failed_flow(net, A, to_c.id), failed_flow(net, A, to_b.id)]
    net.stop(C)  # its address goes down: A cannot hand it the transaction
    job = net[A].recovery.start_job(tx_ids=[to_c.id, to_b.id], timeout=2, reason="C is down", user="alice")
    job_id = str(job["jobId"])
    done = finished(net, job_id)
    assert (done["status"], done["total"], done["processed"]) == ("COMPLETED", 2, 2)
    assert done["counts"] == {"timedOut": 1, "recovered": 1}
    stuck, recovered = done["results"]
    assert recovered == {"key": keys[1], "txId": str(to_b.id), "outcome": "recovered", "detail": ""}
    assert (stuck["key"], stuck["txId"], stuck["outcome"]) == (keys[0], str(to_c.id), "timedOut")
    (recovery,) = net[A].engine.flows(tx_id=to_c.id, flow_name="FinalityRecoveryFlow")
    # Where its recovery goes on (the detail names its flow, waiting for C once the hospital has seen
    # why: that can come after the job's wait), and its cause.
    assert stuck["detail"].startswith(f"flow {recovery.flow_id} is still running at step NOTARISED")
    deadline = time.monotonic() + WAIT
    while net[A].engine.waiting_for(recovery.flow_id) != f"{C} (unreachable)":
        assert time.monotonic() < deadline, net[A].engine.waiting_for(recovery.flow_id)
        time.sleep(0.05)
    assert (net.status(A, to_b.id), net.status(B, to_b.id)) == (TransactionStatus.VERIFIED,) * 2
    assert net.status(A, to_c.id) is TransactionStatus.IN_FLIGHT
    # The closing entry, in the name of who started the job, commits with its last checkpoint.
    (entry,) = net[A].node.store.audit.entries(action="recoverFinalityJob")
    assert (entry.user, entry.surface, entry.reason) == ("alice", "job", "C is down")
    assert entry.target == f"job {job_id}: recoverFinality 2 transaction(s)"
    assert entry.outcome == "job finished: 1 recovered, 1 timedOut"
    # The operator's one listing of jobs shows it beside the bulk jobs.
    (listed,) = [j for j in net[A].bulk.jobs() if j["jobId"] == job_id]
    assert (listed["kind"], listed["name"], listed["status"]) == (
        "FinalityRecoveryJobFlow",
        "recoverFinalityJob",
        "COMPLETED",
    )
    assert listed["counts"] == done["counts"] and listed["finishedAt"] == done["updatedAt"]
    assert "results" not in listed
    # Once C is back, the recovery the job left running finishes by itself.
    net.start(C)
    handle = net[A].engine.handle(recovery.flow_id)
    assert handle is not None and handle.result(WAIT) is True
    assert_final_everywhere(net, to_c.id, (A, C))


def test_a_receivers_job_fails_on_what_only_its_initiator_can_recover_and_does_the_other(net: Net) -> None:
    issue(net, (A, 100), (A, 50))
    notarised, never = a_pays(net, C, 5, index=0), a_pays(net, C, 6, index=1)
    for stx, step in ((notarised, "AFTER_NOTARISE"), (never, "AFTER_BROADCAST")):
        fail_at(net, A, "FinalityFlow", step)
        with pytest.raises(InjectedFaultError):
            net[A].finality.finalise(stx)
    no_faults(net)
    job = net[C].recovery.start_job(tx_ids=[notarised.id, never.id], force=True, timeout=WAIT, reason="r")
    job_id = str(job["jobId"])
    deadline = time.monotonic() + WAIT
    while not (done := net[C].recovery.jobs.job(job_id) or {}).get("finished"):
        assert time.monotonic() < deadline, done
        time.sleep(0.05)
    assert (done["status"], done["processed"], done["counts"]) == (
        "COMPLETED",
        2,
        {"recovered": 1, "failed": 1},
    )
    recovered, failed = done["results"]
    assert (recovered["txId"], recovered["outcome"], recovered["detail"]) == (
        str(notarised.id),
        "recovered",
        "",
    )
    assert (failed["txId"], failed["outcome"]) == (str(never.id), "failed")
    assert failed["detail"].startswith("FlowRecoveryException: ")
    assert f"not notarised: only its initiator {A} can recover it" in failed["detail"]
    assert (net.status(C, notarised.id), net.status(C, never.id)) == (
        TransactionStatus.VERIFIED,
        TransactionStatus.IN_FLIGHT,
    )
    (entry,) = net[C].node.store.audit.entries(action="recoverFinalityJob")
    assert entry.outcome == "job finished: 1 failed, 1 recovered" and entry.user == "(in-process)"

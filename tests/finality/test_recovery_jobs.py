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

"""The reconciliation scheduler among real runtimes on the in-process network."""

from __future__ import annotations

import threading
import time

import pytest

from agent.errors import CannotReconcileWithSelfException, ReconciliationAlreadyScheduledException
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.scheduler import QUEUED, RUNNING, ReconciliationScheduler
from agent.ledgersync.status import ReconciliationStatus, ReconciliationStatusValue
from tests.ledgersync.conftest import A, B, C, Net

DEADLINE = 30.0


def wait_done(scheduler: ReconciliationScheduler, *parties: X500Name) -> dict[X500Name, ReconciliationStatus]:
    """Wait (30 s at most) until no job with any of the parties is left; their requester statuses."""
    tick = threading.Event()
    deadline = time.monotonic() + DEADLINE
    while any(scheduler.is_scheduled(p) for p in parties):
        assert time.monotonic() < deadline, f"still scheduled after {DEADLINE}s: {parties}"
        tick.wait(0.02)
    statuses = {p: scheduler.statuses.get(p, True) for p in parties}
    done = {p: s for p, s in statuses.items() if s is not None}
    assert len(done) == len(parties)
    return done


def fresh_scheduler(net: Net, name: X500Name) -> ReconciliationScheduler:
    """A second scheduler over the node's store, as a restarted node builds it."""
    old = net.scheduler(name)
    return ReconciliationScheduler(
        old.service, old.statuses, old.schema, LedgerSyncConfig(), old.clock, str(name)
    )


def test_scheduled_reconciliations_record_what_reconcile_finds(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    scheduler = net.scheduler(A)
    scheduler.schedule([B, C])
    net.scheduler(B).schedule([C])
    done = wait_done(scheduler, B, C)
    with_b, with_c = done[B], done[C]
    assert with_b.last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_FOUND
    assert with_b.last_successful_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_FOUND
    assert set(with_b.last_successful_reconciliation_result) == net.sync(A).reconcile(B).missing_here
    assert set(with_b.last_successful_reconciliation_result) == {t["t4"], t["t5"]}
    assert set(with_c.last_successful_reconciliation_result) == net.sync(A).reconcile(C).missing_here
    assert set(with_c.last_successful_reconciliation_result) == net.expected(A, C) != set()
    assert with_b.state_machine_run_id and with_b.state_machine_run_id != with_c.state_machine_run_id
    assert with_b.last_reconciliation_error == ""

    b_with_c = wait_done(net.scheduler(B), C)[C]
    assert net.sync(B).reconcile(C).missing_here == set()
    assert b_with_c.last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
    assert b_with_c.last_successful_reconciliation_result == ()

    assert scheduler.number_scheduled() == scheduler.number_in_progress() == 0
    assert scheduler.statuses.number_with_differences() == 2


def test_a_node_cannot_schedule_a_reconciliation_with_itself(net: Net) -> None:
    scheduler = net.scheduler(A)
    scheduler.stop(5)
    with pytest.raises(CannotReconcileWithSelfException):
        scheduler.schedule([A])
    with pytest.raises(CannotReconcileWithSelfException):
        scheduler.schedule([B, A])
    assert not scheduler.is_scheduled(B) and scheduler.number_scheduled() == 0


def test_a_party_already_scheduled_is_refused_and_nothing_of_the_call_is_queued(net: Net) -> None:
    scheduler = net.scheduler(A)
    scheduler.stop(5)  # workers stopped: the jobs stay QUEUED
    scheduler.schedule([B])
    assert scheduler.is_scheduled(B) and not scheduler.is_scheduled(C)
    assert scheduler.number_scheduled() == 1 and scheduler.number_in_progress() == 0
    with pytest.raises(ReconciliationAlreadyScheduledException, match="O=PartyB"):
        scheduler.schedule([B])
    with pytest.raises(ReconciliationAlreadyScheduledException):
        scheduler.schedule([C, B])  # C is fine, B is not: neither is queued
    assert not scheduler.is_scheduled(C) and scheduler.number_scheduled() == 1
    with pytest.raises(ReconciliationAlreadyScheduledException):
        scheduler.schedule([C, C])
    assert not scheduler.is_scheduled(C)


def test_a_party_reconciling_with_us_is_refused_in_the_other_direction(net: Net) -> None:
    scheduler = net.scheduler(A)
    scheduler.stop(5)
    scheduler.statuses.started(C, False, "responder-run", 1)  # C asked A, still IN_PROGRESS
    with pytest.raises(ReconciliationAlreadyScheduledException, match="O=PartyC"):
        scheduler.schedule([B, C])
    assert scheduler.number_scheduled() == 0
    scheduler.statuses.succeeded(C, False, 2, [])
    scheduler.schedule([B, C])
    assert scheduler.number_scheduled() == 2


def test_queued_and_interrupted_jobs_survive_a_restart(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    net.scheduler(A).stop(5)
    before = fresh_scheduler(net, A)  # never started
    before.schedule([B, C])
    jobs = before.schema.reconciliation_jobs
    # As a crash in the middle of C's reconciliation leaves it.
    jobs.update(state=RUNNING, state_machine_id="crashed-run").where(jobs.party_name == str(C)).execute()
    assert before.number_scheduled() == 1 and before.number_in_progress() == 1
    del before

    after = fresh_scheduler(net, A)
    assert {j.party_name: j.state for j in jobs.select()} == {str(B): QUEUED, str(C): RUNNING}
    after.start()
    try:
        done = wait_done(after, B, C)
    finally:
        after.stop(5)
    for party in (B, C):
        assert done[party].last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
        assert done[party].state_machine_run_id not in (None, "crashed-run")
    assert jobs.select().count() == 0


def test_an_unreachable_peer_fails_the_reconciliation_and_keeps_the_last_success(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    scheduler = net.scheduler(A)
    scheduler.schedule([B])
    first = wait_done(scheduler, B)[B]
    assert first.last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_FOUND

    net.network.detach(net.entry(B).p2p_address)
    scheduler.schedule([B])
    failed = wait_done(scheduler, B)[B]
    assert failed.last_reconciliation_status is ReconciliationStatusValue.FAILED
    assert failed.last_reconciliation_error.startswith("PeerUnreachableError: ")
    assert failed.last_reconciliation_time_finished is not None
    assert failed.state_machine_run_id != first.state_machine_run_id
    for kept in (
        "last_successful_reconciliation_status",
        "last_successful_reconciliation_result",
        "last_successful_reconciliation_time_started",
        "last_successful_reconciliation_time_finished",
    ):
        assert getattr(failed, kept) == getattr(first, kept)
    assert set(failed.last_successful_reconciliation_result) == {t["t4"], t["t5"]}
    assert scheduler.statuses.failed_parties() == [str(B)]

"""The reconciliation scheduler among real runtimes on the in-process network."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from agent.errors import CannotReconcileWithSelfException, ReconciliationAlreadyScheduledException
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.scheduler import QUEUED, RUNNING, ReconciliationScheduler
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
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


def test_queued_and_interrupted_reconciliations_survive_a_restart(net: Net) -> None:
    from dataclasses import replace

    from agent.flows.checkpoints import FlowStatus

    net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    scheduler = net.scheduler(A)
    scheduler.stop(5)  # no slots: both stay QUEUED
    with_b, with_c = scheduler.schedule([B, C])
    store = net[A].node.store
    for flow_id in (with_b, with_c):
        handle = net[A].engine.handle(flow_id)
        assert handle is not None and handle.wait_for(lambda h: h.waiting_for is not None, DEADLINE)
    # As a crash in the middle of C's reconciliation leaves it: RUNNABLE at RUNNING.
    cut = store.checkpoints.get_checkpoint(with_c)
    assert cut is not None and cut.progress_step == QUEUED
    net.runtimes.pop(A).stop(5)
    net.network.detach(net.entry(A).p2p_address)
    store.checkpoints.update_checkpoint(replace(cut, progress_step=RUNNING), value_changed=False)
    store.close()

    net.start(A)  # the engine resumes both flows; they run once the graph is ready
    done = wait_done(net.scheduler(A), B, C)
    for party, flow_id in ((B, with_b), (C, with_c)):
        assert done[party].last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
        assert done[party].state_machine_run_id == flow_id
        finished = net[A].node.store.checkpoints.get_checkpoint(flow_id)
        assert finished is not None and finished.status is FlowStatus.COMPLETED


def test_the_old_job_queue_becomes_flows_at_start(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    net.runtimes.pop(A).stop(5)
    net.network.detach(net.entry(A).p2p_address)
    from agent.config import load_node_config
    from agent.store.ledger_store import LedgerStore

    store = LedgerStore(load_node_config(net.entry(A).config).database_url)
    jobs = store.schema.reconciliation_jobs
    jobs.insert(party_name=str(B), both_directions=False, state=QUEUED, queued_at_ms=1).execute()
    jobs.insert(party_name=str(C), both_directions=True, state=RUNNING, queued_at_ms=2).execute()
    store.close()

    net.start(A)
    done = wait_done(net.scheduler(A), B, C)
    assert {p: s.last_reconciliation_status for p, s in done.items()} == {
        B: ReconciliationStatusValue.DIFFERENCES_NOT_FOUND,
        C: ReconciliationStatusValue.DIFFERENCES_NOT_FOUND,
    }
    assert net[A].node.store.schema.reconciliation_jobs.select().count() == 0


def test_an_unreachable_peer_fails_the_reconciliation_and_keeps_the_last_success(
    restored: tuple[Net, dict[str, SecureHash]],
) -> None:
    net, t = restored
    scheduler = net.scheduler(A)
    scheduler.schedule([B])
    first = wait_done(scheduler, B)[B]
    assert first.last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_FOUND

    net.network.detach(net.entry(B).p2p_address)
    # No time to ask again: the first attempt's failure is the last (test_timing: an outage outlived).
    scheduler.config = LedgerSyncConfig(max_reconciliation_retry_attempt_timeout=timedelta(0))
    scheduler.schedule([B])
    failed = wait_done(scheduler, B)[B]
    assert failed.last_reconciliation_status is ReconciliationStatusValue.FAILED
    assert failed.last_reconciliation_error.startswith(
        f"PeerUnreachableError: {B} unreachable after 1 attempt(s)"
    )
    assert "maxReconciliationRetryAttemptTimeout (0:00:00)" in failed.last_reconciliation_error
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


def test_a_responder_restarted_mid_session_leaves_no_row_that_blocks_the_next_reconciliation(
    net: Net,
) -> None:
    from agent.flows.checkpoints import FlowStatus
    from agent.ledgersync.admission import RESPONDER_FLOW

    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    sync_b = net[B].ledgersync
    assert sync_b is not None
    session = sync_b.incoming.admit(A)  # A's session with B has begun
    flow = net[B].node.store.checkpoints.get_checkpoint(session.state_machine_id)
    assert flow is not None and (flow.flow_name, flow.status) == (RESPONDER_FLOW, FlowStatus.RUNNABLE)
    assert flow.counterparties == (A,)

    net.restart(B)  # B stops in the middle of the session; its flow resumes and finds no session
    handle = net[B].engine.handle(session.state_machine_id)
    if handle is not None:
        assert handle.wait_for(lambda h: h.done, DEADLINE)
    row = net[B].node.store.checkpoints.get_checkpoint(session.state_machine_id)
    assert row is not None and row.status is FlowStatus.FAILED
    status = net.scheduler(B).statuses.get(A, False)
    assert status is not None and status.last_reconciliation_status is ReconciliationStatusValue.FAILED
    assert "ended when this node stopped" in status.last_reconciliation_error
    # Nothing blocks B's own reconciliation with A, nor A's with B.
    net.scheduler(B).schedule([A])
    net.scheduler(A).schedule([B])
    assert (
        wait_done(net.scheduler(B), A)[A].last_reconciliation_status
        is ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
    )
    assert (
        wait_done(net.scheduler(A), B)[B].last_reconciliation_status
        is ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
    )


def test_killflow_ends_an_incoming_session_through_the_engine(net: Net) -> None:
    from agent.flows.checkpoints import FlowStatus

    sync_b = net[B].ledgersync
    assert sync_b is not None
    session = sync_b.incoming.admit(C)
    listed = net[B].engine.flows(status=FlowStatus.RUNNABLE, counterparty=C)
    assert [cp.flow_id for cp in listed] == [session.state_machine_id]
    handle = net[B].engine.handle(session.state_machine_id)
    assert handle is not None
    assert net[B].engine.kill(session.state_machine_id)
    assert handle.wait_for(lambda h: h.done, DEADLINE)  # at once, or when its step under way returns
    assert not sync_b.is_responding_to_reconciliation_for_party(C)
    killed = net[B].node.store.checkpoints.get_checkpoint(session.state_machine_id)
    assert killed is not None and killed.status is FlowStatus.KILLED
    status = sync_b.statuses.get(C, False)
    assert status is not None and status.last_reconciliation_error.startswith("KilledFlowException")

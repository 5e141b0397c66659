"""The reconciliation scheduler among real runtimes on the in-process network."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import CannotReconcileWithSelfException, ReconciliationAlreadyScheduledException
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.protocol import LedgerSyncService
from agent.ledgersync.scheduler import QUEUED, RUNNING, ReconciliationScheduler
from agent.ledgersync.status import ReconciliationStatus, ReconciliationStatusValue
from agent.network.bootstrap import DEFAULT_NOTARY, NetworkLayout, default_node_names, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.runtime import AgentRuntime, build_runtime

A, B, C = default_node_names(3)
DEADLINE = 30.0


def copy(source: Path, target: Path) -> None:
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


class Net:
    def __init__(self, layout: NetworkLayout) -> None:
        self.layout = layout
        self.network = InProcessNetwork()
        self.runtimes: dict[X500Name, AgentRuntime] = {}

    def __getitem__(self, name: X500Name) -> AgentRuntime:
        return self.runtimes[name]

    def sync(self, name: X500Name) -> LedgerSyncService:
        service = self.runtimes[name].ledgersync
        assert service is not None
        return service

    def scheduler(self, name: X500Name) -> ReconciliationScheduler:
        scheduler = self.runtimes[name].reconciliation_scheduler
        assert scheduler is not None
        return scheduler

    def entry(self, name: X500Name) -> Any:
        return next(e for e in self.layout.nodes if e.name == name)

    def start(self, name: X500Name) -> None:
        entry = self.entry(name)
        # Few, short retries: an unreachable peer fails the reconciliation in well under a second.
        retry = RetryPolicy(max_attempts=2, base_delay=0.01)
        runtime = build_runtime(
            open_node(entry.config), InProcessTransport(self.network), retry=retry, ledgersync=True
        )
        self.network.attach(entry.p2p_address, runtime.peer_service)
        self.runtimes[name] = runtime

    def db(self, name: X500Name) -> Path:
        return Path(self.runtimes[name].node.config.database_url.removeprefix("sqlite:///"))

    def restore(self, name: X500Name, backup: Path) -> None:
        db = self.db(name)
        self.runtimes.pop(name).stop(5)
        self.network.detach(self.entry(name).p2p_address)
        copy(backup, db)
        self.start(name)

    def ids(self, name: X500Name) -> set[SecureHash]:
        return {SecureHash(bytes(i)) for i in self.sync(name).graph.arrays()["ids"]}

    def expected(self, requester: X500Name, peer: X500Name) -> set[SecureHash]:
        theirs = {SecureHash(i) for i in self.sync(peer).pair_set(requester)}
        return theirs - self.ids(requester)

    def stop(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop(5)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    started = Net(layout)
    try:
        for entry in layout.nodes:
            started.start(entry.name)
        yield started
    finally:
        started.stop()


@pytest.fixture
def restored(net: Net, tmp_path: Path) -> tuple[Net, dict[str, SecureHash]]:
    """Three parties trade; A is restored from a backup taken before the last three transactions."""
    t1 = net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    t2 = net[A].tokens.pay(B, 10, "GBP", A)
    copy(net.db(A), tmp_path / "a-backup.db")
    t3 = net[B].tokens.pay(C, 20, "GBP", A)
    t4 = net[A].tokens.pay(C, 30, "GBP", A, observers=[B])
    t5 = net[A].tokens.pay(B, 5, "GBP", A)
    net.restore(A, tmp_path / "a-backup.db")
    return net, {"t1": t1.id, "t2": t2.id, "t3": t3.id, "t4": t4.id, "t5": t5.id}


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

"""LedgerSync's limits among real runtimes on the in-process network: a busy responder and the
requester's back-off (in simulated time), the rate limit, stop and kill, malformed messages."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from agent.clock import Clock, ManualClock
from agent.errors import PeerRequestError, ReconciliationRateLimitExceededException
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.protocol import TOPIC_BEGIN, TOPIC_END, TOPIC_SYMBOLS
from agent.ledgersync.scheduler import ReconciliationScheduler
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from tests.ledgersync.conftest import A, B, C, Net
from tests.ledgersync.test_scheduler import wait_done

V = ReconciliationStatusValue
DEADLINE = 30.0


def until(condition: Callable[[], bool], what: str) -> None:
    tick = threading.Event()
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE}s: {what}"
        tick.wait(0.02)


def limit_responder(net: Net, name: X500Name, **settings: object) -> None:
    sync = net[name].ledgersync
    assert sync is not None
    sync.incoming.config = LedgerSyncConfig(**settings)  # type: ignore[arg-type]


def take_only_slot(net: Net, responder: X500Name, holder: X500Name) -> Callable[[], None]:
    """The responder's one slot held by holder's session; returns the release."""
    limit_responder(net, responder, max_number_of_parallel_reconciliation_requests=1)
    sync = net[responder].ledgersync
    assert sync is not None
    sync.incoming.idle_timeout = timedelta(hours=2)  # held through the requester's simulated waits
    sync.incoming.admit(holder)
    return lambda: sync.incoming.finish(holder, [])


def on_clock(net: Net, clock: Clock) -> None:
    """Every node restarted on one clock (messages carry timestamps each receiver checks)."""
    for name in (B, C):
        net.restart(name, clock)
        sync = net[name].ledgersync
        assert sync is not None and sync.ready.wait(DEADLINE)


def scheduler_on(net: Net, name: X500Name, clock: Clock, **settings: object) -> ReconciliationScheduler:
    """The node restarted on the given clock and LedgerSync settings; its scheduler."""
    net.restart(name, clock, LedgerSyncConfig(**settings))  # type: ignore[arg-type]
    sync = net[name].ledgersync
    assert sync is not None and sync.ready.wait(DEADLINE)
    scheduler = net.scheduler(name)
    scheduler.rng = random.Random(4)
    return scheduler


def run_in_simulated_time(
    net: Net, name: X500Name, clock: ManualClock, party: X500Name, on_wait: Callable[[float], None]
) -> ReconciliationStatus:
    """Move the clock to each wait's end until the reconciliation with party is over; its status."""
    engine, scheduler = net[name].engine, net.scheduler(name)
    deadline = time.monotonic() + DEADLINE
    while scheduler.is_scheduled(party):
        assert time.monotonic() < deadline, f"still scheduled after {DEADLINE}s"
        for cp in engine.flows(flow_name="ReconcileWithPartyFlow", counterparty=party):
            wake = engine.wake_at(cp.flow_id)
            if wake is not None and "asking again" in (engine.waiting_for(cp.flow_id) or ""):
                on_wait((wake - clock.now()).total_seconds())
                clock.advance(wake - clock.now())
                engine.fire_due()
        threading.Event().wait(0.01)
    status = scheduler.statuses.get(party, True)
    assert status is not None
    return status


def test_a_busy_responder_is_asked_again_with_back_off_until_the_timeout(net: Net) -> None:
    clock = ManualClock(datetime.now(UTC))
    on_clock(net, clock)
    take_only_slot(net, B, C)
    began = clock.now()
    scheduler = scheduler_on(net, A, clock, max_reconciliation_retry_attempt_timeout=timedelta(minutes=5))
    scheduler.schedule([B])
    status = run_in_simulated_time(net, A, clock, B, lambda _: None)
    assert status.last_reconciliation_status is V.FAILED
    assert status.last_reconciliation_error.startswith("MaxIncomingSessionsExceededException: ")
    assert "maxReconciliationRetryAttemptTimeout (0:05:00)" in status.last_reconciliation_error
    match = re.search(r"gave up after (\d+) attempt", status.last_reconciliation_error)
    assert match is not None
    # Waits of 1 s doubling to 60 s, each cut by up to half: 5 minutes hold between 7 and 15 attempts.
    assert 7 <= int(match.group(1)) <= 15
    waited = clock.now() - began
    assert timedelta(minutes=2) < waited <= timedelta(minutes=5)
    assert status.last_successful_reconciliation_status is None  # never succeeded


def test_a_busy_responder_that_frees_a_slot_is_reconciled_with(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    clock = ManualClock(datetime.now(UTC))
    on_clock(net, clock)
    release = take_only_slot(net, B, C)
    scheduler = scheduler_on(net, A, clock)
    waits: list[float] = []

    def on_wait(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            release()  # the responder's slot frees during the requester's first wait

    scheduler.schedule([B])
    status = run_in_simulated_time(net, A, clock, B, on_wait)
    assert status.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND
    assert len(waits) == 1 and 0.5 <= waits[0] <= 1.0


def status_of(scheduler: ReconciliationScheduler, party: X500Name) -> ReconciliationStatus | None:
    return scheduler.statuses.get(party, True)


def in_progress(scheduler: ReconciliationScheduler, party: X500Name) -> bool:
    status = status_of(scheduler, party)
    return status is not None and status.last_reconciliation_status is V.IN_PROGRESS


def test_stop_and_kill_end_a_reconciliation_that_waits_for_a_busy_responder(net: Net) -> None:
    take_only_slot(net, B, C)
    real = net.scheduler(A)  # real waits: the retry timeout is an hour
    try:
        real.schedule([B])
        until(lambda: in_progress(real, B), "A's reconciliation with B is IN_PROGRESS")
        sync = net[A].ledgersync
        assert sync is not None and sync.is_reconciliation_scheduled_for_party(B)
        real.stop_for_party(B)  # the one-step stop: cancel and mark STOPPED
        stopped = status_of(real, B)
        assert stopped is not None and stopped.last_reconciliation_status is V.STOPPED
        until(lambda: real.number_in_progress() == 0 and not real.is_scheduled(B), "the job is gone")
        after = status_of(real, B)
        assert after is not None and after.last_reconciliation_status is V.STOPPED  # not overwritten

        real.schedule([B])  # no ReconciliationAlreadyScheduledException: the slot is free again
        until(lambda: in_progress(real, B), "the second reconciliation is IN_PROGRESS")
        running = status_of(real, B)
        assert running is not None and running.state_machine_run_id is not None
        assert running.state_machine_run_id != stopped.state_machine_run_id
        assert real.kill("no-such-flow") is None
        assert real.kill(running.state_machine_run_id) == str(B)
        until(lambda: not real.is_scheduled(B), "the killed job is gone")
        killed = status_of(real, B)
        assert killed is not None and killed.last_reconciliation_status is V.FAILED
        assert killed.last_reconciliation_error.startswith("KilledFlowException: ")
    finally:
        real.stop(5)


def test_the_rate_limit_refuses_at_once_and_the_requester_does_not_retry(net: Net) -> None:
    limit_responder(net, B, max_allowed_reconciliation_requests_per_time_window=1)
    net.sync(A).reconcile(B)
    with pytest.raises(ReconciliationRateLimitExceededException, match="O=PartyA"):
        net.sync(A).reconcile(B)
    net.sync(C).reconcile(B)  # another party has its own window
    scheduler = net.scheduler(A)
    scheduler.schedule([B])
    status = wait_done(scheduler, B)[B]
    assert status.last_reconciliation_status is V.FAILED
    assert status.last_reconciliation_error.startswith("ReconciliationRateLimitExceededException: ")


def test_malformed_messages_fail_that_session_and_the_responder_serves_others(net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40), (C, 10)], "GBP")
    sync_b = net[B].ledgersync
    assert sync_b is not None
    rogue = net[C].peers

    def responder_row() -> ReconciliationStatus:
        row = sync_b.statuses.get(C, False)
        assert row is not None
        return row

    with pytest.raises(PeerRequestError, match="ReconciliationCodecError") as refused:
        rogue.request(B, TOPIC_BEGIN, {"salt": b"short", "size": 1})
    assert "salt" in str(refused.value)
    assert responder_row().last_reconciliation_status is V.FAILED
    assert "salt" in responder_row().last_reconciliation_error

    reply = rogue.request(B, TOPIC_BEGIN, {"salt": bytes(16), "size": 0})
    assert sync_b.is_responding_to_reconciliation_for_party(C)
    with pytest.raises(PeerRequestError, match="ReconciliationCodecError"):
        rogue.request(B, TOPIC_SYMBOLS, {"session": reply["session"], "start": 999, "count": 5})
    assert responder_row().last_reconciliation_error.startswith("ReconciliationCodecError")
    assert not sync_b.is_responding_to_reconciliation_for_party(C)  # its slot is free

    reply = rogue.request(B, TOPIC_BEGIN, {"salt": bytes(16), "size": 0})
    with pytest.raises(PeerRequestError, match="ReconciliationCodecError"):
        rogue.request(B, TOPIC_END, {"session": reply["session"], "missing": b"\x01" * 33})
    assert responder_row().last_reconciliation_status is V.FAILED

    result = net.sync(A).reconcile(B)  # B serves A as before
    assert result.missing_here == set()
    done = sync_b.statuses.get(A, False)
    assert done is not None and done.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND


def test_a_reconciliation_killed_mid_session_frees_the_responders_slot_at_once(net: Net) -> None:
    from agent.errors import KilledFlowException

    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    service = net.sync(A)
    cancelled = threading.Event()
    real = service.peers

    class KilledAfterBegin:
        """A's peer client, with the operator's kill landing right after the session began."""

        def request(self, peer: X500Name, topic: str, payload: object, *, timeout: float = 30.0) -> object:
            reply = real.request(peer, topic, payload, timeout=timeout)
            if topic == TOPIC_BEGIN:
                cancelled.set()
            return reply

    service.peers = KilledAfterBegin()  # type: ignore[assignment]
    try:
        with pytest.raises(KilledFlowException):
            service.reconcile(B, cancelled=cancelled)
    finally:
        service.peers = real
    sync_b = net[B].ledgersync
    assert sync_b is not None and not sync_b.is_responding_to_reconciliation_for_party(A)
    row = sync_b.statuses.get(A, False)
    assert row is not None and row.last_reconciliation_status is V.FAILED
    assert row.last_reconciliation_error.startswith("KilledFlowException")


def test_a_responder_still_reading_its_ledger_graph_is_asked_again_like_a_busy_one(net: Net) -> None:
    from agent.node import open_node
    from agent.p2p.inprocess import InProcessTransport
    from agent.runtime import build_runtime

    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    # B restarts: its services are up and answering, its ledger graph not read yet.
    net.runtimes.pop(B).stop(5)
    net.network.detach(net.entry(B).p2p_address)
    waking = build_runtime(
        open_node(net.entry(B).config), InProcessTransport(net.network), ledgersync=True, start=False
    )
    net.network.attach(net.entry(B).p2p_address, waking.peer_service)
    net.runtimes[B] = waking
    scheduler = net.scheduler(A)
    scheduler.schedule([B])
    engine = net[A].engine
    deadline = time.monotonic() + DEADLINE
    while not any(
        "busy" in (engine.waiting_for(cp.flow_id) or "")
        for cp in engine.flows(flow_name="ReconcileWithPartyFlow", counterparty=B)
    ):
        assert time.monotonic() < deadline, "A never waited for B's graph"
        threading.Event().wait(0.01)
    waking.start()  # B reads its graph; A's next attempt is answered
    status = wait_done(scheduler, B)[B]
    assert status.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND, status.last_reconciliation_error

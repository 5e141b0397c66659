"""The scheduler's slots when an operator or the hospital stops a running reconciliation: the slot is
freed at once, and the reconciliation queues again for one when it is resumed or retried.

Real runtimes on the in-process network, A with one slot. A running reconciliation is held either in
its back-off on a busy responder (then paused) or by an injected fault the hospital keeps for
observation; the other reconciliation is held mid-session by a responder that waits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from agent.errors import ReconciliationAlreadyScheduledException
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.faults import FaultPlan, InjectedFaultError
from agent.flows.flow import Advance, Await, FlowContext
from agent.flows.triage import Decision, Observe, default_policy
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.scheduler import (
    QUEUED,
    RECONCILE_FLOW,
    RUNNING,
    ReconcileWithPartyFlow,
    ReconciliationScheduler,
)
from agent.operator_api.status import ReconciliationStatusValue
from tests.ledgersync.conftest import A, B, C, Net
from tests.ledgersync.test_limits import take_only_slot, until
from tests.ledgersync.test_scheduler import DEADLINE, wait_done

V = ReconciliationStatusValue


@pytest.fixture
def one_slot(net: Net) -> Iterator[ReconciliationScheduler]:
    """A restarted with one slot for its reconciliations; its scheduler."""
    net.restart(A, None, LedgerSyncConfig(max_number_of_parallel_reconciliation_requests=1))
    sync = net[A].ledgersync
    assert sync is not None and sync.ready.wait(DEADLINE)
    yield sync.scheduler


def checkpoint(net: Net, flow_id: str) -> FlowCheckpoint:
    found = net[A].node.store.checkpoints.get_checkpoint(flow_id)
    assert found is not None
    return found


def in_progress_count(net: Net) -> int:
    """NumberOfReconciliationsInProgress, as the LedgerSync bean reads it."""
    sync = net[A].ledgersync
    assert sync is not None
    return sync.counts().number_of_reconciliations_in_progress


def slots_in_use_at_most(scheduler: ReconciliationScheduler, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Slots in use after every attempt to take one (the only place the count grows)."""
    seen = [0]
    real = scheduler.slots.acquire

    def acquire(flow_id: str, queued_at: int) -> bool:
        got = real(flow_id, queued_at)
        seen.append(scheduler.slots.in_use)
        return got

    monkeypatch.setattr(scheduler.slots, "acquire", acquire)
    return seen


def responder_that_waits(
    net: Net, name: X500Name, monkeypatch: pytest.MonkeyPatch
) -> tuple[threading.Event, threading.Event]:
    """name's peer endpoint holds each request (on the caller's thread) until released.

    Returns (entered, release): entered is set once a request is being held.
    """
    service = net[name].peer_service
    real = service.handle
    entered, release = threading.Event(), threading.Event()

    def handle(body: bytes) -> tuple[int, bytes]:
        entered.set()
        assert release.wait(DEADLINE), f"{name} held a request for {DEADLINE}s"
        return real(body)

    monkeypatch.setattr(service, "handle", handle)
    return entered, release


def another_runs_then_the_first_queues_again(
    net: Net,
    scheduler: ReconciliationScheduler,
    first: str,
    run_again: Callable[[str], bool],
    monkeypatch: pytest.MonkeyPatch,
    *,
    free_the_first: Callable[[], None] = lambda: None,
) -> None:
    """first has stopped running and freed the one slot: C's reconciliation takes it and is held
    mid-session; first, run again, waits at QUEUED; once C's ends, first takes the slot and completes."""
    entered, release = responder_that_waits(net, C, monkeypatch)
    second = scheduler.schedule([C])[0]
    assert entered.wait(DEADLINE), "C's reconciliation did not begin its session"
    assert checkpoint(net, second).progress_step == RUNNING and in_progress_count(net) == 1

    assert run_again(first)
    engine = net[A].engine
    until(
        lambda: (
            checkpoint(net, first).progress_step == QUEUED
            and (engine.waiting_for(first) or "").startswith("a free reconciliation slot")
        ),
        "the first reconciliation waits in the queue again",
    )
    assert checkpoint(net, first).status is FlowStatus.RUNNABLE
    assert in_progress_count(net) == 1 and scheduler.number_scheduled() == 1

    free_the_first()
    release.set()
    done = wait_done(scheduler, B, C)
    assert {p: s.last_reconciliation_status for p, s in done.items()} == {
        B: V.DIFFERENCES_NOT_FOUND,
        C: V.DIFFERENCES_NOT_FOUND,
    }
    assert done[B].state_machine_run_id == first and done[C].state_machine_run_id == second
    assert checkpoint(net, first).status is checkpoint(net, second).status is FlowStatus.COMPLETED
    # The engine commits COMPLETED before its status listener gives the slot back: not at once.
    until(lambda: in_progress_count(net) == 0, "the completed reconciliations' slots are free")


def test_pausing_a_running_reconciliation_frees_its_slot_and_resuming_queues_it_again(
    net: Net, one_slot: ReconciliationScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, engine = one_slot, net[A].engine
    used = slots_in_use_at_most(scheduler, monkeypatch)
    free_b = take_only_slot(net, B, C)  # B is busy: A's reconciliation with B waits in its back-off
    first = scheduler.schedule([B])[0]
    until(
        lambda: "busy" in (engine.waiting_for(first) or ""),
        "A's reconciliation with B holds the slot and waits for B",
    )
    assert checkpoint(net, first).progress_step == RUNNING and in_progress_count(net) == 1

    assert engine.pause(first)
    until(lambda: checkpoint(net, first).status is FlowStatus.PAUSED, "the reconciliation is PAUSED")
    until(lambda: in_progress_count(net) == 0, "the paused reconciliation's slot is free")
    assert scheduler.is_scheduled(B)  # paused, not gone: B cannot be scheduled twice
    with pytest.raises(ReconciliationAlreadyScheduledException):
        scheduler.schedule([B])

    another_runs_then_the_first_queues_again(
        net, scheduler, first, engine.resume, monkeypatch, free_the_first=free_b
    )
    assert max(used) == 1


def test_a_reconciliation_kept_for_observation_frees_its_slot_and_a_retry_queues_it_again(
    net: Net, one_slot: ReconciliationScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, engine = one_slot, net[A].engine
    used = slots_in_use_at_most(scheduler, monkeypatch)

    def observe_injected(cp: FlowCheckpoint, error: BaseException, attempts: int) -> Decision:
        if isinstance(error, InjectedFaultError):
            return Observe("an operator (injected fault)")
        return default_policy(cp, error, attempts)

    monkeypatch.setattr(engine, "policy", observe_injected)
    monkeypatch.setattr(engine, "faults", FaultPlan.parse([f"{RECONCILE_FLOW}.{RUNNING}=fail"]))
    first = scheduler.schedule([B])[0]
    until(lambda: checkpoint(net, first).status is FlowStatus.HOSPITALIZED, "the flow is HOSPITALIZED")
    held = checkpoint(net, first)
    assert held.progress_step == RUNNING and held.error is not None and "injected" in held.error
    status = scheduler.statuses.get(B, True)
    assert status is not None and status.last_reconciliation_status is V.IN_PROGRESS
    until(lambda: in_progress_count(net) == 0, "the hospitalized reconciliation's slot is free")
    assert scheduler.is_scheduled(B)

    monkeypatch.setattr(engine, "faults", FaultPlan())  # the retry and the next flow run clean
    another_runs_then_the_first_queues_again(net, scheduler, first, engine.retry, monkeypatch)
    assert max(used) == 1


def test_killing_a_paused_reconciliation_that_queued_again_marks_its_status_failed(
    net: Net, one_slot: ReconciliationScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduler, engine = one_slot, net[A].engine
    take_only_slot(net, B, C)
    first = scheduler.schedule([B])[0]
    until(lambda: "busy" in (engine.waiting_for(first) or ""), "A's reconciliation with B waits for B")
    assert engine.pause(first)
    until(lambda: in_progress_count(net) == 0, "the paused reconciliation's slot is free")
    entered, release = responder_that_waits(net, C, monkeypatch)
    scheduler.schedule([C])
    assert entered.wait(DEADLINE)
    assert engine.resume(first)
    until(lambda: checkpoint(net, first).progress_step == QUEUED, "queued again behind C's")

    assert scheduler.kill(first) == str(B)  # at QUEUED, but IN_PROGRESS since its first run
    killed = scheduler.statuses.get(B, True)
    assert killed is not None and killed.last_reconciliation_status is V.FAILED
    assert killed.last_reconciliation_error.startswith("KilledFlowException: ")
    until(lambda: checkpoint(net, first).status is FlowStatus.KILLED, "the flow is KILLED")
    release.set()
    assert wait_done(scheduler, C)[C].last_reconciliation_status is V.DIFFERENCES_NOT_FOUND


def test_a_queued_reconciliation_woken_for_a_slot_another_took_consumes_the_wake_up(
    net: Net, one_slot: ReconciliationScheduler
) -> None:
    """Else the stale message would wake it at once again and again (a resumed flow may hold one)."""
    scheduler = one_slot
    assert scheduler.slots.acquire("the-holder", 0)
    flow = ReconcileWithPartyFlow({"party": str(B), "both": False, "queued_at": 1}, scheduler)
    now = net[A].node.clock.now()
    try:
        woken = flow.step(QUEUED, FlowContext("the-flow", now, mailbox={"slot": True}))
        assert isinstance(woken, Advance) and woken.step == QUEUED and not woken.done
        parked = flow.step(QUEUED, FlowContext("the-flow", now))
        assert isinstance(parked, Await) and parked.keys == ("slot",)
    finally:
        scheduler.slots.release("the-flow")
        scheduler.slots.release("the-holder")

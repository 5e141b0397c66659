"""A simulated crash (SimulatedCrash) in the engine: the flow's thread unwinds, nothing more is written."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from agent.clock import ManualClock
from agent.errors import SimulatedCrash
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowTimeoutError
from agent.flows.faults import FaultAction, FaultPlan, simulate_crash
from agent.store.ledger_store import LedgerStore
from tests.flows.test_engine import T0, WAIT, Counter, engine_for, wait_parked


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    s = LedgerStore(database_url)
    yield s
    s.close()


def test_a_simulated_crash_leaves_the_checkpoint_committed_and_the_engine_free(store: LedgerStore) -> None:
    plan = FaultPlan({("CounterFlow", "ONE"): FaultAction.CRASH}, simulate_crash)
    first = engine_for(store, faults=plan)
    handle = first.create(Counter({}, store))
    with pytest.raises(SimulatedCrash, match=r"CounterFlow\.ONE"):
        first.run_here(handle.flow_id)
    cp = store.checkpoints.get_checkpoint(handle.flow_id)
    assert cp is not None and (cp.status, cp.progress_step) == (FlowStatus.RUNNABLE, "ONE")
    assert first.wait_idle(WAIT)  # not wedged, and nothing rescheduled it
    assert store.keys.aes_keys() == {}  # TWO's effect did not run after the crash
    first.shutdown(WAIT)

    second = engine_for(store)  # the restart, over the same store
    try:
        (resumed,) = second.resume_all()
        assert resumed.progress_step == "ONE"
        wait_parked(second, handle.flow_id)
        assert second.deliver(handle.flow_id, "go", 1).result(WAIT) == (2, 1, False)
        assert store.keys.aes_keys() == {"k-1": b"material"}
    finally:
        second.shutdown(WAIT)


def test_the_default_crash_action_still_exits_the_process() -> None:
    plan = FaultPlan.parse(["FinalityFlow.AFTER_NOTARISE=crash"])
    assert plan.crash.__name__ == "exit_process"
    assert FaultPlan.parse(["X.Y=crash"], crash=simulate_crash).crash is simulate_crash


def test_a_stopping_engine_lets_its_waiters_go_at_once(store: LedgerStore) -> None:
    engine = engine_for(store, ManualClock(T0))
    handle = engine.start(Counter({}, store))
    wait_parked(engine, handle.flow_id)
    outcome: list[BaseException] = []
    returned = threading.Event()

    def wait() -> None:
        try:
            handle.result(3600)  # a peer handler waiting on its flow
        except FlowTimeoutError as exc:
            outcome.append(exc)
        returned.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    engine.shutdown(WAIT)
    assert returned.wait(WAIT)  # not an hour: the engine runs nothing more
    waiter.join(WAIT)
    assert len(outcome) == 1 and outcome[0].step == "TWO"  # type: ignore[attr-defined]

"""The flow engine on a real store: steps commit with their effects, flows resume, park, retry, end."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.errors import ConfigurationError, PeerRequestError, PeerUnreachableError, TransientTransportError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import FlowEngine, FlowNotFoundError, FlowTimeoutError
from agent.flows.faults import FaultAction, FaultPlan, InjectedFaultError
from agent.flows.flow import Advance, Await, Flow, FlowContext, StepOutcome
from agent.flows.triage import MAX_RETRY_S, Fail, Retry, default_policy, peer_backoff
from agent.ledger import serialization as ser
from agent.ledger.identity import X500Name
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor

BOB = X500Name.parse("O=Bob Plc, L=Rome, C=IT")
T0 = datetime(2026, 1, 2, tzinfo=UTC)
WAIT = 10.0  # real seconds a test waits for a condition before failing


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    s = LedgerStore(database_url)
    yield s
    s.close()


class Counter(Flow):
    """ONE -> TWO (writes an AES key row as its effect) -> waits for "go" -> DONE."""

    name = "CounterFlow"
    killed: list[str] = []

    def __init__(self, state: dict[str, Any], store: LedgerStore) -> None:
        super().__init__(state)
        self.store = store

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return (BOB,)

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        match progress_step:
            case "STARTED":
                self.state["n"] = 1
                return Advance("ONE")
            case "ONE":
                self.state["n"] += 1
                key = self.state.get("key", "k-1")
                return Advance("TWO", effect=lambda: self._insert_key(key))
            case "TWO":
                go = ctx.message("go")
                if go is None:
                    return Await(("go",), ctx.now + timedelta(minutes=5), "go from Bob")
                self.state["go"] = go
                return Advance("DONE", done=True, result=(self.state["n"], go, ctx.timed_out))
        raise AssertionError(progress_step)

    def _insert_key(self, key: str) -> None:
        # A plain insert: a key that exists is a real primary-key violation.
        self.store.schema.aes_encryption_keys.insert(key_id=key, key_material=b"material").execute()

    def on_killed(self) -> None:
        Counter.killed.append(str(self.state.get("key")))


def engine_for(
    store: LedgerStore, clock: ManualClock | None = None, faults: FaultPlan | None = None
) -> FlowEngine:
    engine = FlowEngine(store.checkpoints, store.unit, clock or ManualClock(T0), faults)
    engine.register(Counter.name, lambda state: Counter(state, store))
    return engine


def parked(engine: FlowEngine, flow_id: str) -> bool:
    return engine.waiting_for(flow_id) == "go from Bob"


def wait_parked(engine: FlowEngine, flow_id: str) -> None:
    handle = engine.handle(flow_id)
    assert handle is not None
    assert handle.wait_for(lambda h: h.waiting_for is not None, WAIT), handle.checkpoint


def test_a_flow_commits_each_step_with_its_state_parks_and_completes(store: LedgerStore) -> None:
    engine = engine_for(store)
    try:
        handle = engine.start(Counter({}, store))
        wait_parked(engine, handle.flow_id)
        cp = store.checkpoints.get_checkpoint(handle.flow_id)
        assert cp is not None and (cp.status, cp.progress_step) == (FlowStatus.RUNNABLE, "TWO")
        assert ser.decode(cp.value or b"", "state") == {"n": 2}
        assert cp.counterparties == (BOB,)
        assert "k-1" in store.keys.aes_keys()  # the effect committed with the checkpoint
        with pytest.raises(FlowTimeoutError, match="waiting for go from Bob"):
            handle.result(0.05)
        engine.deliver(handle.flow_id, "go", "now")
        assert handle.result(WAIT) == (2, "now", False)
        done = store.checkpoints.get_checkpoint(handle.flow_id)
        assert done is not None and (done.status, done.progress_step) == (FlowStatus.COMPLETED, "DONE")
    finally:
        engine.shutdown(5)


def test_an_effect_that_fails_leaves_neither_its_writes_nor_the_checkpoint(store: LedgerStore) -> None:
    store.keys.add_aes_keys({"taken": b"x"})
    engine = engine_for(store)
    try:
        # A real primary-key violation inside the step's effect: the row it collides with exists.
        handle = engine.start(Counter({"key": "taken"}, store))
        with pytest.raises(Exception) as err:
            handle.result(WAIT)
        assert not isinstance(err.value, FlowTimeoutError)
        cp = store.checkpoints.get_checkpoint(handle.flow_id)
        assert cp is not None and (cp.status, cp.progress_step) == (FlowStatus.FAILED, "ONE")
        assert ser.decode(cp.value or b"", "state") == {"n": 1, "key": "taken"}  # not the step's n = 2
        assert store.keys.aes_keys() == {"taken": b"x"}
    finally:
        engine.shutdown(5)


def test_a_restarted_engine_resumes_a_runnable_flow_from_its_checkpoint(store: LedgerStore) -> None:
    first = engine_for(store)
    handle = first.start(Counter({}, store))
    wait_parked(first, handle.flow_id)
    first.shutdown(5)  # the process stops; the checkpoint stays RUNNABLE at TWO

    second = engine_for(store)
    try:
        (resumed,) = second.resume_all()
        assert (resumed.flow_id, resumed.progress_step) == (handle.flow_id, "TWO")
        wait_parked(second, handle.flow_id)
        again = second.deliver(handle.flow_id, "go", "later")
        assert again.result(WAIT) == (2, "later", False)
        assert store.keys.aes_keys() == {"k-1": b"material"}  # TWO's effect was not done twice
    finally:
        second.shutdown(5)


def test_a_deadline_wakes_a_parked_flow_on_the_engines_clock(store: LedgerStore) -> None:
    clock = ManualClock(T0)
    engine = engine_for(store, clock)
    try:
        handle = engine.start(Counter({}, store))
        wait_parked(engine, handle.flow_id)
        assert engine.fire_due() == 0
        clock.advance(timedelta(minutes=5, seconds=1))
        assert engine.fire_due() == 1
        # Woken without the message, the step parks again (it sees timed_out and has nothing).
        assert handle.wait_for(lambda h: h.waiting_for is not None, WAIT)
        engine.deliver(handle.flow_id, "go", "late")
        assert handle.result(WAIT)[1] == "late"
    finally:
        engine.shutdown(5)


def test_kill_pause_and_resume_are_verbs_of_the_engine(store: LedgerStore) -> None:
    engine = engine_for(store)
    try:
        paused = engine.start(Counter({"key": "p"}, store))
        wait_parked(engine, paused.flow_id)
        assert engine.pause(paused.flow_id)
        assert store.checkpoints.get_checkpoint(paused.flow_id).status is FlowStatus.PAUSED  # type: ignore[union-attr]
        assert engine.resume(paused.flow_id)
        wait_parked(engine, paused.flow_id)
        assert not engine.resume(paused.flow_id)  # RUNNABLE again: nothing to resume

        killed = engine.start(Counter({"key": "k"}, store))
        wait_parked(engine, killed.flow_id)
        Counter.killed.clear()
        assert engine.kill(killed.flow_id)
        assert store.checkpoints.get_checkpoint(killed.flow_id).status is FlowStatus.KILLED  # type: ignore[union-attr]
        assert Counter.killed == ["k"]  # its counterparties were told
        assert not engine.kill(killed.flow_id)  # ended already
        with pytest.raises(FlowNotFoundError, match="no flow with id nope"):
            engine.kill("nope")
        with pytest.raises(FlowNotFoundError):
            engine.deliver(killed.flow_id, "go", "too late")

        listed = engine.flows(status=FlowStatus.RUNNABLE, counterparty=BOB, step="TWO")
        assert [cp.flow_id for cp in listed] == [paused.flow_id]
        assert engine.flows(flow_name="NoSuchFlow") == []
    finally:
        engine.shutdown(5)


def test_a_checkpoint_of_a_flow_this_node_lacks_is_kept_and_can_be_killed(store: LedgerStore) -> None:
    cp = FlowCheckpoint(
        "f-1", "FlowOfANewerAgent", FlowStatus.RUNNABLE, T0, T0, "STARTED", value=ser.encode({})
    )
    store.checkpoints.save_checkpoint(cp)
    engine = engine_for(store)
    try:
        assert engine.resume_all() == []
        assert store.checkpoints.get_checkpoint("f-1").status is FlowStatus.RUNNABLE  # type: ignore[union-attr]
        assert engine.kill("f-1")
        assert store.checkpoints.get_checkpoint("f-1").status is FlowStatus.KILLED  # type: ignore[union-attr]
    finally:
        engine.shutdown(5)


def test_an_injected_failure_fails_the_flow_at_that_step(store: LedgerStore) -> None:
    engine = engine_for(store, faults=FaultPlan.parse(["CounterFlow.ONE=fail"]))
    try:
        handle = engine.start(Counter({}, store))
        with pytest.raises(InjectedFaultError, match="CounterFlow at ONE"):
            handle.result(WAIT)
        (failed,) = store.checkpoints.iter_checkpoints(FlowStatus.FAILED)
        assert failed.progress_step == "ONE" and "InjectedFaultError" in (failed.error or "")
    finally:
        engine.shutdown(5)


def test_the_store_tells_listeners_of_a_unit_of_work_only_once_it_commits(
    store: LedgerStore, alice: Actor, notary_actor: Actor
) -> None:
    from agent.ledger import token

    heard: list[object] = []
    store.transactions.add_listener(lambda stx, status: heard.append(stx.id))
    issued = token.issue(alice.party, notary_actor.party, [(alice.party, 5)], "GBP").sign([alice.key])
    with pytest.raises(RuntimeError), store.unit.unit_of_work():  # the unit aborts after the record
        store.transactions.record_transaction(issued)
        assert heard == []
        raise RuntimeError("the step stops before its checkpoint")
    assert heard == [] and store.transactions.transaction_status(issued.id) is None
    with store.unit.unit_of_work():
        store.transactions.record_transaction(issued)
    assert heard == [issued.id]


def test_the_default_policy_waits_for_peers_that_are_down_and_fails_the_rest() -> None:
    cp = FlowCheckpoint("f", "FinalityFlow", FlowStatus.RUNNABLE, T0, T0, "AFTER_RECORD")
    down = PeerUnreachableError("O=Bob Plc, L=Rome, C=IT", 5, TransientTransportError("h:1", "refused"))
    decision = default_policy(cp, down, 3)
    assert isinstance(decision, Retry) and "Bob Plc" in decision.waiting_for
    assert isinstance(default_policy(cp, ValueError("bad"), 0), Fail)
    busy = PeerRequestError("O=Bob Plc, L=Rome, C=IT", "ReceiverBusyError", "still at RECEIVED")
    waiting = default_policy(cp, busy, 0)
    assert isinstance(waiting, Retry) and "still at work" in waiting.waiting_for
    refused = PeerRequestError("O=Bob Plc, L=Rome, C=IT", "FinalityError", "records ONLY_RELEVANT")
    assert isinstance(default_policy(cp, refused, 0), Fail)
    delays = [peer_backoff(n) for n in range(40)]
    assert all(0 < d <= MAX_RETRY_S for d in delays)
    assert delays[0] <= 1.0 and min(delays[10:]) >= 0.75 * MAX_RETRY_S


def test_fault_plans_parse_and_refuse_bad_entries() -> None:
    plan = FaultPlan.parse(["FinalityFlow.AFTER_NOTARISE=crash", " ReceiveFinalityFlow.RECORDED = FAIL "])
    assert plan.faults == {
        ("FinalityFlow", "AFTER_NOTARISE"): FaultAction.CRASH,
        ("ReceiveFinalityFlow", "RECORDED"): FaultAction.FAIL,
    }
    assert not FaultPlan.parse([])
    for bad in ("FinalityFlow=crash", "FinalityFlow.X", "FinalityFlow.X=explode", ".X=crash"):
        with pytest.raises(ConfigurationError, match="faultInjection"):
            FaultPlan.parse([bad])


def test_waiters_on_a_handle_are_woken_by_progress(store: LedgerStore) -> None:
    engine = engine_for(store)
    try:
        handle = engine.start(Counter({}, store))
        seen = threading.Event()

        def watch() -> None:
            if handle.wait_for_step(("DONE",), WAIT):
                seen.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        wait_parked(engine, handle.flow_id)
        engine.deliver(handle.flow_id, "go", 1)
        watcher.join(WAIT)
        assert seen.is_set()
    finally:
        engine.shutdown(5)


def test_a_parked_flow_is_listed_with_what_it_waits_for(tmp_path: Path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path}/n.db")
    engine = engine_for(store)
    try:
        handle = engine.start(Counter({}, store))
        wait_parked(engine, handle.flow_id)
        assert parked(engine, handle.flow_id)
    finally:
        engine.shutdown(5)
        store.close()


def test_resume_all_leaves_alone_a_flow_this_engine_runs_already(store: LedgerStore) -> None:
    engine = engine_for(store)
    try:
        handle = engine.start(Counter({}, store))
        wait_parked(engine, handle.flow_id)
        assert engine.resume_all() == []  # a service started it before the engine's own resume
        assert engine.handle(handle.flow_id) is handle
        engine.deliver(handle.flow_id, "go", "once")
        assert handle.result(WAIT) == (2, "once", False)
    finally:
        engine.shutdown(5)

"""Flows leave a checkpoint row from start to end; faults fire only where configured."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.clock import ManualClock
from agent.errors import ConfigurationError
from agent.flows.checkpoints import FlowStatus
from agent.flows.runner import FaultAction, FaultPlan, FlowContext, FlowRunner, InjectedFaultError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.store.ledger_store import LedgerStore

BOB = X500Name.parse("O=Bob Plc, L=Rome, C=IT")
TX = SecureHash.of(b"tx")


@pytest.fixture
def store(tmp_path: object) -> LedgerStore:
    s = LedgerStore(f"sqlite:///{tmp_path}/node.db")
    yield s
    s.close()


def runner(store: LedgerStore, *faults: str) -> FlowRunner:
    return FlowRunner(store, ManualClock(datetime(2026, 1, 2, tzinfo=UTC)), FaultPlan.parse(faults))


def test_a_flow_records_each_step_and_completes(store: LedgerStore) -> None:
    seen: list[str | None] = []

    def body(ctx: FlowContext) -> str:
        ctx.step("ONE", tx_id=TX)
        seen.append(store.get_checkpoint(ctx.flow_id).progress_step)
        ctx.step("TWO", counterparties=[BOB], value=b"state")
        return "done"

    r = runner(store)
    assert r.run("TestFlow", body) == "done"
    (cp,) = store.iter_checkpoints()
    assert seen == ["ONE"]
    assert (cp.flow_name, cp.status, cp.progress_step, cp.tx_id, cp.counterparties, cp.value) == (
        "TestFlow",
        FlowStatus.COMPLETED,
        "TWO",
        TX,
        (BOB,),
        b"state",
    )


def test_a_failing_flow_keeps_its_error_and_step(store: LedgerStore) -> None:
    def body(ctx: FlowContext) -> None:
        ctx.step("HALFWAY")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        runner(store).run("TestFlow", body)
    (cp,) = store.iter_checkpoints(FlowStatus.FAILED)
    assert cp.progress_step == "HALFWAY"
    assert cp.error == "ValueError: boom"


def test_an_injected_failure_fires_at_its_step_only(store: LedgerStore) -> None:
    r = runner(store, "TestFlow.SECOND=fail")

    def body(ctx: FlowContext) -> None:
        ctx.step("FIRST")
        ctx.step("SECOND")
        ctx.step("THIRD")

    with pytest.raises(InjectedFaultError, match="TestFlow at SECOND"):
        r.run("TestFlow", body)
    assert [cp.progress_step for cp in store.iter_checkpoints(FlowStatus.FAILED)] == ["SECOND"]
    assert runner(store, "OtherFlow.SECOND=fail").run("TestFlow", body) is None  # not this flow


def test_flows_left_runnable_are_failed_at_the_next_start(store: LedgerStore) -> None:
    r = runner(store)
    r.run("ReceiveFinalityFlow", lambda ctx: ctx.step("RECORDED"), complete=False)
    assert [cp.status for cp in store.iter_checkpoints()] == [FlowStatus.RUNNABLE]
    (failed,) = runner(store).fail_interrupted()
    assert failed.status is FlowStatus.FAILED
    assert "at step RECORDED" in (failed.error or "")
    assert list(store.iter_checkpoints(FlowStatus.RUNNABLE)) == []


def test_started_flows_run_on_the_pool_and_shutdown_waits(store: LedgerStore) -> None:
    r = runner(store)
    flow_id, future = r.start("TestFlow", lambda ctx: ctx.flow_id)
    assert future.result(timeout=10) == flow_id
    r.shutdown(timeout=10)
    assert store.get_checkpoint(flow_id).status is FlowStatus.COMPLETED
    with pytest.raises(Exception, match="stopping"):
        r.start("TestFlow", lambda ctx: None)


@pytest.mark.parametrize("entry", ["FinalityFlow=crash", "FinalityFlow.X=explode", ".X=crash", "nothing"])
def test_bad_fault_entries_name_the_key(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="faultInjection"):
        FaultPlan.parse([entry])


def test_fault_plan_parses_actions() -> None:
    plan = FaultPlan.parse(["FinalityFlow.AFTER_NOTARISE=crash", "ReceiveFinalityFlow.RECORDED = FAIL"])
    assert plan.faults == {
        ("FinalityFlow", "AFTER_NOTARISE"): FaultAction.CRASH,
        ("ReceiveFinalityFlow", "RECORDED"): FaultAction.FAIL,
    }
    assert not FaultPlan()

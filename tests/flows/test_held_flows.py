"""A caller waiting on a flow that the hospital keeps, or an operator paused, is answered at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.errors import HospitalizeFlowError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import FlowEngine, FlowTimeoutError
from agent.flows.flow import Advance, Flow, FlowContext, StepOutcome
from agent.hospital.hospital import FlowHospital
from agent.store.ledger_store import LedgerStore

WAIT = 10.0  # real seconds before the test gives up on a condition


class Sedated(Flow):
    name = "SedatedFlow"

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        raise HospitalizeFlowError("look at me")


@pytest.fixture
def engine(tmp_path: Any) -> Iterator[FlowEngine]:
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db")
    clock = ManualClock(datetime(2026, 1, 2, tzinfo=UTC))
    engine = FlowEngine(store.checkpoints, store.unit, clock)
    engine.register(Sedated.name, Sedated)
    FlowHospital(store.hospital, store.checkpoints, clock).attach(engine)
    yield engine
    engine.shutdown(5)
    store.close()


def test_a_kept_flow_answers_its_caller_at_once_with_its_status(engine: FlowEngine) -> None:
    handle = engine.start(Sedated({}))
    answers: list[BaseException] = []

    def wait_without_a_timeout() -> None:
        try:
            handle.result(None)  # before: waited for ever on a flow kept for an operator
        except FlowTimeoutError as exc:
            answers.append(exc)

    caller = threading.Thread(target=wait_without_a_timeout, daemon=True)
    caller.start()
    caller.join(WAIT)
    assert not caller.is_alive(), "the caller is still waiting on a flow the hospital keeps"
    (answer,) = answers
    assert isinstance(answer, FlowTimeoutError) and answer.status is FlowStatus.HOSPITALIZED
    assert "is HOSPITALIZED at step STARTED" in str(answer)
    assert answer.waiting_for is not None and "SedationNurse" in answer.waiting_for


class SedatedOnce(Flow):
    """Kept by the hospital on its first run; completes when run again."""

    name = "SedatedOnceFlow"
    runs = 0

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        SedatedOnce.runs += 1
        if SedatedOnce.runs == 1:
            raise HospitalizeFlowError("look at me")
        return Advance("DONE", done=True, result="done")


def test_a_retry_while_the_held_run_is_still_ending_runs_the_flow_again(engine: FlowEngine) -> None:
    # The status listener runs on the flow's own thread, after the flow is HOSPITALIZED and before
    # its run has ended: the gap an operator's `flow retry` fell into (found by CI on PostgreSQL,
    # where the flow then stayed RUNNABLE with nothing to run it).
    engine.register(SedatedOnce.name, SedatedOnce)
    SedatedOnce.runs = 0
    retried: list[bool] = []

    def retry_at_once(checkpoint: FlowCheckpoint) -> None:
        if checkpoint.status is FlowStatus.HOSPITALIZED and not retried:
            retried.append(engine.retry(checkpoint.flow_id))

    engine.on_status(retry_at_once)
    handle = engine.start(SedatedOnce({}))
    assert handle.result(WAIT) == "done"
    assert retried == [True] and SedatedOnce.runs == 2

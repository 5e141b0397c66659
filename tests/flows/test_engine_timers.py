"""A timer that falls due while its flow is still finishing its run must not be lost.

Found by the network simulation (seed 366 of its first version, docs/simulation.md): a flow whose step
failed on an unreachable peer set its retry timer; the engine's timer thread looked at the clock before
the flow's thread had marked the run over, saw the flow "running", dropped the due timer, and the flow
stayed parked, waiting for a peer that was long back, for ever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent.clock import ManualClock
from agent.errors import TransientTransportError
from agent.flows.checkpoints import FlowCheckpoint
from agent.flows.engine import FlowEngine, _Live
from agent.flows.flow import Advance, Await, Flow, FlowContext, StepOutcome
from agent.flows.triage import Decision, Fail, Retry
from agent.store.ledger_store import LedgerStore
from tests.flows.test_engine import T0, WAIT


@pytest.fixture
def store(tmp_path: Any) -> Iterator[LedgerStore]:
    s = LedgerStore(f"sqlite:///{tmp_path}/n.db")
    yield s
    s.close()


class Flaky(Flow):
    """Fails once on a peer that is down, then ends; or parks once with a deadline already past."""

    name = "FlakyFlow"

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        if self.state.get("park") and not ctx.timed_out:
            return Await(("never",), ctx.now, "a deadline already past")
        if not self.state.get("park") and not FAILED_ONCE.is_set():
            FAILED_ONCE.set()
            raise TransientTransportError("peer:1", "connection refused")
        return Advance("DONE", done=True, result="woke")


FAILED_ONCE = threading.Event()


def retry_at_once(checkpoint: FlowCheckpoint, error: BaseException, attempts: int) -> Decision:
    return Retry(0.0, "peer:1") if isinstance(error, TransientTransportError) else Fail()


class TimerLooksInTheWindow(FlowEngine):
    """The timer thread's look at the clock, made to fall in the window: after the step's run set its
    timer, before the run is over (deterministic, instead of once in thousands of runs)."""

    def _on_error(self, live: _Live, error: Exception) -> None:
        super()._on_error(live, error)
        self.fire_due()

    def _set_timer(self, live: _Live, when: Any) -> None:
        super()._set_timer(live, when)
        if live.running and live.awaiting:
            self.fire_due()


@pytest.mark.parametrize("park", [False, True], ids=["retry", "await"])
def test_a_timer_due_while_its_flow_finishes_its_run_still_wakes_it(store: LedgerStore, park: bool) -> None:
    FAILED_ONCE.clear()
    engine = TimerLooksInTheWindow(store.checkpoints, store.unit, ManualClock(T0), policy=retry_at_once)
    engine.register(Flaky.name, Flaky)
    try:
        handle = engine.start(Flaky({"park": park}))
        assert handle.result(WAIT) == "woke"
    finally:
        engine.shutdown(WAIT)

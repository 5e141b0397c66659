"""The flow engine: durable flows that resume from their last checkpoint after a crash.

Mechanism (DBOS's, on Corda's checkpoint table and statuses): a flow's step does its work, then its
database effects and the checkpoint that records the step and the flow's new state commit in one
transaction. A crash before that commit replays the step (peers answer a repeated message as the
first); a crash after it goes on with the next step. At start the engine resumes every RUNNABLE flow
(and, as Corda does, every HOSPITALIZED one) from its checkpoint.

Flows run on the engine's bounded pool; a caller gets a FlowHandle to wait on with a timeout, or takes
the id and goes. A flow parked on a message (`Await`) or on a retry holds no thread: a timer on the
injectable clock wakes it. An error in a step goes to one function, the error policy
(agent/flows/triage.py; a node's is the flow hospital, agent.hospital), which retries the step from
its checkpoint, keeps the flow for observation (HOSPITALIZED), kills it, or fails it.

Operator verbs are methods here: flows (list and filter), kill, pause, resume, retry.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock
from agent.errors import AgentError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.faults import FaultPlan
from agent.flows.flow import STARTED, Advance, Await, Flow, FlowContext
from agent.flows.triage import Decision, ErrorPolicy, Fail, Kill, Observe, Retry, default_policy
from agent.ledger import serialization as ser
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ports.checkpoints import Checkpoints
from agent.ports.unit_of_work import UnitOfWork

log = logging.getLogger("ledger_agent.flows")

FlowFactory = Callable[[dict[str, Any]], Flow]
KILLABLE = (FlowStatus.RUNNABLE, FlowStatus.PAUSED, FlowStatus.HOSPITALIZED)
TERMINAL = (FlowStatus.COMPLETED, FlowStatus.FAILED, FlowStatus.KILLED)
TIMER_POLL_S = 0.5  # how often the timer looks at the clock (a ManualClock moves without telling)


class FlowError(AgentError):
    """A flow cannot be found or cannot take the verb asked of it."""


class FlowNotFoundError(FlowError, KeyError):
    def __init__(self, flow_id: str) -> None:
        super().__init__(f"no flow with id {flow_id}")

    def __str__(self) -> str:
        return str(self.args[0])


class FlowStateError(FlowError):
    """The verb does not apply to a flow in this status (kill a COMPLETED flow, ...)."""


class FlowTimeoutError(FlowError):
    """The caller stopped waiting; the flow goes on (its id says where to look)."""

    def __init__(
        self,
        flow_id: str,
        step: str | None,
        waiting_for: str | None,
        tx_id: SecureHash | None = None,
        status: FlowStatus = FlowStatus.RUNNABLE,
    ) -> None:
        self.flow_id = flow_id
        self.step = step
        self.waiting_for = waiting_for
        self.tx_id = tx_id
        self.status = status
        waiting = f", waiting for {waiting_for}" if waiting_for else ""
        how = "is still running" if status is FlowStatus.RUNNABLE else f"is {status.name}"
        super().__init__(f"flow {flow_id} {how} at step {step}{waiting}")


class UnknownFlowNameError(FlowError):
    """A checkpoint names a flow this node does not have (an older agent reading a newer one's)."""


@dataclass
class _Live:
    flow: Flow
    checkpoint: FlowCheckpoint
    handle: FlowHandle
    mailbox: dict[str, Any] = field(default_factory=dict)
    awaiting: tuple[str, ...] = ()
    waiting_for: str | None = None
    wake_at: datetime | None = None
    timed_out: bool = False
    running: bool = False
    scheduled: bool = False
    run_again: bool = False  # made RUNNABLE (retry, resume) while its last run was still ending
    attempts: int = 0
    kill_requested: bool = False
    pause_requested: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)  # set by kill: stop soon


class FlowHandle:
    """A started flow: its id now, its result or error when it ends."""

    def __init__(self, engine: FlowEngine, flow_id: str) -> None:
        self._engine = engine
        self.flow_id = flow_id
        self.checkpoint: FlowCheckpoint | None = None
        self.waiting_for: str | None = None
        self._result: Any = None
        self._error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.checkpoint is not None and self.checkpoint.status in TERMINAL

    @property
    def held(self) -> bool:
        """Kept for observation or paused: it goes on only when an operator (or a restart) says so."""
        return self.checkpoint is not None and self.checkpoint.status in (
            FlowStatus.HOSPITALIZED,
            FlowStatus.PAUSED,
        )

    def wait_for(self, predicate: Callable[[FlowHandle], bool], timeout: float | None) -> bool:
        """Wait (real time) until predicate(handle) holds or the flow ends; False on timeout.

        Also False as soon as the engine stops: a stopped engine runs nothing more, so a peer handler
        waiting on one of its flows answers at once instead of at the end of its timeout.
        """
        engine = self._engine
        with engine._changed:
            engine._changed.wait_for(
                lambda: self.done or predicate(self) or engine._stopping.is_set(), timeout
            )
            return self.done or predicate(self)

    def wait_for_step(self, steps: tuple[str, ...], timeout: float | None) -> bool:
        return self.wait_for(
            lambda h: h.checkpoint is not None and h.checkpoint.progress_step in steps, timeout
        )

    def result(self, timeout: float | None = None) -> Any:
        """The flow's result; its error if it FAILED; FlowTimeoutError if it is still running, at once
        when it is HOSPITALIZED or PAUSED (it waits for an operator, not for the caller's timeout)."""
        if not self.wait_for(lambda h: h.held, timeout) or self.held:
            cp = self.checkpoint
            step, tx_id = (None, None) if cp is None else (cp.progress_step, cp.tx_id)
            status = FlowStatus.RUNNABLE if cp is None else cp.status
            raise FlowTimeoutError(self.flow_id, step, self.waiting_for, tx_id, status)
        assert self.checkpoint is not None
        if self._error is not None:
            raise self._error
        if self.checkpoint.status is FlowStatus.KILLED:
            raise FlowStateError(f"flow {self.flow_id} was killed")
        return self._result


class FlowEngine:
    def __init__(
        self,
        checkpoints: Checkpoints,
        unit: UnitOfWork,
        clock: Clock,
        faults: FaultPlan | None = None,
        *,
        workers: int = 16,
        policy: ErrorPolicy = default_policy,
    ) -> None:
        self.checkpoints = checkpoints
        self.unit = unit  # of the checkpoints' store: a step's effects commit with its checkpoint
        self.clock = clock
        self.faults = faults or FaultPlan()
        self.policy = policy
        self._factories: dict[str, FlowFactory] = {}
        self._status_listeners: list[Callable[[FlowCheckpoint], None]] = []
        self._recovered_listeners: list[Callable[[FlowCheckpoint], None]] = []
        self._live: dict[str, _Live] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._timers: list[tuple[datetime, int, str]] = []
        self._seq = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flow")
        self._accepting = True
        self._stopping = threading.Event()
        self._timer_thread = threading.Thread(target=self._timer_loop, name="flow-timer", daemon=True)
        self._timer_thread.start()

    @property
    def stopping(self) -> bool:
        """shutdown() was called: nothing new runs (a service's own threads stop with the engine)."""
        return self._stopping.is_set()

    # -- registration and start ----------------------------------------------------------------------

    def register(self, name: str, factory: FlowFactory) -> None:
        """How to rebuild a flow of this name from its saved state; a name registered twice is refused."""
        if name in self._factories:
            raise ValueError(f"flow {name!r} is already registered")
        self._factories[name] = factory

    def on_status(self, listener: Callable[[FlowCheckpoint], None]) -> None:
        """listener(checkpoint) whenever a flow's status changes (paused, hospitalized, runnable again,
        ended), after its row says so. Called with the engine's lock held: it must not wait on flows."""
        self._status_listeners.append(listener)

    def on_recovered(self, listener: Callable[[FlowCheckpoint], None]) -> None:
        """listener(checkpoint) when a flow commits a step after errors at its previous checkpoint
        (the hospital discharges it); called after the commit, without the engine's lock."""
        self._recovered_listeners.append(listener)

    def _status_changed(self, before: FlowStatus | None, checkpoint: FlowCheckpoint) -> None:
        if before is checkpoint.status:
            return
        for listener in self._status_listeners:
            try:
                listener(checkpoint)
            except Exception:  # a listener's failure must not undo or hide the change
                log.exception(
                    "a listener failed on flow %s becoming %s", checkpoint.flow_id, checkpoint.status.name
                )

    @staticmethod
    def new_flow_id() -> str:
        """The one place run ids are minted (Corda's StateMachineRunId: a random UUID)."""
        return str(uuid.uuid4())

    def start(self, flow: Flow, *, flow_id: str | None = None) -> FlowHandle:
        """Checkpoint a new flow and run it on the pool."""
        handle = self.create(flow, flow_id=flow_id)
        self._schedule(handle.flow_id)
        return handle

    def schedule(self, flow_id: str) -> None:
        """Run a created flow on the pool (a no-op if it runs, is queued, or has ended)."""
        self._schedule(flow_id)

    def forget(self, flow_id: str) -> None:
        """Drop a created flow whose checkpoint was rolled back with the caller's unit of work."""
        with self._lock:
            self._live.pop(flow_id, None)

    def create(self, flow: Flow, *, flow_id: str | None = None) -> FlowHandle:
        """Checkpoint a new flow without running it yet (run_here or the pool runs it)."""
        if flow.name not in self._factories:
            raise UnknownFlowNameError(f"flow {flow.name!r} is not registered with the engine")
        now = self.clock.now()
        checkpoint = FlowCheckpoint(
            flow_id=flow_id or self.new_flow_id(),
            flow_name=flow.name,
            status=FlowStatus.RUNNABLE,
            started_at=now,
            updated_at=now,
            progress_step=STARTED,
            counterparties=flow.counterparties,
            tx_id=flow.tx_id,
            value=ser.encode(flow.state),
        )
        with self._lock:
            if not self._accepting:
                raise FlowError("the node is stopping and starts no new flows")
        self.checkpoints.save_checkpoint(checkpoint)
        return self._adopt(flow, checkpoint).handle

    def run_here(self, flow_id: str, *, until: tuple[str, ...] = ()) -> None:
        """Run a flow's steps on this thread until it parks or ends (a responder answering a peer).

        With until, stop after committing one of those steps; the pool then takes the flow on unless
        the caller calls run_here again. Nothing happens if another thread runs it already: the
        caller waits on its handle instead.
        """
        self._drive(flow_id, until=until)
        if until:
            self._schedule(flow_id)  # a no-op unless it stopped at until (or the caller gave up)

    def _adopt(self, flow: Flow, checkpoint: FlowCheckpoint) -> _Live:
        handle = FlowHandle(self, checkpoint.flow_id)
        handle.checkpoint = checkpoint
        live = _Live(flow, checkpoint, handle)
        with self._lock:
            self._live[checkpoint.flow_id] = live
        return live

    def _rebuild(self, checkpoint: FlowCheckpoint) -> Flow:
        factory = self._factories.get(checkpoint.flow_name)
        if factory is None:
            raise UnknownFlowNameError(
                f"flow {checkpoint.flow_id} is a {checkpoint.flow_name!r}, which this node does not have"
            )
        state = ser.decode(checkpoint.value or ser.encode({}), "checkpoint")
        if not isinstance(state, dict):
            raise UnknownFlowNameError(f"flow {checkpoint.flow_id}: its checkpoint holds no state map")
        return factory(state)

    def resume_all(self) -> list[FlowCheckpoint]:
        """At start: every RUNNABLE (and HOSPITALIZED) flow goes on from its last checkpoint."""
        resumed = []
        for status in (FlowStatus.RUNNABLE, FlowStatus.HOSPITALIZED):
            for checkpoint in list(self.checkpoints.iter_checkpoints(status)):
                with self._lock:
                    if checkpoint.flow_id in self._live:
                        continue  # started in this process already (a service's start ran first)
                try:
                    flow = self._rebuild(checkpoint)
                except AgentError as exc:
                    # Kept as it is: an upgraded node may run it; an operator may kill it.
                    log.error("cannot resume flow %s: %s", checkpoint.flow_id, exc)
                    continue
                if checkpoint.status is not FlowStatus.RUNNABLE:
                    # Corda: a flow kept for observation goes back to RUNNABLE, its error cleared.
                    runnable = replace(checkpoint, status=FlowStatus.RUNNABLE, error=None)
                    self._save_row(checkpoint, runnable)
                    checkpoint = runnable  # noqa: PLW2901
                log.info(
                    "resuming flow %s (%s) from step %s",
                    checkpoint.flow_id,
                    checkpoint.flow_name,
                    checkpoint.progress_step,
                )
                self._adopt(flow, checkpoint)
                self._schedule(checkpoint.flow_id)
                resumed.append(checkpoint)
        return resumed

    # -- running -------------------------------------------------------------------------------------

    def _schedule(self, flow_id: str) -> None:
        with self._lock:
            live = self._live.get(flow_id)
            if live is None or live.running or live.scheduled:
                return
            live.scheduled = True
            try:
                self._pool.submit(self._drive, flow_id)
            except RuntimeError:  # the pool is shut down: the checkpoint stays for the next start
                live.scheduled = False

    def _drive(self, flow_id: str, until: tuple[str, ...] = ()) -> None:
        with self._lock:
            live = self._live.get(flow_id)
            if live is None or live.running:
                return
            live.running = True
            live.scheduled = False
        crashed = False
        try:
            self._run_steps(live, until)
        except BaseException as exc:
            crashed = not isinstance(exc, Exception)
            raise
        finally:
            with self._lock:
                live.running = False
                ready = False
                # A BaseException out of a step (a SimulatedCrash, as a dead process) ends it here: the
                # checkpoint stays as last committed and nothing more is written or scheduled for it.
                if not crashed:
                    if flow_id in self._live and (live.kill_requested or live.pause_requested):
                        self._verb_pending(live)  # a parked flow takes its kill or pause now
                    ready = bool(live.awaiting) and any(k in live.mailbox for k in live.awaiting)
                    # A timer that fell due before this run was over was passed over by fire_due (the
                    # flow looked busy) and is gone from the heap: take it here, or the flow sleeps
                    # for ever (found by the network simulation, docs/simulation.md).
                    if live.wake_at is not None and live.wake_at <= self.clock.now():
                        live.wake_at = None
                        live.timed_out = bool(live.awaiting)
                        ready = True
                    ready = (ready or live.run_again) and flow_id in self._live
                live.run_again = False
                self._changed.notify_all()
            if ready:
                self._schedule(flow_id)

    def _run_steps(self, live: _Live, until: tuple[str, ...] = ()) -> None:
        while True:
            with self._lock:
                if self._verb_pending(live) or live.checkpoint.status is not FlowStatus.RUNNABLE:
                    return
                ctx = FlowContext(
                    live.checkpoint.flow_id,
                    self.clock.now(),
                    timed_out=live.timed_out,
                    mailbox=dict(live.mailbox),
                    cancelled=live.cancelled,
                )
                live.timed_out = False
                live.awaiting = ()
            progress = live.checkpoint.progress_step or STARTED
            try:
                outcome = live.flow.step(progress, ctx)
            except Exception as exc:
                self._on_error(live, exc)
                return
            if isinstance(outcome, Await):
                with self._lock:
                    live.awaiting = outcome.keys
                    live.waiting_for = outcome.waiting_for
                    live.handle.waiting_for = outcome.waiting_for
                    if any(k in live.mailbox for k in outcome.keys):
                        continue  # it came while the step ran
                    self._set_timer(live, outcome.deadline)
                    self._changed.notify_all()
                return
            try:
                self._commit(live, outcome, consumed=ctx.mailbox)
            except Exception as exc:
                self._on_error(live, exc)
                return
            if live.checkpoint.status is not FlowStatus.RUNNABLE or outcome.step in until:
                return

    def _verb_pending(self, live: _Live) -> bool:
        """Kill and pause take effect between steps (called with the lock held)."""
        if live.kill_requested:
            self._end(live, FlowStatus.KILLED, None)
            return True
        if live.pause_requested:
            live.pause_requested = False
            self._save(live, replace(live.checkpoint, status=FlowStatus.PAUSED, updated_at=self.clock.now()))
            return True
        return False

    def _commit(self, live: _Live, outcome: Advance, consumed: dict[str, Any]) -> None:
        status = FlowStatus.RUNNABLE
        if outcome.done:
            status = FlowStatus.COMPLETED
        if outcome.fail is not None:
            status = FlowStatus.FAILED
        if live.kill_requested and status is not FlowStatus.RUNNABLE:
            status = FlowStatus.KILLED  # the step ended because it was told to stop
        flow = live.flow
        value = ser.encode(flow.state)
        checkpoint = replace(
            live.checkpoint,
            status=status,
            progress_step=outcome.step,
            updated_at=self.clock.now(),
            counterparties=flow.counterparties or live.checkpoint.counterparties,
            tx_id=flow.tx_id or live.checkpoint.tx_id,
            value=value,
            error=None if outcome.fail is None else _describe(outcome.fail),
        )
        self.faults.inject_before(live.checkpoint.flow_name, outcome.step)
        with self.unit.unit_of_work():
            if outcome.effect is not None:
                outcome.effect()
            # Most steps move on without changing the state: the row then keeps its bytes.
            self.checkpoints.update_checkpoint(checkpoint, value_changed=value != live.checkpoint.value)
        with self._lock:
            before = live.checkpoint.status
            live.checkpoint = checkpoint  # the engine's own view first: a fault below meets this checkpoint
        # A planned fault strikes after the commit and before anyone (a waiting caller, a listener)
        # hears of the step: what a crash right after the commit leaves.
        self.faults.inject(checkpoint.flow_name, outcome.step)
        with self._lock:
            recovered = live.attempts > 0
            for key in consumed:
                live.mailbox.pop(key, None)
            live.attempts = 0
            live.waiting_for = None
            live.handle.waiting_for = None
            live.checkpoint = checkpoint
            live.handle.checkpoint = checkpoint
            if status in TERMINAL:
                live.handle._result = outcome.result
                live.handle._error = outcome.fail
                self._live.pop(checkpoint.flow_id, None)
                if outcome.fail is not None:
                    log.warning(
                        "flow %s %s failed at %s: %s",
                        checkpoint.flow_name,
                        checkpoint.flow_id,
                        checkpoint.progress_step,
                        checkpoint.error,
                    )
            self._changed.notify_all()
            self._status_changed(before, checkpoint)
        if recovered:
            for listener in self._recovered_listeners:
                try:
                    listener(checkpoint)
                except Exception:
                    log.exception("a listener failed on the recovery of flow %s", checkpoint.flow_id)

    def _on_error(self, live: _Live, error: Exception) -> None:
        """Every error in a step comes here; the policy decides (a flow being killed is not asked
        about: it ends KILLED, and never goes back to the hospital)."""
        decision: Decision = Kill()
        if not live.kill_requested:
            try:
                decision = self.policy(live.checkpoint, error, live.attempts)
            except Exception:  # a broken policy must not lose the flow: keep it, visibly
                log.exception("the error policy failed on flow %s", live.checkpoint.flow_id)
                decision = Observe("the flow hospital (its policy failed: see the log)")
        flow: Flow | None = None
        with self._lock:
            if isinstance(decision, Retry) and not live.kill_requested:
                live.attempts += 1
                try:
                    live.flow = self._rebuild(live.checkpoint)  # from the checkpoint, not the half-done step
                except AgentError:
                    decision = Fail()
            if isinstance(decision, Retry) and not live.kill_requested:
                log.info(
                    "flow %s %s at %s: %s; retrying in %.1f s",
                    live.checkpoint.flow_name,
                    live.checkpoint.flow_id,
                    live.checkpoint.progress_step,
                    error,
                    decision.delay,
                )
                live.waiting_for = decision.waiting_for
                live.handle.waiting_for = decision.waiting_for
                self._set_timer(live, self.clock.now() + timedelta(seconds=decision.delay))
                self._changed.notify_all()
                return
            if isinstance(decision, Observe) and not live.kill_requested:
                live.attempts += 1
                live.waiting_for = decision.waiting_for
                live.handle.waiting_for = decision.waiting_for
                live.wake_at = None
                held = replace(
                    live.checkpoint,
                    status=FlowStatus.HOSPITALIZED,
                    updated_at=self.clock.now(),
                    error=_describe(error),
                )
                self._save(live, held)
                return
            if live.kill_requested or isinstance(decision, Kill):
                flow = None if live.kill_requested else live.flow
                self._end(live, FlowStatus.KILLED, None)
            else:
                log.warning(
                    "flow %s %s failed at %s: %s",
                    live.checkpoint.flow_name,
                    live.checkpoint.flow_id,
                    live.checkpoint.progress_step,
                    _describe(error),
                )
                self._end(live, FlowStatus.FAILED, error)
        if flow is not None:
            self._tell_killed(live.checkpoint.flow_id, flow)

    def _tell_killed(self, flow_id: str, flow: Flow) -> None:
        try:
            flow.on_killed()
        except Exception as exc:  # the kill stands; the counterparty will ask or time out
            log.warning("flow %s: could not tell its counterparties of the kill: %s", flow_id, exc)

    def _end(self, live: _Live, status: FlowStatus, error: BaseException | None) -> None:
        """A terminal status outside a step's commit (failure, kill); called with the lock held."""
        checkpoint = replace(
            live.checkpoint,
            status=status,
            updated_at=self.clock.now(),
            error=None if error is None else _describe(error),
        )
        self._save(live, checkpoint)
        live.handle._error = error
        self._live.pop(checkpoint.flow_id, None)

    def _save(self, live: _Live, checkpoint: FlowCheckpoint) -> None:
        before = live.checkpoint.status
        self.checkpoints.save_checkpoint(checkpoint)
        live.checkpoint = checkpoint
        live.handle.checkpoint = checkpoint
        self._changed.notify_all()
        self._status_changed(before, checkpoint)

    def _save_row(self, before: FlowCheckpoint, checkpoint: FlowCheckpoint) -> None:
        """A flow this engine does not hold (ended, or never adopted): its row only."""
        self.checkpoints.save_checkpoint(checkpoint)
        with self._lock:
            self._changed.notify_all()
            self._status_changed(before.status, checkpoint)

    # -- messages and timers -------------------------------------------------------------------------

    def deliver(self, flow_id: str, key: str, message: Any, *, here: bool = False) -> FlowHandle:
        """Hand a message to a flow; a flow parked on that key runs again, on this thread if here."""
        with self._lock:
            live = self._live.get(flow_id)
            if live is None:
                raise FlowNotFoundError(flow_id)
            live.mailbox[key] = message
            wake = key in live.awaiting and not live.running
            handle = live.handle
        if wake and here:
            self._drive(flow_id)
        elif wake:
            self._schedule(flow_id)
        return handle

    def _set_timer(self, live: _Live, when: datetime) -> None:
        live.wake_at = when
        heapq.heappush(self._timers, (when, next(self._seq), live.checkpoint.flow_id))
        self._changed.notify_all()

    def fire_due(self) -> int:
        """Wake every flow whose deadline has passed on the clock; how many woke."""
        now = self.clock.now()
        due = []
        with self._lock:
            while self._timers and self._timers[0][0] <= now:
                when, _, flow_id = heapq.heappop(self._timers)
                live = self._live.get(flow_id)
                if live is None or live.wake_at != when or live.running:
                    continue  # stale: the flow moved on, or a newer deadline replaced this one
                live.wake_at = None
                live.timed_out = bool(live.awaiting)
                due.append(flow_id)
        for flow_id in due:
            self._schedule(flow_id)
        return len(due)

    def _timer_loop(self) -> None:
        while not self._stopping.is_set():
            self.fire_due()
            with self._lock:
                delay = TIMER_POLL_S
                if self._timers:
                    ahead = (self._timers[0][0] - self.clock.now()).total_seconds()
                    delay = max(0.0, min(delay, ahead))
                self._changed.wait(delay)

    # -- operator verbs ------------------------------------------------------------------------------

    def handle(self, flow_id: str) -> FlowHandle | None:
        """The handle of a flow this engine runs now, or None."""
        with self._lock:
            live = self._live.get(flow_id)
            return None if live is None else live.handle

    def wake_at(self, flow_id: str) -> datetime | None:
        """When a parked flow's deadline passes on the clock (None if it is not parked on one)."""
        with self._lock:
            live = self._live.get(flow_id)
            return None if live is None or live.running else live.wake_at

    def wake_waiting(self, waiting_for: str) -> int:
        """Retry now every parked flow whose waiting_for says this (a peer told us what we wait for
        is over); how many."""
        now = self.clock.now()
        woken = []
        with self._lock:
            for flow_id, live in self._live.items():
                if live.running or live.wake_at is None or live.waiting_for != waiting_for:
                    continue
                live.wake_at = None
                live.timed_out = bool(live.awaiting)
                woken.append(flow_id)
        for flow_id in woken:
            log.info("flow %s: %s is over at %s; running it now", flow_id, waiting_for, now.isoformat())
            self._schedule(flow_id)
        return len(woken)

    def waiting_for(self, flow_id: str) -> str | None:
        with self._lock:
            live = self._live.get(flow_id)
            return None if live is None else live.waiting_for

    def flows(
        self,
        *,
        status: FlowStatus | None = None,
        flow_name: str | None = None,
        tx_id: SecureHash | None = None,
        step: str | None = None,
        counterparty: X500Name | None = None,
        older_than: timedelta | None = None,
    ) -> list[FlowCheckpoint]:
        """Checkpoints matching every filter given, oldest first."""
        now = self.clock.now()
        found = []
        for cp in self.checkpoints.iter_checkpoints(status, tx_id=tx_id, flow_name=flow_name):
            if step is not None and cp.progress_step != step:
                continue
            if counterparty is not None and counterparty not in cp.counterparties:
                continue
            if older_than is not None and now - cp.started_at < older_than:
                continue
            found.append(cp)
        return found

    def _checkpoint_for_verb(self, flow_id: str) -> FlowCheckpoint:
        checkpoint = self.checkpoints.get_checkpoint(flow_id)
        if checkpoint is None:
            raise FlowNotFoundError(flow_id)
        return checkpoint

    def kill(self, flow_id: str) -> bool:
        """RUNNABLE, PAUSED or HOSPITALIZED -> KILLED; its counterparties are told. False if it had ended."""
        checkpoint = self._checkpoint_for_verb(flow_id)
        if checkpoint.status not in KILLABLE:
            return False
        flow: Flow | None
        with self._lock:
            live = self._live.get(flow_id)
            if live is not None and live.running:
                live.kill_requested = True  # takes effect when the step in progress returns
                live.cancelled.set()  # a step that can stop early (a reconciliation) does
                flow = live.flow
            elif live is not None:
                flow = live.flow
                self._end(live, FlowStatus.KILLED, None)
            else:
                try:
                    flow = self._rebuild(checkpoint)
                except AgentError:
                    flow = None  # a flow this node cannot run can still be killed
                killed = replace(checkpoint, status=FlowStatus.KILLED, updated_at=self.clock.now())
                self._save_row(checkpoint, killed)
        log.warning("flow %s (%s) killed by an operator", flow_id, checkpoint.flow_name)
        if flow is not None:
            self._tell_killed(flow_id, flow)
        return True

    def pause(self, flow_id: str) -> bool:
        """RUNNABLE or HOSPITALIZED -> PAUSED (between steps); False if it was not running."""
        checkpoint = self._checkpoint_for_verb(flow_id)
        if checkpoint.status not in (FlowStatus.RUNNABLE, FlowStatus.HOSPITALIZED):
            return False
        with self._lock:
            live = self._live.get(flow_id)
            if live is not None and live.running:
                live.pause_requested = True
                return True
            paused = replace(checkpoint, status=FlowStatus.PAUSED, updated_at=self.clock.now())
            if live is not None:
                self._save(live, paused)
            else:
                self._save_row(checkpoint, paused)
        return True

    def resume(self, flow_id: str) -> bool:
        """PAUSED -> RUNNABLE, from its checkpoint; False if it was not paused."""
        return self._run_again(flow_id, (FlowStatus.PAUSED,))

    def retry(self, flow_id: str) -> bool:
        """HOSPITALIZED or PAUSED -> RUNNABLE: the step after its checkpoint runs again now, with a
        fresh retry budget (Corda Enterprise's `flow retry`); False if it was neither."""
        return self._run_again(flow_id, (FlowStatus.HOSPITALIZED, FlowStatus.PAUSED))

    def _run_again(self, flow_id: str, statuses: tuple[FlowStatus, ...]) -> bool:
        checkpoint = self._checkpoint_for_verb(flow_id)
        if checkpoint.status not in statuses:
            return False
        flow = self._rebuild(checkpoint)
        runnable = replace(checkpoint, status=FlowStatus.RUNNABLE, updated_at=self.clock.now(), error=None)
        with self._lock:
            live = self._live.get(flow_id)
            if live is None:
                self._save_row(checkpoint, runnable)
                live = self._adopt(flow, runnable)  # the lock is re-entrant
            else:
                live.flow = flow  # from its checkpoint, as after a restart
                live.attempts = 0
                live.waiting_for = None
                live.handle.waiting_for = None
                self._save(live, runnable)
                # Held or paused by a run that has not returned yet: _schedule would pass it over as
                # busy, and that run's end would not know it must go on.
                live.run_again = live.running
        self._schedule(flow_id)
        return True

    def wait_idle(self, timeout: float | None) -> bool:
        """Wait (real time) until no flow runs or is queued to run; False on timeout.

        For simulations: they move the clock on only once the flows it would wake have parked.
        """
        with self._changed:
            return self._changed.wait_for(
                lambda: not any(v.running or v.scheduled for v in self._live.values()), timeout
            )

    # -- stopping ------------------------------------------------------------------------------------

    def shutdown(self, timeout: float = 30.0) -> None:
        """Start nothing new; let steps under way finish (every flow keeps its checkpoint)."""
        with self._lock:
            self._accepting = False
            self._stopping.set()
            self._changed.notify_all()
        self._timer_thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._changed:
            # Steps under way finish (a peer request has its own timeout); parked flows just stay.
            self._changed.wait_for(lambda: not any(v.running for v in self._live.values()), timeout)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"

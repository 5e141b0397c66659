"""The reconciliation scheduler: ScheduleReconciliationFlow's queue as ReconcileWithPartyFlows on the engine.

`schedule` checks every party first, then checkpoints one ReconcileWithPartyFlow per party in one
database transaction (all or nothing), and returns at once. Each flow waits at QUEUED for one of
maxNumberOfParallelReconciliationRequests slots (oldest first), then RUNNING reconciles, records the
outcome in cr_reconciliation_status with the checkpoint that ends it, and frees its slot. Listing,
killFlow, pauseFlow, resumeFlow and statuses are the engine's, as for every other flow.

One mechanism holds the slots: the engine's status listener. A flow that stops running (PAUSED,
HOSPITALIZED, or ended) gives its slot back, or leaves the queue; a flow rebuilt from a checkpoint at
RUNNING (a restart, a resume or retry, a step retried after an error) goes back to QUEUED and takes a
slot as at start, so the limit holds whatever the operator does. killFlow and
StopReconciliationForPartyFlow free the slot at once, not when the exchange under way returns.

Choices where the reference is vague:

- Queued reconciliations survive a restart (Corda loses them): they are RUNNABLE flows, which the
  engine resumes; one cut off at RUNNING queues again and runs from the beginning (a session is not
  resumable). So does one paused or hospitalized at RUNNING once it is resumed or retried; meanwhile
  its status stays IN_PROGRESS and it counts as scheduled, not in progress.
  Rows of the old cr_reconciliation_jobs queue, from before the engine, become flows at start.
- "Already scheduled or running, in either direction": a RUNNABLE, PAUSED or HOSPITALIZED
  ReconcileWithPartyFlow of ours with that party, or a responder status row (a reconciliation that
  party asked of us) IN_PROGRESS. A party named twice in one call is refused the same way.
- Slots are handed out only once the scheduler is started (after the ledger graph is built and
  checked), so a flow resumed at start waits for the graph instead of failing.
- A responder that is busy (MaxIncomingSessionsExceededException), whose ledger graph is not ready
  (LedgerGraphNotReadyException: it restarted a moment ago and is still reading it), or that cannot
  be reached (PeerUnreachableError once the peer client's own few quick retries are spent: it is down
  or restarting; or it refused our message as sealed before its start, our clock lagging its own),
  is asked again after a jittered back-off (1 s doubling to 1 min, each wait cut by up to half at
  random) until maxReconciliationRetryAttemptTimeout has passed since the first attempt, then fails
  naming the peer, the attempts and the time spent; the flow keeps its slot and its status stays
  IN_PROGRESS meanwhile (parked on the clock, holding no thread). One cut off mid-session begins
  again: the responder's new session replaces the unfinished one (admission.py); so does one whose
  responder restarted mid-session (ReconciliationSessionLostError). A responder
  that keeps the session for observation (KeptForObservationError: it lacks LedgerSync's topics, say)
  is the flow hospital's: the flow waits at RUNNING and asks again, as for a peer keeping any other
  message (docs/hospital.md), until that peer is upgraded or its operator kills the kept flow (we
  are told, ask again at once and are refused). Other refusals and failures end it FAILED at once:
  asking again soon would meet the same answer.
- killFlow ends the flow KILLED between two exchanges, marks its status FAILED
  (KilledFlowException) if it was IN_PROGRESS for that flow, and frees its slot at once (Corda
  leaves it IN_PROGRESS until StopReconciliationForPartyFlow). StopReconciliationForPartyFlow kills
  it likewise, whether queued or running, and marks the status STOPPED: the one-step stop.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from agent.clock import Clock, to_epoch_ms
from agent.errors import (
    AgentError,
    CannotReconcileWithSelfException,
    KeptForObservationError,
    KilledFlowException,
    LedgerGraphNotReadyException,
    MaxIncomingSessionsExceededException,
    PeerRequestError,
    PeerUnreachableError,
    ReconciliationAlreadyScheduledException,
    ReconciliationSessionLostError,
)
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import FlowEngine, FlowNotFoundError
from agent.flows.flow import Advance, Await, Flow, FlowContext, StepOutcome
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.protocol import LedgerSyncService
from agent.operator_api.status import ReconciliationStatusValue
from agent.p2p.client import sealed_before_start
from agent.ports.reconciliation import ReconciliationStatuses

log = logging.getLogger("ledger_agent.ledgersync.scheduler")
# The reference's per-flow Log4j markers, as logger names an operator can filter on.
schedule_log = logging.getLogger("ledger_agent.ledgersync.ScheduleReconciliationFlow")
reconcile_log = logging.getLogger("ledger_agent.ledgersync.ReconcileWithPartyFlow")
stop_log = logging.getLogger("ledger_agent.ledgersync.StopReconciliationForPartyFlow")

RECONCILE_FLOW = "ReconcileWithPartyFlow"
QUEUED = "QUEUED"
RUNNING = "RUNNING"
FINISHED = "FINISHED"

FIRST_RETRY_DELAY = 1.0  # seconds before asking a busy responder again; doubles up to the cap
MAX_RETRY_DELAY = 60.0
SLOT_WAIT = timedelta(hours=1)  # a queued flow looks again this often even if no slot was handed to it
NOT_ENDED = (FlowStatus.RUNNABLE, FlowStatus.PAUSED, FlowStatus.HOSPITALIZED)


class _Slots:
    """maxNumberOfParallelReconciliationRequests slots, handed to waiting flows oldest first."""

    def __init__(self, engine: FlowEngine, capacity: int) -> None:
        self.engine = engine
        self.capacity = capacity
        self.open = False
        self._holders: set[str] = set()
        self._waiting: dict[str, int] = {}  # flow id -> queued at (ms)
        self._lock = threading.Lock()

    def acquire(self, flow_id: str, queued_at: int) -> bool:
        with self._lock:
            if flow_id in self._holders:
                return True
            # Oldest first: a slot goes to a newer flow only when no older one is waiting for it.
            older = any((at, other) < (queued_at, flow_id) for other, at in self._waiting.items())
            if self.open and len(self._holders) < self.capacity and not older:
                self._waiting.pop(flow_id, None)
                self._holders.add(flow_id)
                return True
            self._waiting[flow_id] = queued_at
            return False

    def release(self, flow_id: str) -> None:
        with self._lock:
            self._holders.discard(flow_id)
            self._waiting.pop(flow_id, None)
        self.wake()

    def wake(self) -> None:
        """Tell the oldest waiting flows that a slot is free (they take it when they run)."""
        with self._lock:
            free = self.capacity - len(self._holders) if self.open else 0
            chosen = sorted(self._waiting.items(), key=lambda kv: (kv[1], kv[0]))[: max(0, free)]
        for flow_id, _ in chosen:
            try:
                self.engine.deliver(flow_id, "slot", True)
            except FlowNotFoundError:
                with self._lock:
                    self._waiting.pop(flow_id, None)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._holders)


class ReconcileWithPartyFlow(Flow):
    name = RECONCILE_FLOW

    def __init__(self, state: dict[str, Any], scheduler: ReconciliationScheduler) -> None:
        super().__init__(state)
        self.scheduler = scheduler
        self.party = X500Name.parse(str(state["party"]))
        # The busy responder's back-off lives in memory: after a restart the flow starts afresh.
        self._first_attempt: Any = None
        self._delay = FIRST_RETRY_DELAY
        self._attempt = 1

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return (self.party,)

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        scheduler = self.scheduler
        match progress_step:
            case "STARTED":
                return Advance(QUEUED)
            case "RUNNING" if ctx.flow_id not in scheduler.begun:
                # Rebuilt from a checkpoint at RUNNING without its slot (a restart; a resume or retry
                # after a pause or the hospital's observation, which gave the slot back): back to the
                # queue. A retry of the hospital's back-off keeps the slot and goes on below.
                return Advance(QUEUED)
            case "QUEUED" if not scheduler.slots.acquire(ctx.flow_id, int(self.state["queued_at"])):
                used = scheduler.slots.in_use
                if ctx.message("slot") is not None:
                    # Woken for a slot another flow took first: consume the wake-up, then wait again.
                    return Advance(QUEUED)
                return Await(("slot",), ctx.now + SLOT_WAIT, f"a free reconciliation slot ({used} in use)")
            case "QUEUED":
                # A slot of our own: IN_PROGRESS from now, begun afresh. Not again when the hospital
                # retries the flow in this process (rebuilt from its checkpoint, slot kept): a commit at
                # each retry would reset its budget, so its back-off would never grow.
                at = to_epoch_ms(ctx.now)

                def begin() -> None:
                    scheduler.statuses.started(self.party, True, ctx.flow_id, at)
                    scheduler.begun.add(ctx.flow_id)

                return Advance(RUNNING, effect=begin)
            case "RUNNING":
                return self._reconcile(ctx)
        raise AgentError(f"{RECONCILE_FLOW} has no step after {progress_step}")

    def _reconcile(self, ctx: FlowContext) -> StepOutcome:
        scheduler, party = self.scheduler, self.party
        if self._first_attempt is None:
            self._first_attempt = ctx.now
            reconcile_log.info("reconciliation %s with %s started", ctx.flow_id, party)
        try:
            result = scheduler.service.reconcile(
                party, both_directions=bool(self.state["both"]), cancelled=ctx.cancelled
            )
        except (MaxIncomingSessionsExceededException, LedgerGraphNotReadyException) as busy:
            return self._ask_again(ctx, busy, "busy")
        except PeerUnreachableError as down:
            # Down or restarting: the client's own retries span a few seconds, the setting much more.
            return self._ask_again(ctx, down, "unreachable")
        except PeerRequestError as refused:
            if refused.error_type == KeptForObservationError.__name__ and not ctx.cancelled.is_set():
                raise  # the hospital's: wait for that peer and ask again (its status stays IN_PROGRESS)
            if sealed_before_start(refused):  # it restarted a moment ago and our clock lags its own
                return self._ask_again(ctx, refused, "unreachable")
            if refused.error_type == ReconciliationSessionLostError.__name__:  # it restarted mid-session
                return self._ask_again(ctx, refused, "restarted")
            return self._failed(ctx, refused)
        except Exception as exc:
            return self._failed(ctx, exc)
        if ctx.cancelled.is_set():  # killed or stopped meanwhile: they wrote the status
            return Advance(RUNNING, done=True)
        at = to_epoch_ms(scheduler.clock.now())
        reconcile_log.info(
            "reconciliation with %s finished: %d transaction(s) missing here, "
            "%d exchange(s), %d bytes sent, %d received",
            party,
            len(result.missing_here),
            result.exchanges,
            result.bytes_sent,
            result.bytes_received,
        )
        return Advance(
            FINISHED,
            effect=lambda: scheduler.statuses.succeeded(party, True, at, result.missing_here),
            done=True,
            result=result,
        )

    def _ask_again(self, ctx: FlowContext, last: Exception, why: str) -> StepOutcome:
        """Wait (1 s doubling to 1 min, jittered) and ask again, within maxReconciliationRetryAttemptTimeout
        of the first attempt; past it, fail naming the peer, the attempts and the time spent."""
        scheduler, party = self.scheduler, self.party
        if ctx.cancelled.is_set():
            return self._failed(ctx, last)
        timeout = scheduler.config.max_reconciliation_retry_attempt_timeout
        wait = min(self._delay, MAX_RETRY_DELAY) * (1 - 0.5 * scheduler.rng.random())
        if ctx.now + timedelta(seconds=wait) - self._first_attempt > timeout:
            spent = ctx.now - self._first_attempt
            note = (
                f"gave up after {self._attempt} attempt(s) with {party} in {spent}, as another would go "
                f"over maxReconciliationRetryAttemptTimeout ({timeout})"
            )
            if isinstance(last, PeerUnreachableError):
                down = PeerUnreachableError(str(party), self._attempt, last.last_error, waited=spent)
                return self._failed(
                    ctx,
                    down,
                    f"{down}; another attempt would go over maxReconciliationRetryAttemptTimeout ({timeout})",
                )
            if isinstance(last, PeerRequestError):
                return self._failed(ctx, last, f"{last}; {note}")
            return self._failed(ctx, type(last)(f"{last}; {note}"))
        reconcile_log.info(
            "%s is %s (attempt %d: %s); asking again in %.1f s", party, why, self._attempt, last, wait
        )
        self._delay *= 2
        self._attempt += 1
        return Await(("never",), ctx.now + timedelta(seconds=wait), f"{party} ({why}: asking again)")

    def _failed(self, ctx: FlowContext, exc: Exception, message: str | None = None) -> StepOutcome:
        """FAILED with exc; message, when given, is the status's text after the type's name."""
        if ctx.cancelled.is_set():  # killed or stopped: they wrote the status
            return Advance(RUNNING, done=True)
        text = str(exc) if message is None else message
        reconcile_log.warning("reconciliation with %s failed: %s", self.party, text)
        at, error = to_epoch_ms(self.scheduler.clock.now()), f"{type(exc).__name__}: {text}"
        return Advance(
            RUNNING, effect=lambda: self.scheduler.statuses.failed(self.party, True, at, error), fail=exc
        )


class ReconciliationScheduler:
    """Queues reconciliations as flows on the engine and gives them slots to run in."""

    def __init__(
        self,
        service: LedgerSyncService,
        statuses: ReconciliationStatuses,
        engine: FlowEngine,
        config: LedgerSyncConfig,
        clock: Clock,
        identity_name: str,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.statuses = statuses
        self.engine = engine
        self.config = config
        self.clock = clock
        self.identity_name = str(X500Name.parse(identity_name))
        self.rng = rng or random.Random()
        self.slots = _Slots(engine, config.max_number_of_parallel_reconciliation_requests)
        # Flows whose session began in this process (their RUNNING was committed here): a hospital
        # retry goes on with them; after a restart, none has, and each begins afresh.
        self.begun: set[str] = set()
        self._schedule_lock = threading.Lock()
        engine.register(RECONCILE_FLOW, lambda state: ReconcileWithPartyFlow(state, self))
        engine.on_status(self._status_changed)

    # -- the flows ---------------------------------------------------------------------------------

    def schedule(self, parties: Sequence[X500Name], *, both_directions: bool = False) -> list[str]:
        """ScheduleReconciliationFlow: one flow per party, all or none; returns their run ids at once."""
        names = [str(party) for party in parties]
        for name in names:
            if name == self.identity_name:
                raise CannotReconcileWithSelfException(name)
        queued_at = to_epoch_ms(self.clock.now())
        with self._schedule_lock:
            seen: set[str] = set()
            for name in names:
                if name in seen or self._busy(name):
                    raise ReconciliationAlreadyScheduledException(
                        name,
                        advice="wait until it ends (GetReconciliationStatusForPartyFlow), or stop it "
                        "with StopReconciliationForPartyFlow",
                    )
                seen.add(name)
            ids = self._create(names, both_directions, queued_at)
        for flow_id in ids:
            self.engine.schedule(flow_id)
        schedule_log.info(
            "queued reconciliation with %s%s",
            ", ".join(names),
            " (both directions)" if both_directions else "",
        )
        return ids

    def _create(
        self, names: Sequence[str], both_directions: bool, queued_at: int, *, adopt_old_queue: bool = False
    ) -> list[str]:
        """Checkpoint the flows in one database transaction: a failure queues none of them.

        adopt_old_queue: the rows of the old job queue become flows, and leave it, in that transaction.
        """
        ids: list[str] = []
        try:
            with self.engine.unit.unit_of_work():
                jobs = self.statuses.take_legacy_jobs() if adopt_old_queue else []
                wanted = [(name, both_directions, queued_at) for name in names]
                wanted += [job for job in jobs if not self._flows(job[0])]
                for name, both, at in wanted:
                    state = {"party": name, "both": both, "queued_at": at}
                    ids.append(self.engine.create(ReconcileWithPartyFlow(state, self)).flow_id)
        except BaseException:
            for flow_id in ids:
                self.engine.forget(flow_id)
            raise
        return ids

    def _flows(self, party: str | None = None, step: str | None = None) -> list[FlowCheckpoint]:
        """Our reconciliations not ended (RUNNABLE, PAUSED or HOSPITALIZED: each runs again later)."""
        found = self.engine.flows(
            flow_name=RECONCILE_FLOW,
            counterparty=None if party is None else X500Name.parse(party),
            step=step,
        )
        return [cp for cp in found if cp.status in NOT_ENDED]

    def stop_for_party(self, party: X500Name) -> bool:
        """StopReconciliationForPartyFlow, outgoing half: kill its flow, mark the status STOPPED.

        True if there was a flow or a status to stop.
        """
        name = str(party)
        flows = self._flows(name)
        row = self.statuses.get(name, True)
        if row is not None:
            self.statuses.stopped(name, True, self._now_ms())
        for cp in flows:
            self.engine.kill(cp.flow_id)
            self.slots.release(cp.flow_id)  # now, not when the exchange under way returns
        if flows or row is not None:
            stop_log.info("outgoing reconciliation with %s stopped", name)
            return True
        return False

    def kill(self, state_machine_id: str) -> str | None:
        """killFlow on one of our reconciliations: KILLED, its status FAILED; the party's name, or None."""
        cp = self.engine.checkpoints.get_checkpoint(state_machine_id)
        if cp is None or cp.flow_name != RECONCILE_FLOW or cp.status not in NOT_ENDED:
            return None
        party = cp.counterparties[0]
        row = self.statuses.get(party, True)
        # IN_PROGRESS for this flow: it runs, or ran and went back to the queue (paused, restarted).
        if (
            row is not None
            and row.state_machine_run_id == state_machine_id
            and row.last_reconciliation_status is ReconciliationStatusValue.IN_PROGRESS
        ):
            error = KilledFlowException(state_machine_id)
            self.statuses.failed(party, True, self._now_ms(), f"{type(error).__name__}: {error}")
        self.engine.kill(state_machine_id)
        self.slots.release(state_machine_id)  # now, not when the exchange under way returns
        stop_log.info("reconciliation %s with %s killed", state_machine_id, party)
        return str(party)

    def is_scheduled(self, party: X500Name) -> bool:
        """IsReconciliationScheduledForPartyFlow: a flow of ours with that party is queued or running."""
        return bool(self._flows(str(party)))

    def number_scheduled(self) -> int:
        # One read: a flow moving from STARTED to QUEUED between two reads would be counted in neither.
        return sum(cp.progress_step in ("STARTED", QUEUED) for cp in self._flows())

    def number_in_progress(self) -> int:
        """Reconciliations holding a slot: a killed, paused or hospitalized one leaves the count."""
        return self.slots.in_use

    # -- slots ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the slots (the graph is ready); rows of the old job queue become flows."""
        self._adopt_old_queue()
        self.slots.open = True
        self.slots.wake()

    def stop(self, timeout: float = 30.0) -> None:
        """Hand out no more slots; flows stay checkpointed for the next start (the engine stops them)."""
        self.slots.open = False

    def _status_changed(self, checkpoint: FlowCheckpoint) -> None:
        """A reconciliation that stops running (paused, hospitalized, ended) gives its slot back, or its
        place in the queue; one RUNNABLE again goes back through the queue (its step does).

        Called with the engine's lock held: releasing only hands the slot to the next flow (a message).
        """
        if checkpoint.flow_name == RECONCILE_FLOW and checkpoint.status is not FlowStatus.RUNNABLE:
            self.begun.discard(checkpoint.flow_id)
            self.slots.release(checkpoint.flow_id)

    def _adopt_old_queue(self) -> None:
        ids = self._create([], False, 0, adopt_old_queue=True)
        if ids:
            log.warning("%d reconciliation(s) of the old job queue are queued again as flows", len(ids))
        for flow_id in ids:
            self.engine.schedule(flow_id)

    # -- helpers -----------------------------------------------------------------------------------

    def _busy(self, name: str) -> bool:
        if self._flows(name):
            return True
        responder = self.statuses.get(name, False)
        return (
            responder is not None
            and responder.last_reconciliation_status is ReconciliationStatusValue.IN_PROGRESS
        )

    def _now_ms(self) -> int:
        return to_epoch_ms(self.clock.now())

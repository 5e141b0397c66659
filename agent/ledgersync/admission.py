"""The responder's side of LedgerSync's limits: incoming sessions, the per-party rate limit, statuses.

Choices where the reference is vague (docs/ledgersync.md, "Limits"):

- maxNumberOfParallelReconciliationRequests bounds incoming sessions and, separately, the
  scheduler's outgoing workers. One shared pool would let two busy nodes starve each other.
- A session holds its slot from `begin` until `end`; one idle for `idle_timeout` (a requester that
  died half way) is dropped and its status marked FAILED, so a slot is never lost for good. This is
  the responder's one session table: the protocol keeps the session's coded symbols and id set on
  it, so one expiry and one place end a session (stop, kill, idle, failure, end).
- A new `begin` from a party that already has a session replaces it: the old one ends FAILED
  ("superseded"), its slot and flow with it. The begin is signed by the requester's key, so only the
  requester can end its own session this way, and a requester that died half way and started again
  is served at once instead of being refused until the old session goes idle (2 minutes). A begin
  older, by the requester's own clock (`at` in its payload), than the session it would replace is
  refused with ReconciliationAlreadyScheduledException naming us and the requester: only a replay
  sends one, so it can neither lock the requester out nor end its live session.
- The sliding window counts the requests we admitted (one row per request in
  cr_reconciliation_requests, so the limit survives a restart); a refusal for a full pool does not
  use up the requester's quota, since it will retry.
- Responder rows of cr_reconciliation_status (is_requester false): IN_PROGRESS at `begin`,
  DIFFERENCES_FOUND with the ids the requester told us we lack (when it reconciled both ways) or
  DIFFERENCES_NOT_FOUND at `end`, FAILED when the session breaks or goes idle, STOPPED by
  StopReconciliationForPartyFlow.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock, to_epoch_ms
from agent.errors import (
    MaxIncomingSessionsExceededException,
    ReconciliationAlreadyScheduledException,
    ReconciliationError,
    ReconciliationRateLimitExceededException,
    ReconciliationSessionLostError,
)
from agent.flows.engine import FlowEngine, FlowNotFoundError
from agent.flows.flow import Advance, Await, Flow, FlowContext, StepOutcome
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.operator_api.status import ReconciliationStatusValue
from agent.ports.reconciliation import ReconciliationStatuses, RequestWindow

log = logging.getLogger("ledger_agent.ledgersync.ReconcileWithPartyResponderFlow")

IDLE_TIMEOUT = timedelta(seconds=120)
GONE_REMEMBERED = 1024  # ended sessions whose late messages are told how they ended
RESPONDER_FLOW = "ReconcileWithPartyResponderFlow"
IN_PROGRESS = "IN_PROGRESS"
ENDED = "ENDED"


@dataclass
class IncomingSession:
    """One admitted reconciliation from a requester; its id is the status row's state_machine_id."""

    requester: X500Name
    state_machine_id: str
    last_seen: datetime
    cancelled: threading.Event = field(default_factory=threading.Event)
    # What the protocol serves from (agent/ledgersync/protocol.py), once `begin` has made it.
    session_id: bytes | None = None
    encoder: Any = None
    ids: Any = None
    replies: int = 1  # the begin reply is the first symbol exchange
    begun_at: int | None = None  # the requester's clock at its begin (epoch ms), when it said


class IncomingReconciliations:
    """Admits, tracks and ends the reconciliations other parties run against us."""

    def __init__(
        self,
        requests: RequestWindow,
        statuses: ReconciliationStatuses,
        config: LedgerSyncConfig,
        clock: Clock,
        *,
        idle_timeout: timedelta = IDLE_TIMEOUT,
        engine: FlowEngine | None = None,
    ) -> None:
        self.engine = engine
        if engine is not None:
            engine.register(RESPONDER_FLOW, lambda state: ReconcileWithPartyResponderFlow(state, self))
        self.requests = requests
        self.statuses = statuses
        self.config = config
        self.clock = clock
        self.idle_timeout = idle_timeout
        self._sessions: dict[str, IncomingSession] = {}  # by printed requester name
        # How the last sessions ended, by session id: a late message is told why, not "never heard of it".
        self._gone: dict[bytes, str] = {}
        self._lock = threading.Lock()

    def admit(
        self, requester: X500Name, *, begun_at: int | None = None, responder: str = "this node"
    ) -> IncomingSession:
        """A slot for requester, or the named refusal; marks the responder status IN_PROGRESS.

        A session the requester already has is superseded (ended FAILED) unless begun_at (the
        requester's clock at this begin, epoch ms) is older than that session's: then refused.
        """
        name = str(requester)
        now = self.clock.now()
        self.expire_idle()
        superseded = None
        try:
            with self._lock:
                old = self._sessions.get(name)
                if old is not None and _older(begun_at, old.begun_at):
                    raise ReconciliationAlreadyScheduledException(
                        name,
                        responder=responder,
                        advice=(
                            f"this begin is older than that session's by {name}'s own clock "
                            "(a replay?), so it does not replace it; a new begin does"
                        ),
                    )
                if old is not None:
                    superseded = self._sessions.pop(name)
                limit = self.config.max_number_of_parallel_reconciliation_requests
                if len(self._sessions) >= limit:
                    raise MaxIncomingSessionsExceededException(
                        f"all {limit} slots of {responder} for incoming reconciliations are taken; "
                        "try again later"
                    )
                self._count_request(name, now, responder)
                session = IncomingSession(requester, str(uuid.uuid4()), now, begun_at=begun_at)
                self._sessions[name] = session
        finally:
            if superseded is not None:
                self._supersede(superseded)
        try:
            self._start(session, now)
        except BaseException:
            with self._lock:
                self._sessions.pop(name, None)
            raise
        log.info("reconciliation requested by %s admitted as %s", name, session.state_machine_id)
        return session

    def _supersede(self, session: IncomingSession) -> None:
        """The requester began again: its old session ends FAILED, its flow with it."""
        session.cancelled.set()
        self._ended(session, "superseded by a newer begin from the requester")
        error = ReconciliationError(
            f"superseded: {session.requester} began a new session (its old one, "
            f"{session.state_machine_id}, was left unfinished)"
        )
        self.statuses.failed(session.requester, False, self._now_ms(), f"{type(error).__name__}: {error}")
        log.info("%s began again: session %s superseded", session.requester, session.state_machine_id)

    def _start(self, session: IncomingSession, now: datetime) -> None:
        """IN_PROGRESS, and (with an engine) the session's flow, in one database transaction."""
        if self.engine is None:
            self.statuses.started(session.requester, False, session.state_machine_id, to_epoch_ms(now))
            return
        state = {"requester": str(session.requester), "run_id": session.state_machine_id}
        flow = ReconcileWithPartyResponderFlow(state, self)
        with self.engine.unit.unit_of_work():
            handle = self.engine.create(flow, flow_id=session.state_machine_id)
            try:
                self.statuses.started(session.requester, False, handle.flow_id, to_epoch_ms(now))
            except BaseException:
                self.engine.forget(handle.flow_id)
                raise
        self.engine.schedule(handle.flow_id)

    def session_of(self, flow_id: str) -> IncomingSession | None:
        """The live session that flow stands for (None after a restart: sessions live in memory)."""
        with self._lock:
            return next((s for s in self._sessions.values() if s.state_machine_id == flow_id), None)

    def attach(self, session: IncomingSession, session_id: bytes, encoder: Any, ids: Any) -> IncomingSession:
        """The admitted session's coded state, made by the protocol's `begin`.

        ReconciliationError if the session ended meanwhile (stopped, killed, or superseded by a newer begin).
        """
        with self._lock:
            if self._sessions.get(str(session.requester)) is not session:
                raise ReconciliationError(f"the reconciliation with {session.requester} ended while it began")
            session.session_id, session.encoder, session.ids = session_id, encoder, ids
            session.last_seen = self.clock.now()
        return session

    def coded(self, requester: X500Name, session_id: bytes) -> IncomingSession:
        """The requester's session with that id, touched.

        ReconciliationError saying how it ended if it ended here (the requester should not go on);
        ReconciliationSessionLostError if this process never had it: we restarted since it began,
        and the requester may begin again.
        """
        with self._lock:
            session = self._sessions.get(str(requester))
            if session is not None and session.session_id == session_id and session.encoder is not None:
                session.last_seen = self.clock.now()
                return session
            gone = self._gone.get(session_id)
        if gone is not None:
            raise ReconciliationError(
                f"the reconciliation session {session_id.hex()} with {requester} is over here: {gone}"
            )
        raise ReconciliationSessionLostError(str(requester), session_id.hex())

    def touch(self, requester: X500Name) -> IncomingSession:
        """The session is alive (a message arrived); ReconciliationError if it was stopped or killed."""
        with self._lock:
            session = self._sessions.get(str(requester))
            if session is None:
                raise ReconciliationError(f"no reconciliation with {requester} is in progress here")
            session.last_seen = self.clock.now()
            return session

    def is_responding(self, party: X500Name) -> bool:
        """IsRespondingToReconciliationForPartyFlow."""
        self.expire_idle()
        with self._lock:
            return str(party) in self._sessions

    def number_in_progress(self) -> int:
        with self._lock:
            return len(self._sessions)

    def finish(
        self, requester: X500Name, missing_here: Iterable[SecureHash], *, only: IncomingSession | None = None
    ) -> None:
        """The requester ended the session (with only: that one); missing_here is what it told us we lack."""
        session = self._pop(str(requester), only, "finished")
        if session is None:
            return
        self.statuses.succeeded(requester, False, self._now_ms(), list(missing_here))

    def fail(
        self,
        requester: X500Name,
        error: str,
        *,
        only: IncomingSession | None = None,
        session_id: bytes | None = None,
    ) -> None:
        """End the requester's session FAILED; with only or session_id, only if it is that session.

        A message about an old session (superseded, or a stray) must not end the live one.
        """
        with self._lock:
            live = self._sessions.get(str(requester))
            if live is None or (only is not None and live is not only):
                return
            if session_id is not None and live.session_id != session_id:
                return
        session = self._pop(str(requester), live, f"failed ({error})")
        if session is None:
            return
        log.warning("reconciliation requested by %s failed: %s", requester, error)
        self.statuses.failed(requester, False, self._now_ms(), error)

    def stop(self, party: X500Name) -> bool:
        """StopReconciliationForPartyFlow's incoming half: drop the session, mark STOPPED."""
        session = self._pop(str(party), None, "stopped here by StopReconciliationForPartyFlow")
        row = self.statuses.get(party, False)
        if session is None and row is None:
            return False
        if session is not None:
            session.cancelled.set()
        self.statuses.stopped(party, False, self._now_ms())
        log.info("incoming reconciliation with %s stopped", party)
        return True

    def kill(self, state_machine_id: str) -> X500Name | None:
        """killFlow on an incoming session: drop it and mark it FAILED; its requester, or None."""
        with self._lock:
            found = next((s for s in self._sessions.values() if s.state_machine_id == state_machine_id), None)
            if found is not None:
                del self._sessions[str(found.requester)]
        if found is None:
            return None
        self._remember_gone(found, "killed here by killFlow")
        found.cancelled.set()
        self.statuses.failed(
            found.requester, False, self._now_ms(), "KilledFlowException: killed by killFlow"
        )
        if self.engine is not None:  # KILLED, not ended: its flow goes the way killFlow says
            with contextlib.suppress(FlowNotFoundError):
                self.engine.kill(found.state_machine_id)
        return found.requester

    def expire_idle(self) -> None:
        """Drop sessions whose requester has gone quiet, marking them FAILED."""
        cutoff = self.clock.now() - self.idle_timeout
        with self._lock:
            idle = [s for s in self._sessions.values() if s.last_seen <= cutoff]
            for session in idle:
                del self._sessions[str(session.requester)]
        for session in idle:
            session.cancelled.set()
            self._ended(session, f"idle for {self.idle_timeout}")
            self.statuses.failed(
                session.requester,
                False,
                self._now_ms(),
                f"ReconciliationError: {session.requester} sent nothing for {self.idle_timeout}",
            )

    def _pop(self, name: str, only: IncomingSession | None, why: str) -> IncomingSession | None:
        with self._lock:
            if only is not None and self._sessions.get(name) is not only:
                return None
            session = self._sessions.pop(name, None)
        if session is not None:
            self._ended(session, why)
        return session

    def _remember_gone(self, session: IncomingSession, why: str) -> None:
        if session.session_id is None:
            return
        with self._lock:
            self._gone[session.session_id] = why
            while len(self._gone) > GONE_REMEMBERED:
                del self._gone[next(iter(self._gone))]

    def _ended(self, session: IncomingSession, why: str) -> None:
        """The session's flow ends too (its status is written already)."""
        self._remember_gone(session, why)
        if self.engine is not None:
            with contextlib.suppress(FlowNotFoundError):
                self.engine.deliver(session.state_machine_id, "ended", True)

    def _count_request(self, name: str, now: datetime, responder: str) -> None:
        """The sliding-window limit, over the persisted requests; records this one if allowed."""
        window = self.config.time_window_for_reconciliation_request_limit
        allowed = self.config.max_allowed_reconciliation_requests_per_time_window
        used = self.requests.admit_within(name, to_epoch_ms(now), to_epoch_ms(now - window), allowed)
        if used is not None:
            raise ReconciliationRateLimitExceededException(
                f"{name} has made {used} reconciliation request(s) of {responder} in the last {window}; "
                f"its maxAllowedReconciliationRequestsPerTimeWindow is {allowed}: ask again once the "
                f"oldest is {window} old"
            )

    def _now_ms(self) -> int:
        return to_epoch_ms(self.clock.now())


def _older(begun_at: int | None, than: int | None) -> bool:
    """A begin stamped before the session's it would replace (both by the requester's clock)."""
    return begun_at is not None and than is not None and begun_at < than


class ReconcileWithPartyResponderFlow(Flow):
    """An incoming reconciliation as a flow: listed, killed and resumed as every other one.

    The session itself (the coded symbols, the slot) lives in memory; the flow parks until it ends
    or goes idle. A flow resumed after a restart finds no session: the requester's next message is
    refused, so the status row it left IN_PROGRESS becomes FAILED and blocks nothing.
    """

    name = RESPONDER_FLOW

    def __init__(self, state: dict[str, Any], incoming: IncomingReconciliations) -> None:
        super().__init__(state)
        self.incoming = incoming
        self.requester = X500Name.parse(str(state["requester"]))

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return (self.requester,)

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        incoming = self.incoming
        if progress_step == "STARTED":
            return Advance(IN_PROGRESS)
        if ctx.message("ended") is not None:
            return Advance(ENDED, done=True)
        if ctx.timed_out:
            incoming.expire_idle()  # writes FAILED and drops the session if it went quiet
        session = incoming.session_of(ctx.flow_id)
        if session is None:
            return self._orphaned(ctx)
        return Await(
            ("ended",), session.last_seen + incoming.idle_timeout, f"{self.requester}'s next exchange"
        )

    def _orphaned(self, ctx: FlowContext) -> StepOutcome:
        row = self.incoming.statuses.get(self.requester, False)
        left_open = (
            row is not None
            and row.state_machine_run_id == ctx.flow_id
            and row.last_reconciliation_status is ReconciliationStatusValue.IN_PROGRESS
        )
        if not left_open:
            return Advance(ENDED, done=True)  # ended while we were not looking; its status says how
        error = ReconciliationError(f"the session with {self.requester} ended when this node stopped")
        at, text = to_epoch_ms(ctx.now), f"{type(error).__name__}: {error}"
        return Advance(
            ENDED, effect=lambda: self.incoming.statuses.failed(self.requester, False, at, text), fail=error
        )

    def on_killed(self) -> None:
        # This flow's session only (its run id): a newer session of the same requester is not ours.
        self.incoming.kill(str(self.state["run_id"]))

"""The responder's side of LedgerSync's limits: incoming sessions, the per-party rate limit, statuses.

Choices where the reference is vague (docs/ledgersync.md, "Limits"):

- maxNumberOfParallelReconciliationRequests bounds incoming sessions and, separately, the
  scheduler's outgoing workers. One shared pool would let two busy nodes starve each other.
- A session holds its slot from `begin` until `end`; one idle for `idle_timeout` (a requester that
  died half way) is dropped and its status marked FAILED, so a slot is never lost for good.
- A second session from a party that already has one is refused with
  ReconciliationAlreadyScheduledException.
- The sliding window counts the requests we admitted (one row per request in
  cr_reconciliation_requests, so the limit survives a restart); a refusal for a full pool does not
  use up the requester's quota, since it will retry.
- Responder rows of cr_reconciliation_status (is_requester false): IN_PROGRESS at `begin`,
  DIFFERENCES_FOUND with the ids the requester told us we lack (when it reconciled both ways) or
  DIFFERENCES_NOT_FOUND at `end`, FAILED when the session breaks or goes idle, STOPPED by
  StopReconciliationForPartyFlow.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.clock import Clock, to_epoch_ms
from agent.errors import (
    MaxIncomingSessionsExceededException,
    ReconciliationAlreadyScheduledException,
    ReconciliationError,
    ReconciliationRateLimitExceededException,
)
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.status import ReconciliationStatusRepository
from agent.store.database import write_transaction
from agent.store.models import Schema

log = logging.getLogger("ledger_agent.ledgersync.ReconcileWithPartyResponderFlow")

IDLE_TIMEOUT = timedelta(seconds=120)


@dataclass
class IncomingSession:
    """One admitted reconciliation from a requester; its id is the status row's state_machine_id."""

    requester: X500Name
    state_machine_id: str
    last_seen: datetime
    cancelled: threading.Event = field(default_factory=threading.Event)


class IncomingReconciliations:
    """Admits, tracks and ends the reconciliations other parties run against us."""

    def __init__(
        self,
        schema: Schema,
        statuses: ReconciliationStatusRepository,
        config: LedgerSyncConfig,
        clock: Clock,
        *,
        idle_timeout: timedelta = IDLE_TIMEOUT,
    ) -> None:
        self.schema = schema
        self.statuses = statuses
        self.config = config
        self.clock = clock
        self.idle_timeout = idle_timeout
        self._sessions: dict[str, IncomingSession] = {}  # by printed requester name
        self._lock = threading.Lock()

    def admit(self, requester: X500Name) -> IncomingSession:
        """A slot for requester, or the named refusal; marks the responder status IN_PROGRESS."""
        name = str(requester)
        now = self.clock.now()
        self.expire_idle()
        with self._lock:
            if name in self._sessions:
                raise ReconciliationAlreadyScheduledException(name)
            limit = self.config.max_number_of_parallel_reconciliation_requests
            if len(self._sessions) >= limit:
                raise MaxIncomingSessionsExceededException(
                    f"all {limit} slots for incoming reconciliations are taken; try again later"
                )
            self._count_request(name, now)
            session = IncomingSession(requester, str(uuid.uuid4()), now)
            self._sessions[name] = session
        try:
            self.statuses.started(requester, False, session.state_machine_id, to_epoch_ms(now))
        except BaseException:
            with self._lock:
                self._sessions.pop(name, None)
            raise
        log.info("reconciliation requested by %s admitted as %s", name, session.state_machine_id)
        return session

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

    def finish(self, requester: X500Name, missing_here: Iterable[SecureHash]) -> None:
        """The requester ended the session; missing_here is what it told us we lack (maybe nothing)."""
        session = self._pop(str(requester))
        if session is None:
            return
        self.statuses.succeeded(requester, False, self._now_ms(), list(missing_here))

    def fail(self, requester: X500Name, error: str) -> None:
        session = self._pop(str(requester))
        if session is None:
            return
        log.warning("reconciliation requested by %s failed: %s", requester, error)
        self.statuses.failed(requester, False, self._now_ms(), error)

    def stop(self, party: X500Name) -> bool:
        """StopReconciliationForPartyFlow's incoming half: drop the session, mark STOPPED."""
        session = self._pop(str(party))
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
        found.cancelled.set()
        self.statuses.failed(
            found.requester, False, self._now_ms(), "KilledFlowException: killed by killFlow"
        )
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
            self.statuses.failed(
                session.requester,
                False,
                self._now_ms(),
                f"ReconciliationError: {session.requester} sent nothing for {self.idle_timeout}",
            )

    def _pop(self, name: str) -> IncomingSession | None:
        with self._lock:
            return self._sessions.pop(name, None)

    def _count_request(self, name: str, now: datetime) -> None:
        """The sliding-window limit, over the persisted requests; records this one if allowed."""
        window = self.config.time_window_for_reconciliation_request_limit
        allowed = self.config.max_allowed_reconciliation_requests_per_time_window
        requests = self.schema.reconciliation_requests
        now_ms = to_epoch_ms(now)
        since_ms = to_epoch_ms(now - window)
        with write_transaction(self.schema.database):
            requests.delete().where(
                (requests.party_name == name) & (requests.requested_at_ms <= since_ms)
            ).execute()
            used = requests.select().where(requests.party_name == name).count()
            if used >= allowed:
                raise ReconciliationRateLimitExceededException(
                    f"{name} has made {used} reconciliation request(s) in the last {window}; "
                    f"maxAllowedReconciliationRequestsPerTimeWindow is {allowed}"
                )
            requests.insert(party_name=name, requested_at_ms=now_ms).execute()

    def _now_ms(self) -> int:
        return to_epoch_ms(self.clock.now())

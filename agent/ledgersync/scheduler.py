"""The reconciliation scheduler: ScheduleReconciliationFlow's persisted queue and its bounded pool.

`schedule` checks every party first and then queues one cr_reconciliation_jobs row per party in one
write transaction (all or nothing), and returns at once. A pool of
maxNumberOfParallelReconciliationRequests workers takes QUEUED jobs oldest first, marks them RUNNING,
reconciles, records the outcome in cr_reconciliation_status, and deletes the row.

Choices where the reference is vague:

- Queued jobs survive a restart (Corda loses them): `start` turns RUNNING rows a crash left back into
  QUEUED, so they run again from the beginning.
- "Already scheduled or running, in either direction": a job of ours QUEUED or RUNNING, or a
  responder status row (a reconciliation that party asked of us) IN_PROGRESS. A party named twice in
  one call is refused the same way.
- A job is claimed by a conditional update (QUEUED -> RUNNING) inside a write transaction, so two
  schedulers over one database never run the same job.
- Workers wait on a condition that `schedule` notifies; the wait also times out now and then, so a job
  queued by another process over the same database is still picked up, and `stop` is seen promptly.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from agent.clock import Clock, to_epoch_ms
from agent.errors import CannotReconcileWithSelfException, ReconciliationAlreadyScheduledException
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.protocol import LedgerSyncService
from agent.ledgersync.status import ReconciliationStatusRepository, ReconciliationStatusValue
from agent.store.database import write_transaction
from agent.store.models import ReconciliationJob, Schema


@dataclass(frozen=True)
class _Claimed:
    """A job this worker has marked RUNNING."""

    party_name: str
    both_directions: bool
    state_machine_id: str


log = logging.getLogger("ledger_agent.ledgersync.scheduler")

QUEUED = "QUEUED"
RUNNING = "RUNNING"

_IDLE_WAIT = 2.0  # seconds a worker waits for a notification before looking at the table again


class ReconciliationScheduler:
    """Queues reconciliations in the store and runs them on a bounded pool of worker threads."""

    def __init__(
        self,
        service: LedgerSyncService,
        statuses: ReconciliationStatusRepository,
        schema: Schema,
        config: LedgerSyncConfig,
        clock: Clock,
        identity_name: str,
    ) -> None:
        self.service = service
        self.statuses = statuses
        self.schema = schema
        self.config = config
        self.clock = clock
        self.identity_name = str(X500Name.parse(identity_name))
        self._jobs = schema.reconciliation_jobs
        self._condition = threading.Condition()
        self._generation = 0  # bumped by every schedule(), so a worker never misses a notification
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # -- the flows ---------------------------------------------------------------------------------

    def schedule(self, parties: Sequence[X500Name], *, both_directions: bool = False) -> None:
        """ScheduleReconciliationFlow: queue one job per party, all or none; returns at once."""
        names = [str(party) for party in parties]
        for name in names:
            if name == self.identity_name:
                raise CannotReconcileWithSelfException(name)
        with write_transaction(self.schema.database):
            seen: set[str] = set()
            for name in names:
                if name in seen or self._busy(name):
                    raise ReconciliationAlreadyScheduledException(name)
                seen.add(name)
            now_ms = self._now_ms()
            for name in names:
                self._jobs.insert(
                    party_name=name,
                    both_directions=both_directions,
                    state=QUEUED,
                    queued_at_ms=now_ms,
                    state_machine_id=None,
                ).execute()
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def is_scheduled(self, party: X500Name) -> bool:
        """IsReconciliationScheduledForPartyFlow: a job of ours with that party is QUEUED or RUNNING."""
        return self._jobs.get_or_none(self._jobs.party_name == str(party)) is not None

    def number_scheduled(self) -> int:
        return int(self._jobs.select().where(self._jobs.state == QUEUED).count())

    def number_in_progress(self) -> int:
        return int(self._jobs.select().where(self._jobs.state == RUNNING).count())

    # -- the pool ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Re-queue what a crash left RUNNING, then start the workers."""
        if self._threads:
            raise RuntimeError("the reconciliation scheduler is already started")
        with write_transaction(self.schema.database):
            requeued = (
                self._jobs.update(state=QUEUED, state_machine_id=None)
                .where(self._jobs.state == RUNNING)
                .execute()
            )
        if requeued:
            log.warning("%d reconciliation(s) interrupted by the last stop are queued again", requeued)
        with self._condition:
            self._stopping = False
        count = self.config.max_number_of_parallel_reconciliation_requests
        for number in range(count):
            thread = threading.Thread(
                target=self._worker, name=f"ledgersync-reconciliation-{number}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let running reconciliations finish (queued ones stay queued in the store), then join."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("reconciliation worker %s did not stop within %ss", thread.name, timeout)
        self._threads = []

    def _worker(self) -> None:
        # The loop outlives any one failure: a store error in claiming is logged and tried again.
        try:
            while True:
                with self._condition:
                    if self._stopping:
                        return
                    seen = self._generation
                try:
                    job = self._claim()
                    if job is not None:
                        self._run(job)
                        continue
                except Exception:
                    log.exception("reconciliation worker failed; it carries on")
                self._wait(seen)
        finally:
            # peewee keeps one connection per thread; close this one rather than leave it open.
            if not self.schema.database.is_closed():
                self.schema.database.close()

    def _wait(self, seen: int) -> None:
        """Until schedule() queues something, stop() is called, or the idle wait is over."""
        with self._condition:
            self._condition.wait_for(lambda: self._stopping or self._generation != seen, timeout=_IDLE_WAIT)

    def _claim(self) -> _Claimed | None:
        """The oldest QUEUED job, now RUNNING under a new state machine id; None when there is none."""
        jobs = self._jobs
        with write_transaction(self.schema.database):
            job: ReconciliationJob | None = (
                jobs.select().where(jobs.state == QUEUED).order_by(jobs.queued_at_ms, jobs.party_name).first()
            )
            if job is None:
                return None
            state_machine_id = str(uuid.uuid4())
            claimed = (
                jobs.update(state=RUNNING, state_machine_id=state_machine_id)
                .where((jobs.party_name == job.party_name) & (jobs.state == QUEUED))
                .execute()
            )
            if claimed != 1:
                return None
            return _Claimed(job.party_name, job.both_directions, state_machine_id)

    def _run(self, job: _Claimed) -> None:
        party = X500Name.parse(job.party_name)
        try:
            self.statuses.started(party, True, job.state_machine_id, self._now_ms())
            try:
                result = self.service.reconcile(party, both_directions=job.both_directions)
            except Exception as exc:
                log.warning("reconciliation with %s failed: %s", party, exc)
                self.statuses.failed(party, True, self._now_ms(), f"{type(exc).__name__}: {exc}")
            else:
                self.statuses.succeeded(party, True, self._now_ms(), result.missing_here)
        finally:
            with write_transaction(self.schema.database):
                self._jobs.delete().where(self._jobs.party_name == job.party_name).execute()

    # -- helpers -----------------------------------------------------------------------------------

    def _busy(self, name: str) -> bool:
        if self._jobs.get_or_none(self._jobs.party_name == name) is not None:
            return True
        responder = self.statuses.get(name, False)
        return (
            responder is not None
            and responder.last_reconciliation_status is ReconciliationStatusValue.IN_PROGRESS
        )

    def _now_ms(self) -> int:
        return to_epoch_ms(self.clock.now())

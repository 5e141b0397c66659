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
- A responder that is busy (MaxIncomingSessionsExceededException) is asked again after a jittered
  back-off (1 s doubling to 1 min, each wait cut by up to half at random) until
  maxReconciliationRetryAttemptTimeout has passed since the first attempt; the job stays RUNNING and
  its status IN_PROGRESS meanwhile. Other refusals (rate limit, already scheduled, not ready) end the
  job FAILED at once: asking again soon would meet the same answer.
- killFlow with a running job's state_machine_id cancels it between two exchanges and marks it
  FAILED (KilledFlowException), freeing its slot at once (Corda leaves it IN_PROGRESS until
  StopReconciliationForPartyFlow). StopReconciliationForPartyFlow cancels the job if it runs, drops
  it if it is queued, and marks the status STOPPED: the one-step stop.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from agent.clock import Clock, pause, to_epoch_ms
from agent.errors import (
    CannotReconcileWithSelfException,
    KilledFlowException,
    MaxIncomingSessionsExceededException,
    ReconciliationAlreadyScheduledException,
)
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.protocol import LedgerSyncService, ReconciliationResult
from agent.ledgersync.status import ReconciliationStatusRepository, ReconciliationStatusValue
from agent.store.database import write_transaction
from agent.store.models import ReconciliationJob, Schema


@dataclass(frozen=True)
class _Claimed:
    """A job this worker has marked RUNNING."""

    party_name: str
    both_directions: bool
    state_machine_id: str
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False)
    interrupted: threading.Event = field(default_factory=threading.Event, compare=False)  # by stop()
    stop_waiting: threading.Event = field(default_factory=threading.Event, compare=False)  # either


log = logging.getLogger("ledger_agent.ledgersync.scheduler")
# The reference's per-flow Log4j markers, as logger names an operator can filter on.
schedule_log = logging.getLogger("ledger_agent.ledgersync.ScheduleReconciliationFlow")
reconcile_log = logging.getLogger("ledger_agent.ledgersync.ReconcileWithPartyFlow")
stop_log = logging.getLogger("ledger_agent.ledgersync.StopReconciliationForPartyFlow")

FIRST_RETRY_DELAY = 1.0  # seconds before asking a busy responder again; doubles up to the cap
MAX_RETRY_DELAY = 60.0

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
        *,
        rng: random.Random | None = None,
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
        self._running: dict[str, _Claimed] = {}  # by party name, the jobs this process runs
        self._outcome_lock = threading.Lock()  # one writer of a running job's final status
        self._rng = rng or random.Random()

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
        schedule_log.info(
            "queued reconciliation with %s%s",
            ", ".join(names),
            " (both directions)" if both_directions else "",
        )
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def stop_for_party(self, party: X500Name) -> bool:
        """StopReconciliationForPartyFlow, outgoing half: cancel or drop the job, mark STOPPED.

        True if there was a job or a status to stop.
        """
        name = str(party)
        with self._outcome_lock:
            running = self._running.get(name)
            if running is not None:
                running.cancelled.set()
                running.stop_waiting.set()
            with write_transaction(self.schema.database):
                dropped = self._jobs.delete().where(self._jobs.party_name == name).execute()
            row = self.statuses.get(name, True)
            if row is not None:
                self.statuses.stopped(name, True, self._now_ms())
        if running is not None or dropped or row is not None:
            stop_log.info("outgoing reconciliation with %s stopped", name)
            return True
        return False

    def kill(self, state_machine_id: str) -> str | None:
        """killFlow on a running job: cancel it and mark it FAILED; the party's name, or None."""
        with self._outcome_lock:
            job = next((j for j in self._running.values() if j.state_machine_id == state_machine_id), None)
            if job is None:
                return None
            job.cancelled.set()
            job.stop_waiting.set()
            error = KilledFlowException(state_machine_id)
            self.statuses.failed(job.party_name, True, self._now_ms(), f"{type(error).__name__}: {error}")
        stop_log.info("reconciliation %s with %s killed", state_machine_id, job.party_name)
        return job.party_name

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
        """Let running reconciliations finish (queued ones stay queued in the store), then join.

        One waiting for a busy responder is interrupted instead (the wait may last an hour); its
        job stays RUNNING in the store, so the next start queues it again.
        """
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        with self._outcome_lock:
            for job in self._running.values():
                job.interrupted.set()
                job.stop_waiting.set()
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
        with self._outcome_lock:
            self._running[job.party_name] = job
        unfinished = False
        try:
            self.statuses.started(party, True, job.state_machine_id, self._now_ms())
            reconcile_log.info("reconciliation %s with %s started", job.state_machine_id, party)
            try:
                result = self._reconcile_retrying(party, job)
            except Exception as exc:
                with self._outcome_lock:
                    if job.interrupted.is_set() and not job.cancelled.is_set():
                        unfinished = True  # the agent is stopping: the job runs again at the next start
                    elif not job.cancelled.is_set():  # stop and kill have written the outcome
                        reconcile_log.warning("reconciliation with %s failed: %s", party, exc)
                        self.statuses.failed(party, True, self._now_ms(), f"{type(exc).__name__}: {exc}")
            else:
                with self._outcome_lock:
                    if not job.cancelled.is_set():
                        self.statuses.succeeded(party, True, self._now_ms(), result.missing_here)
                        reconcile_log.info(
                            "reconciliation with %s finished: %d transaction(s) missing here, "
                            "%d exchange(s), %d bytes sent, %d received",
                            party,
                            len(result.missing_here),
                            result.exchanges,
                            result.bytes_sent,
                            result.bytes_received,
                        )
        finally:
            with self._outcome_lock:
                if self._running.get(job.party_name) is job:  # stopped and queued again meanwhile
                    del self._running[job.party_name]
            if unfinished:
                reconcile_log.info(
                    "reconciliation with %s interrupted by the stop; queued for the next start", party
                )
            else:
                with write_transaction(self.schema.database):
                    self._jobs.delete().where(
                        (self._jobs.party_name == job.party_name)
                        & (self._jobs.state_machine_id == job.state_machine_id)
                    ).execute()

    def _reconcile_retrying(self, party: X500Name, job: _Claimed) -> ReconciliationResult:
        """reconcile, asking a busy responder again with back-off until the retry timeout."""
        timeout = self.config.max_reconciliation_retry_attempt_timeout
        started = self.clock.now()
        delay = FIRST_RETRY_DELAY
        attempt = 1
        while True:
            try:
                return self.service.reconcile(
                    party, both_directions=job.both_directions, cancelled=job.cancelled
                )
            except MaxIncomingSessionsExceededException as busy:
                wait = min(delay, MAX_RETRY_DELAY) * (1 - 0.5 * self._rng.random())
                if self.clock.now() + timedelta(seconds=wait) - started > timeout:
                    raise MaxIncomingSessionsExceededException(
                        f"{busy}; gave up after {attempt} attempt(s) over "
                        f"maxReconciliationRetryAttemptTimeout ({timeout})"
                    ) from busy
                reconcile_log.info("%s is busy (attempt %d); asking again in %.1f s", party, attempt, wait)
                if pause(self.clock, wait, job.stop_waiting):
                    raise KilledFlowException(job.state_machine_id, "stopped while waiting") from busy
                delay *= 2
                attempt += 1

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

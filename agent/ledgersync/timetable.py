"""Scheduled reconciliations: the config's `scheduledReconciliations`, run at a time of day or interval.

Each entry queues a ScheduleReconciliationFlow for its party when due. Choices:

- `at` is a time of day in UTC, every day; `every` counts from the agent's start, so a restart does
  not fire every interval at once.
- A due reconciliation that cannot be queued (one is already scheduled or running with that party,
  or the ledger graph is not ready) is logged and skipped until the next due time: schedules never
  pile up.
- The timetable reads time from the injected clock; `run_due` does one step and is what the tests
  drive in simulated time. The thread only sleeps (at most a minute at a time, so a moved clock is
  noticed) and calls it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from agent.clock import Clock
from agent.errors import AgentError
from agent.ledger.identity import X500Name
from agent.ledgersync.config import ScheduledReconciliation

log = logging.getLogger("ledger_agent.ledgersync.ScheduleReconciliationFlow")

MAX_SLEEP = 60.0


def next_due(entry: ScheduledReconciliation, after: datetime) -> datetime:
    """The first time strictly after `after` at which entry is due."""
    if entry.every is not None:
        return after + entry.every
    assert entry.at is not None
    candidate = after.replace(
        hour=entry.at.hour, minute=entry.at.minute, second=entry.at.second, microsecond=0
    )
    return candidate if candidate > after else candidate + timedelta(days=1)


class ReconciliationTimetable:
    """Queues the configured reconciliations when they fall due."""

    def __init__(
        self,
        entries: Sequence[ScheduledReconciliation],
        schedule: Callable[[Sequence[X500Name]], object],
        clock: Clock,
    ) -> None:
        self.entries = tuple(entries)
        self._schedule = schedule
        self.clock = clock
        now = clock.now()
        self._due = [next_due(entry, now) for entry in self.entries]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def due_times(self) -> list[tuple[X500Name, datetime]]:
        return [(entry.party, due) for entry, due in zip(self.entries, self._due, strict=True)]

    def run_due(self) -> list[X500Name]:
        """Queue every entry that is due now; the parties queued."""
        now = self.clock.now()
        queued = []
        for i, entry in enumerate(self.entries):
            if self._due[i] > now:
                continue
            self._due[i] = next_due(entry, now)
            try:
                self._schedule([entry.party])
            except AgentError as exc:
                log.warning("scheduled reconciliation with %s skipped: %s", entry.party, exc)
                continue
            log.info("scheduled reconciliation with %s queued; next at %s", entry.party, self._due[i])
            queued.append(entry.party)
        return queued

    def seconds_until_next(self) -> float:
        if not self._due:
            return MAX_SLEEP
        return max(0.0, (min(self._due) - self.clock.now()).total_seconds())

    def start(self) -> None:
        if not self.entries or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="ledgersync-timetable", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(min(self.seconds_until_next(), MAX_SLEEP)):
            try:
                self.run_due()
            except Exception:
                log.exception("scheduled reconciliations failed; the timetable carries on")

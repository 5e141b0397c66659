"""Scheduled reconciliations (scheduledReconciliations) in simulated time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from agent.clock import ManualClock
from agent.errors import ReconciliationAlreadyScheduledException
from agent.ledger.identity import X500Name
from agent.ledgersync.config import ScheduledReconciliation
from agent.ledgersync.timetable import ReconciliationTimetable, next_due

P = X500Name.parse("O=PartyP, L=London, C=GB")
Q = X500Name.parse("O=PartyQ, L=Paris, C=FR")
START = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)


def test_a_time_of_day_is_due_today_if_still_ahead_else_tomorrow() -> None:
    at_230 = ScheduledReconciliation(party=P, at=time(2, 30))
    assert next_due(at_230, START) == datetime(2026, 3, 1, 2, 30, tzinfo=UTC)
    assert next_due(at_230, datetime(2026, 3, 1, 2, 30, tzinfo=UTC)) == datetime(
        2026, 3, 2, 2, 30, tzinfo=UTC
    )
    assert next_due(at_230, datetime(2026, 3, 1, 23, 0, tzinfo=UTC)) == datetime(
        2026, 3, 2, 2, 30, tzinfo=UTC
    )


def test_an_interval_counts_from_now() -> None:
    every = ScheduledReconciliation(party=P, every=timedelta(hours=6))
    assert next_due(every, START) == START + timedelta(hours=6)


class Recorder:
    """ScheduleReconciliationFlow's stand-in: records the calls, refuses a party while told to."""

    def __init__(self) -> None:
        self.calls: list[list[X500Name]] = []
        self.busy: set[X500Name] = set()

    def __call__(self, parties: Sequence[X500Name]) -> None:
        if set(parties) & self.busy:
            raise ReconciliationAlreadyScheduledException(str(parties[0]))
        self.calls.append(list(parties))


def test_entries_fire_when_due_and_then_at_their_next_time() -> None:
    clock = ManualClock(START)
    schedule = Recorder()
    table = ReconciliationTimetable(
        [
            ScheduledReconciliation(party=P, at=time(2, 30)),
            ScheduledReconciliation(party=Q, every=timedelta(minutes=45)),
        ],
        schedule,
        clock,
    )
    assert table.run_due() == []
    assert table.seconds_until_next() == 45 * 60
    clock.advance(timedelta(minutes=45))
    assert table.run_due() == [Q]
    clock.advance(timedelta(minutes=45))  # 02:30: both
    assert sorted(str(p) for p in table.run_due()) == sorted([str(P), str(Q)])
    assert table.run_due() == []  # nothing twice
    clock.advance(timedelta(hours=24))  # a day later, P is due once, not once per missed interval of Q
    assert table.run_due() == [P, Q]
    assert schedule.calls == [[Q], [P], [Q], [P], [Q]]
    due = dict(table.due_times())
    assert due[P] == datetime(2026, 3, 3, 2, 30, tzinfo=UTC)


def test_a_refused_entry_is_skipped_until_its_next_time() -> None:
    clock = ManualClock(START)
    schedule = Recorder()
    schedule.busy.add(P)
    table = ReconciliationTimetable(
        [ScheduledReconciliation(party=P, every=timedelta(hours=1))], schedule, clock
    )
    clock.advance(timedelta(hours=1))
    assert table.run_due() == []  # refused (already scheduled), logged, not retried at once
    schedule.busy.clear()
    assert table.run_due() == []
    clock.advance(timedelta(hours=1))
    assert table.run_due() == [P]

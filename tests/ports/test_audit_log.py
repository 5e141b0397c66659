"""AuditLog: append-only, read newest first by time, filtered by user and action."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.hospital.records import AuditEntry
from agent.ports.hospital import AuditLog
from agent.store.ledger_store import LedgerStore
from tests.ports.conftest import NOW


@pytest.fixture
def audit(store: LedgerStore) -> AuditLog:
    return store.audit


def entry(
    seconds: int,
    user: str = "alice",
    action: str = "retryFlow",
    outcome: str = "done (true)",
    surface: str = "rest",
) -> AuditEntry:
    return AuditEntry(
        NOW + timedelta(seconds=seconds), user, "operator", action, "why", "flow-1", outcome, surface
    )


def test_entries_come_back_newest_first_by_their_time_not_as_appended(audit: AuditLog) -> None:
    # A bulk job that ends fast writes its "finished" before the call that started it records its
    # "started", which is stamped with the time it was asked: the log still reads in that order.
    first = audit.append(entry(5, action="bulkAction", outcome="job finished: 2 retried", surface="job"))
    second = audit.append(entry(1, action="bulkAction", outcome="job started: 2 flow(s)"))
    third = audit.append(entry(1, outcome="refused: ...", user="monitor"))
    assert first < second < third
    found = audit.entries()
    assert [e.entry_id for e in found] == [first, third, second]
    assert [e.outcome for e in found][:2] == ["job finished: 2 retried", "refused: ..."]
    assert (found[0].at, found[0].user, found[0].surface, found[0].reason) == (
        NOW + timedelta(seconds=5),
        "alice",
        "job",
        "why",
    )


def test_filters_and_limit(audit: AuditLog) -> None:
    for i in range(5):
        audit.append(
            entry(i, user="monitor" if i % 2 else "alice", action="killFlow" if i == 4 else "retryFlow")
        )
    assert [e.at for e in audit.entries(user="monitor")] == [NOW + timedelta(seconds=s) for s in (3, 1)]
    assert [e.action for e in audit.entries(action="killFlow")] == ["killFlow"]
    assert len(audit.entries(limit=2)) == 2
    assert [e.at for e in audit.entries(since=NOW + timedelta(seconds=3))] == [
        NOW + timedelta(seconds=s) for s in (4, 3)
    ]

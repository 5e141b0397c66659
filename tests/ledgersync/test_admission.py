"""The responder's limits (pool of incoming sessions, per-party sliding window) in simulated time,
on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from agent.clock import ManualClock
from agent.errors import (
    MaxIncomingSessionsExceededException,
    ReconciliationAlreadyScheduledException,
    ReconciliationError,
    ReconciliationRateLimitExceededException,
)
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.admission import IncomingReconciliations
from agent.ledgersync.config import LedgerSyncConfig
from agent.operator_api.status import ReconciliationStatusValue
from agent.store.database import open_database
from agent.store.migrations import migrate
from agent.store.models import Schema, bind_schema
from agent.store.reconciliation import ReconciliationStatusRepository, RequestWindowRepository

P, Q, R = (X500Name.parse(f"O=Party{c}, L=London, C=GB") for c in "PQR")
V = ReconciliationStatusValue


@pytest.fixture
def schema(database_url: str) -> Iterator[Schema]:
    db = open_database(database_url)
    s = bind_schema(db)
    migrate(s)
    yield s
    db.close()


def incoming(schema: Schema, clock: ManualClock, **settings: object) -> IncomingReconciliations:
    config = LedgerSyncConfig(**settings)  # type: ignore[arg-type]
    statuses = ReconciliationStatusRepository(schema)
    return IncomingReconciliations(RequestWindowRepository(schema), statuses, config, clock)


def test_a_full_pool_refuses_until_a_slot_frees(schema: Schema) -> None:
    clock = ManualClock()
    slots = incoming(schema, clock, max_number_of_parallel_reconciliation_requests=2)
    slots.admit(P)
    slots.admit(Q)
    with pytest.raises(MaxIncomingSessionsExceededException, match="all 2 slots"):
        slots.admit(R)
    statuses = slots.statuses
    assert statuses.get(P, False) is not None and statuses.get(Q, False) is not None
    assert statuses.get(R, False) is None  # a refusal is not a reconciliation: no row
    assert slots.number_in_progress() == 2
    slots.finish(P, [])
    slots.admit(R)
    assert {slots.is_responding(x) for x in (Q, R)} == {True} and not slots.is_responding(P)
    done = statuses.get(P, False)
    assert done is not None and done.last_reconciliation_status is V.DIFFERENCES_NOT_FOUND


def test_a_new_begin_from_the_same_party_supersedes_its_unfinished_session(schema: Schema) -> None:
    clock = ManualClock()
    slots = incoming(schema, clock, max_number_of_parallel_reconciliation_requests=1)
    old = slots.admit(P, begun_at=1_000)
    clock.advance(timedelta(seconds=5))
    new = slots.admit(P, begun_at=6_000)  # not refused until the old one goes idle (2 minutes)
    assert old.cancelled.is_set() and not new.cancelled.is_set()
    assert slots.number_in_progress() == 1  # the old slot was given to the new session
    row = slots.statuses.get(P, False)
    assert row is not None and row.last_reconciliation_status is V.IN_PROGRESS
    assert row.state_machine_run_id == new.state_machine_id
    slots.fail(P, "stray", only=old)  # a late failure of the old session leaves the new one
    assert slots.is_responding(P)


def test_a_begin_older_than_the_live_session_is_refused_naming_both_sides(schema: Schema) -> None:
    slots = incoming(schema, ManualClock())
    live = slots.admit(P, begun_at=6_000)
    with pytest.raises(ReconciliationAlreadyScheduledException) as refused:
        slots.admit(P, begun_at=5_999, responder="O=Responder, L=London, C=GB")
    message = str(refused.value)
    assert message.startswith(
        "O=Responder, L=London, C=GB is already answering a reconciliation requested by O=PartyP"
    )
    assert "older than that session's" in message and "a new begin does" in message
    assert not live.cancelled.is_set() and slots.is_responding(P)


def test_the_responder_row_holds_what_the_requester_told_us_we_lack(schema: Schema) -> None:
    slots = incoming(schema, ManualClock())
    lacking = [SecureHash.of(b"one"), SecureHash.of(b"two")]
    slots.admit(P)
    slots.finish(P, lacking)
    row = slots.statuses.get(P, False)
    assert row is not None and not row.is_requester
    assert row.last_reconciliation_status is V.DIFFERENCES_FOUND
    assert set(row.last_successful_reconciliation_result) == set(lacking)


def test_the_sliding_window_limits_each_party_in_simulated_time(schema: Schema) -> None:
    clock = ManualClock()
    slots = incoming(
        schema,
        clock,
        time_window_for_reconciliation_request_limit=timedelta(hours=1),
        max_allowed_reconciliation_requests_per_time_window=2,
    )
    slots.admit(P)
    slots.finish(P, [])
    clock.advance(timedelta(minutes=20))
    slots.admit(P)
    slots.finish(P, [])
    with pytest.raises(ReconciliationRateLimitExceededException, match="2 reconciliation request"):
        slots.admit(P)
    slots.admit(Q)  # the limit is per party
    clock.advance(timedelta(minutes=39, seconds=59))
    with pytest.raises(ReconciliationRateLimitExceededException):
        slots.admit(P)  # the first request is still inside the hour
    clock.advance(timedelta(seconds=1))
    slots.admit(P)  # an hour after the first: it has slid out of the window
    assert slots.is_responding(P)


def test_the_window_is_kept_over_a_restart(schema: Schema) -> None:
    clock = ManualClock()
    settings = {"max_allowed_reconciliation_requests_per_time_window": 1}
    first = incoming(schema, clock, **settings)
    first.admit(P)
    first.finish(P, [])
    restarted = incoming(schema, clock, **settings)  # a new process over the same store
    with pytest.raises(ReconciliationRateLimitExceededException):
        restarted.admit(P)


def test_a_refusal_for_a_full_pool_does_not_use_up_the_quota(schema: Schema) -> None:
    clock = ManualClock()
    slots = incoming(
        schema,
        clock,
        max_number_of_parallel_reconciliation_requests=1,
        max_allowed_reconciliation_requests_per_time_window=1,
    )
    slots.admit(Q)
    for _ in range(3):
        with pytest.raises(MaxIncomingSessionsExceededException):
            slots.admit(P)
    slots.finish(Q, [])
    slots.admit(P)  # its one request in the window is this one


def test_zero_allowed_requests_refuses_everyone(schema: Schema) -> None:
    slots = incoming(schema, ManualClock(), max_allowed_reconciliation_requests_per_time_window=0)
    with pytest.raises(ReconciliationRateLimitExceededException, match="is 0"):
        slots.admit(P)
    assert slots.number_in_progress() == 0


def test_an_idle_session_is_dropped_and_marked_failed(schema: Schema) -> None:
    clock = ManualClock()
    slots = incoming(schema, clock, max_number_of_parallel_reconciliation_requests=1)
    slots.admit(P)
    clock.advance(slots.idle_timeout - timedelta(seconds=1))
    slots.touch(P)
    clock.advance(slots.idle_timeout - timedelta(seconds=1))
    with pytest.raises(MaxIncomingSessionsExceededException):
        slots.admit(Q)  # P is still alive: it spoke a minute ago
    clock.advance(timedelta(seconds=1))
    slots.admit(Q)  # P went quiet for the whole idle timeout; its slot is Q's now
    row = slots.statuses.get(P, False)
    assert row is not None and row.last_reconciliation_status is V.FAILED
    assert "sent nothing" in row.last_reconciliation_error
    with pytest.raises(ReconciliationError, match="no reconciliation with"):
        slots.touch(P)


def test_stop_and_kill_end_incoming_sessions(schema: Schema) -> None:
    slots = incoming(schema, ManualClock())
    slots.admit(P)
    session_q = slots.admit(Q)
    assert slots.stop(P)
    stopped = slots.statuses.get(P, False)
    assert stopped is not None and stopped.last_reconciliation_status is V.STOPPED
    with pytest.raises(ReconciliationError):
        slots.touch(P)  # its next message is refused
    assert slots.kill("not-a-flow") is None
    assert slots.kill(session_q.state_machine_id) == Q
    assert session_q.cancelled.is_set()
    killed = slots.statuses.get(Q, False)
    assert killed is not None and killed.last_reconciliation_status is V.FAILED
    assert killed.last_reconciliation_error.startswith("KilledFlowException")
    assert slots.number_in_progress() == 0
    assert not slots.stop(R)  # nothing to stop: no session, no row


def test_each_refusal_names_the_responder_and_the_requester_and_says_what_to_do(schema: Schema) -> None:
    responder = "O=Responder, L=London, C=GB"
    clock = ManualClock()
    slots = incoming(
        schema,
        clock,
        max_number_of_parallel_reconciliation_requests=1,
        max_allowed_reconciliation_requests_per_time_window=1,
    )
    slots.admit(P, responder=responder)
    with pytest.raises(MaxIncomingSessionsExceededException) as full:
        slots.admit(Q, responder=responder)
    assert f"all 1 slots of {responder}" in str(full.value) and "try again later" in str(full.value)
    slots.finish(P, [])
    with pytest.raises(ReconciliationRateLimitExceededException) as limited:
        slots.admit(P, responder=responder)
    assert str(limited.value).startswith(f"{P} has made 1 reconciliation request(s) of {responder}")
    assert "ask again once the oldest is 1:00:00 old" in str(limited.value)

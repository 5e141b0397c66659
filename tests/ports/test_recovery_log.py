"""The contract of agent.ports.recovery.RecoveryLog: Ledger Recovery's missing transactions, results
and cursors."""

from __future__ import annotations

from datetime import timedelta

from agent.ports.distribution import RecordCursor
from agent.ports.recovery import (
    LEDGERSYNC,
    PENDING,
    RECOVERED,
    UNRECOVERABLE,
    LaneKey,
    MissingTransaction,
    RecoveryResultRow,
)
from agent.store.ledger_store import LedgerStore
from tests.ports.conftest import NOW

B, C = "O=PartyB, L=New York, C=US", "O=PartyC, L=Paris, C=FR"


def row(tx: str, peer: str, minutes: int, record_type: str = "SENDER") -> MissingTransaction:
    return MissingTransaction(
        tx_id=tx * 64,
        peer=peer,
        record_type=record_type,
        role="PEER",
        timestamp=NOW + timedelta(minutes=minutes),
        timestamp_discriminator=minutes,
        states_to_record=2,
        distribution_list=b"\x01list",
        flow_id="f-1",
        updated_at=NOW,
    )


def test_missing_rows_are_kept_once_and_come_oldest_first(store: LedgerStore) -> None:
    log = store.recovery
    rows = [row("B", B, 3), row("A", B, 1), row("C", C, 2), row("D", B, 4, LEDGERSYNC)]
    assert log.add_missing(rows) == 4
    assert log.add_missing(rows[:2]) == 0  # the same (tx, peer, record type) again: nothing new
    assert [r.tx_id[0] for r in log.pending()] == ["A", "C", "B", "D"]
    assert [r.tx_id[0] for r in log.pending(peer=B, limit=2)] == ["A", "B"]
    assert [r.tx_id[0] for r in log.pending(ledgersync=False)] == ["A", "C", "B"]
    assert [r.tx_id[0] for r in log.pending(ledgersync=True)] == ["D"]
    assert log.pending()[0] == rows[1]


def test_pending_until_stops_at_a_record_key(store: LedgerStore) -> None:
    log = store.recovery
    # row(tx, peer, minutes): timestamp NOW + minutes, discriminator = minutes
    log.add_missing([row("A", B, 1), row("B", B, 2), row("C", C, 3), row("D", B, 4)])
    at = NOW + timedelta(minutes=3)
    assert [r.tx_id[0] for r in log.pending(until=(at, 3))] == ["A", "B", "C"]
    assert [r.tx_id[0] for r in log.pending(until=(at, 2))] == ["A", "B"]  # same time, later discriminator
    assert [r.tx_id[0] for r in log.pending(peer=B, until=(at, 3))] == ["A", "B"]
    assert log.pending(until=(NOW, 0)) == []
    assert [r.tx_id[0] for r in log.pending(until=None)] == ["A", "B", "C", "D"]


def test_marking_moves_a_row_on_and_counts_attempts(store: LedgerStore) -> None:
    log = store.recovery
    log.add_missing([row("A", B, 1), row("B", B, 2), row("C", C, 3)])
    later = NOW + timedelta(hours=1)
    log.mark("A" * 64, B, "SENDER", RECOVERED, None, later)
    log.mark("B" * 64, B, "SENDER", UNRECOVERABLE, "the peer does not hold it", later)
    assert [r.tx_id[0] for r in log.pending()] == ["C"]
    (gone,) = log.missing(status=UNRECOVERABLE)
    assert (gone.failure_cause, gone.attempts, gone.updated_at) == ("the peer does not hold it", 1, later)
    assert log.count_missing() == {B: {RECOVERED: 1, UNRECOVERABLE: 1}, C: {PENDING: 1}}
    assert [r.tx_id[0] for r in log.missing(tx_ids=["A" * 64, "C" * 64])] == ["A", "C"]


def test_pending_states_to_record_names_each_pending_rows_choice(store: LedgerStore) -> None:
    from dataclasses import replace

    log = store.recovery
    log.add_missing(
        [
            row("A", B, 1),  # states_to_record 2
            replace(row("A", C, 2), states_to_record=1),
            replace(row("B", B, 3, LEDGERSYNC), states_to_record=-1),
            row("C", C, 4),
        ]
    )
    log.mark("C" * 64, C, "SENDER", RECOVERED, None, NOW)  # no longer PENDING: not named
    found = log.pending_states_to_record(["A" * 64, "B" * 64, "C" * 64, "D" * 64])
    assert found == {"A" * 64: {1, 2}, "B" * 64: {-1}}
    assert log.pending_states_to_record([]) == {}


def test_results_are_kept_per_run_in_order(store: LedgerStore) -> None:
    log = store.recovery
    first = [
        RecoveryResultRow("run-1", "A" * 64, B, "PEER", True, False, None, NOW),
        RecoveryResultRow("run-1", "B" * 64, C, "INITIATOR", False, False, "refused", NOW),
    ]
    log.add_results(first)
    log.add_results([RecoveryResultRow("run-2", "C" * 64, B, "OBSERVER", True, True, None, NOW)])
    assert log.results("run-1") == first
    assert len(log.results()) == 3 and log.results(limit=1) == first[:1]
    assert log.recovered(["A" * 64, "B" * 64, "C" * 64, "D" * 64]) == {"A" * 64, "C" * 64}


def test_a_cursor_per_lane_is_saved_and_replaced(store: LedgerStore) -> None:
    log = store.recovery
    lane = LaneKey(B, "SENDER", 1_000, 2_000)
    open_lane = LaneKey(B, "SENDER", 1_000, None)
    assert log.cursor(lane) is None
    first = RecordCursor(NOW, 1, "A" * 64, "ab" * 32)
    log.save_cursor(lane, first, NOW)
    assert log.cursor(lane) == first and log.cursor(open_lane) is None
    second = RecordCursor(NOW + timedelta(seconds=5), 0, "B" * 64, "ab" * 32)
    log.save_cursor(lane, second, NOW)
    log.save_cursor(open_lane, first, NOW)
    assert (log.cursor(lane), log.cursor(open_lane)) == (second, first)


def test_requeue_puts_back_what_no_peer_supplied(store: LedgerStore) -> None:
    log = store.recovery
    log.add_missing([row("A", B, 1), row("B", B, 2), row("C", C, 3)])
    log.mark("A" * 64, B, "SENDER", UNRECOVERABLE, "refused", NOW)
    log.mark("B" * 64, B, "SENDER", UNRECOVERABLE, "refused", NOW + timedelta(hours=2))
    log.mark("C" * 64, C, "SENDER", UNRECOVERABLE, "refused", NOW)
    assert log.requeue([B], updated_before=NOW + timedelta(hours=1)) == 1  # B's older one only
    assert [r.tx_id[0] for r in log.pending()] == ["A"]
    assert log.requeue([B, C]) == 2
    assert [r.tx_id[0] for r in log.pending()] == ["A", "B", "C"]
    assert log.requeue([]) == 0

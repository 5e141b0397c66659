"""RecoveryLog.progress_since: node_recovery_missing summed per peer and status in one query."""

from __future__ import annotations

from datetime import timedelta

from agent.ports.recovery import PENDING, RECOVERED, UNRECOVERABLE, MissingTransaction, RecoveryLog
from agent.store.ledger_store import LedgerStore
from tests.ports.conftest import NOW

P, Q = "O=PartyB, L=London, C=GB", "O=PartyC, L=Paris, C=FR"


def row(n: int, peer: str, record_type: str = "SENDER") -> MissingTransaction:
    return MissingTransaction(
        tx_id=f"{n:064X}",
        peer=peer,
        record_type=record_type,
        role="PEER",
        timestamp=NOW - timedelta(days=30, seconds=n),  # the record's time, long before the run
        timestamp_discriminator=n,
        states_to_record=1,
        distribution_list=b"\x01list",
        flow_id="00000000-0000-0000-0000-000000000001",
        updated_at=NOW,  # when the run found it
    )


def test_no_rows_no_peers(store: LedgerStore) -> None:
    log: RecoveryLog = store.recovery
    assert log.progress_since(NOW) == {}


def test_counts_recent_changes_and_the_latest_change_per_peer(store: LedgerStore) -> None:
    log: RecoveryLog = store.recovery
    log.add_missing([row(n, P) for n in range(5)] + [row(10, Q), row(11, Q, "RECEIVER")])
    minute = timedelta(minutes=1)
    log.mark(row(0, P).tx_id, P, "SENDER", RECOVERED, None, NOW + 2 * minute)
    log.mark(row(1, P).tx_id, P, "SENDER", RECOVERED, None, NOW + 5 * minute)
    log.mark(row(2, P).tx_id, P, "SENDER", UNRECOVERABLE, "the peer did not supply it", NOW + 5 * minute)

    progress = log.progress_since(NOW + 4 * minute)
    assert set(progress) == {P, Q}
    p = progress[P]
    assert p.counts == {PENDING: 2, RECOVERED: 2, UNRECOVERABLE: 1}
    # Changed at or after the given time: one recovery and the failure, not the earlier recovery.
    assert p.changed_since == {PENDING: 0, RECOVERED: 1, UNRECOVERABLE: 1}
    assert p.last_change == NOW + 5 * minute
    q = progress[Q]
    assert q.counts == {PENDING: 2} and q.changed_since == {PENDING: 0}
    assert q.last_change == NOW
    # The bound is inclusive, and a time before every change counts them all.
    assert log.progress_since(NOW + 5 * minute)[P].changed_since[RECOVERED] == 1
    assert log.progress_since(NOW)[Q].changed_since == {PENDING: 2}
    assert log.count_missing() == {P: p.counts, Q: q.counts}  # what progress() reports

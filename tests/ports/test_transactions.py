"""TransactionStore: idempotent recording, VERIFIED final, IN_FLIGHT undone with its records, pages."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from agent.clock import ManualClock
from agent.errors import ConfigurationError, TransactionNotFoundError
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.ports.distribution import DistributionRecords
from agent.ports.transactions import StatusTimes, TransactionStore
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue, pay


@pytest.fixture
def transactions(store: LedgerStore) -> TransactionStore:
    return store.transactions


@pytest.fixture
def records(store: LedgerStore) -> DistributionRecords:
    return store.distribution


def test_recording_is_idempotent(transactions: TransactionStore, alice: Actor, notary_actor: Actor) -> None:
    stx = issue(alice, notary_actor, 100)
    assert transactions.record_transaction(stx) is True
    assert transactions.record_transaction(stx) is False
    assert transactions.count_transactions() == 1
    stored = transactions.get_stored(stx.id)
    assert stored is not None
    assert (stored.stx, stored.status, stored.timestamp) == (stx, TransactionStatus.VERIFIED, NOW)


def test_racing_recorders_record_once(
    store: LedgerStore, transactions: TransactionStore, alice: Actor, notary_actor: Actor
) -> None:
    stx = issue(alice, notary_actor, 100)
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def record() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(transactions.record_transaction(stx))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()  # this thread's connection

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(results) == [False, False, False, True]


@pytest.mark.parametrize("later", [TransactionStatus.IN_FLIGHT, TransactionStatus.UNVERIFIED])
def test_verified_is_never_overwritten(
    transactions: TransactionStore, alice: Actor, notary_actor: Actor, later: TransactionStatus
) -> None:
    stx = issue(alice, notary_actor, 100)
    transactions.record_transaction(stx, state_machine_run_id="run-1")
    assert transactions.record_transaction(stx, status=later, state_machine_run_id="run-2") is False
    assert transactions.transaction_status(stx.id) is TransactionStatus.VERIFIED
    stored = transactions.get_stored(stx.id)
    assert stored is not None and stored.state_machine_run_id == "run-1"


def test_in_flight_is_hidden_until_finalised_with_merged_signatures(
    transactions: TransactionStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    first = issue(alice, notary_actor, 100)
    transactions.record_transaction(first)
    move = pay(first, 0, alice, bob, 30, notary_actor)
    assert transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT) is True
    assert transactions.get_transaction(move.id) is None
    assert transactions.producing_transaction(move.id) is None
    assert transactions.in_flight_inputs() == {first.tx.output_ref(0)}
    with pytest.raises(TransactionNotFoundError):
        transactions.require_transaction(move.id)
    # The notary's signature alone finalises: the row keeps the signatures it had.
    notarised = type(move)(move.tx, (move.signed_by(notary_actor.key).sigs[-1],))
    assert transactions.record_transaction(notarised) is True
    final = transactions.require_transaction(move.id)
    assert final.signers() == {alice.party.owning_key, notary_actor.party.owning_key}
    assert transactions.producing_transaction(move.id) == move.tx
    assert transactions.in_flight_inputs() == set()


def test_removing_in_flight_takes_its_records_and_spares_verified(
    transactions: TransactionStore,
    records: DistributionRecords,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    first = issue(alice, notary_actor, 100)
    transactions.record_transaction(first)
    move = pay(first, 0, alice, bob, 30, notary_actor)
    sent = SenderDistribution(
        move.id, bob.name, NOW, 0, StatesToRecord.ONLY_RELEVANT, StatesToRecord.ONLY_RELEVANT
    )
    received = ReceiverDistribution(move.id, bob.name, NOW, 0, b"\x01list", StatesToRecord.ONLY_RELEVANT)
    transactions.record_transaction(
        move, status=TransactionStatus.IN_FLIGHT, sender_records=[sent], receiver_record=received
    )
    assert (records.sender_records(move.id), records.receiver_records(move.id)) == ([sent], [received])
    assert transactions.remove_in_flight(move.id) is True
    assert transactions.transaction_status(move.id) is None
    assert (records.sender_records(move.id), records.receiver_records(move.id)) == ([], [])
    assert transactions.remove_in_flight(move.id) is False
    assert transactions.remove_in_flight(first.id) is False
    assert transactions.transaction_status(first.id) is TransactionStatus.VERIFIED


def test_status_times_count_and_age_the_rows_of_one_status(
    transactions: TransactionStore, clock: ManualClock, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    assert transactions.status_times(TransactionStatus.IN_FLIGHT, [NOW]) == StatusTimes(0, None, (0,))
    first = issue(alice, notary_actor, 100, 100, 100)
    transactions.record_transaction(first)
    moves = [pay(first, i, alice, bob, 10, notary_actor) for i in range(3)]
    for move in moves:  # recorded IN_FLIGHT at NOW, NOW + 10 min, NOW + 20 min
        transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT)
        clock.advance(timedelta(minutes=10))
    minute = timedelta(minutes=1)
    times = transactions.status_times(
        TransactionStatus.IN_FLIGHT, [NOW + 25 * minute, NOW + 10 * minute, NOW - minute]
    )
    assert (times.count, times.oldest, times.since) == (3, NOW, (0, 2, 3))
    # Finalising one moves it out of IN_FLIGHT (and stamps its VERIFIED time).
    notarised = type(moves[0])(moves[0].tx, (moves[0].signed_by(notary_actor.key).sigs[-1],))
    transactions.record_transaction(notarised)
    times = transactions.status_times(TransactionStatus.IN_FLIGHT)
    assert (times.count, times.oldest, times.since) == (2, NOW + 10 * minute, ())
    verified = transactions.status_times(TransactionStatus.VERIFIED, [NOW + 30 * minute])
    assert (verified.count, verified.oldest, verified.since) == (2, NOW, (1,))


def test_ids_and_rows_come_in_pages_in_id_order(
    transactions: TransactionStore, alice: Actor, notary_actor: Actor
) -> None:
    txs = [issue(alice, notary_actor, i + 1) for i in range(11)]
    for stx in txs:
        transactions.record_transaction(stx)
    in_flight = issue(alice, notary_actor, 99)
    transactions.record_transaction(in_flight, status=TransactionStatus.IN_FLIGHT)
    verified = sorted(stx.id for stx in txs)
    pages = list(transactions.transaction_id_pages(status=TransactionStatus.VERIFIED, page_size=4))
    assert [len(p) for p in pages] == [4, 4, 3]
    assert [h for p in pages for h in p] == [str(i) for i in verified]
    assert list(transactions.iter_transaction_ids(page_size=4)) == sorted([*verified, in_flight.id])
    assert [
        s.stx.id for s in transactions.iter_transactions(status=TransactionStatus.VERIFIED, page_size=3)
    ] == verified
    assert transactions.count_transactions(TransactionStatus.IN_FLIGHT) == 1
    # A page that ends the ledger exactly is followed by no empty page.
    assert [len(p) for p in transactions.transaction_id_pages(page_size=6)] == [6, 6]


@pytest.mark.parametrize("bad", [0, 10_000_001, True])
def test_page_sizes_out_of_range_are_refused(transactions: TransactionStore, bad: int) -> None:
    with pytest.raises(ConfigurationError, match="pageSize"):
        list(transactions.transaction_id_pages(page_size=bad))


def test_listeners_hear_each_change_once_after_it_commits(
    transactions: TransactionStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    heard: list[tuple[object, TransactionStatus]] = []
    transactions.add_listener(lambda stx, status: heard.append((stx.id, status)))
    first = issue(alice, notary_actor, 100)
    transactions.record_transaction(first)
    transactions.record_transaction(first)
    move = pay(first, 0, alice, bob, 1, notary_actor)
    transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT)
    transactions.record_transaction(move.signed_by(notary_actor.key))
    assert heard == [
        (first.id, TransactionStatus.VERIFIED),
        (move.id, TransactionStatus.IN_FLIGHT),
        (move.id, TransactionStatus.VERIFIED),
    ]


def test_transaction_statuses_reads_many_at_once(
    store: LedgerStore, alice: Actor, notary_actor: Actor
) -> None:
    txs = [issue(alice, notary_actor, i + 1) for i in range(3)]
    store.transactions.record_transaction(txs[0])
    store.transactions.record_transaction(txs[1], status=TransactionStatus.IN_FLIGHT)
    unknown = SecureHash.of(b"none")
    found = store.transactions.transaction_statuses([t.id for t in txs] + [unknown])
    assert found == {txs[0].id: TransactionStatus.VERIFIED, txs[1].id: TransactionStatus.IN_FLIGHT}

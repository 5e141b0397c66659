"""DistributionRecords: by transaction, and by peer and time window in key order, paged by a cursor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.errors import ConfigurationError
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StatesToRecord
from agent.ports.distribution import DistributionRecords, RecordCursor, TimeWindow
from agent.ports.transactions import TransactionStore
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue

REL, ALL = StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE


@pytest.fixture
def records(store: LedgerStore) -> DistributionRecords:
    return store.distribution


@pytest.fixture
def transactions(store: LedgerStore) -> TransactionStore:
    return store.transactions


def sent(stx: SignedTransaction, peer: Actor, minutes: int, discriminator: int = 0) -> SenderDistribution:
    return SenderDistribution(stx.id, peer.name, NOW + timedelta(minutes=minutes), discriminator, REL, ALL)


def key(r: SenderDistribution) -> tuple[object, int, SecureHash, str]:
    return (r.timestamp, r.timestamp_discriminator, r.tx_id, r.peer.peer_id)


def walk(
    records: DistributionRecords, page_size: int, **query: object
) -> tuple[list[SenderDistribution], list[int]]:
    """Every page of a query, following the cursor; the records and each page's length."""
    found: list[SenderDistribution] = []
    sizes: list[int] = []
    after: RecordCursor | None = None
    while True:
        page = records.sender_records_page(after=after, page_size=page_size, **query)  # type: ignore[arg-type]
        found += page.records
        sizes.append(len(page.records))
        if page.next is None:
            return found, sizes
        after = page.next


@pytest.fixture
def ledger(
    transactions: TransactionStore, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> list[SenderDistribution]:
    """Seven sender records over four transactions, two peers, ties on timestamp and discriminator."""
    txs = [issue(alice, notary_actor, i + 1) for i in range(4)]
    plan = {
        0: [sent(txs[0], bob, 5), sent(txs[0], charlie, 5)],  # both peers: keys equal but for the peer
        1: [sent(txs[1], bob, 1, 2)],
        2: [sent(txs[2], charlie, 1, 1), sent(txs[2], bob, 1, 1)],  # a tie with 1 but for the discriminator
        3: [sent(txs[3], bob, 9), sent(txs[3], charlie, 0)],
    }
    for i, stx in enumerate(txs):
        transactions.record_transaction(stx, sender_records=plan[i])
    return sorted((r for rs in plan.values() for r in rs), key=key)


def test_by_transaction_round_trip(
    records: DistributionRecords,
    transactions: TransactionStore,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    stx = issue(alice, notary_actor, 1)
    receiver = ReceiverDistribution(stx.id, bob.name, NOW, 3, b"\x01sealed", REL)
    transactions.record_transaction(stx, sender_records=[sent(stx, bob, 0)], receiver_record=receiver)
    assert records.sender_records(stx.id) == [sent(stx, bob, 0)]
    assert records.receiver_records(stx.id) == [receiver]
    assert records.sender_records(SecureHash.of(b"unknown")) == []


def test_all_records_come_in_key_order(
    records: DistributionRecords, ledger: list[SenderDistribution]
) -> None:
    page = records.sender_records_page()
    assert page.records == ledger
    assert page.next is None


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 100])
def test_a_cursor_walks_every_record_once(
    records: DistributionRecords, ledger: list[SenderDistribution], page_size: int
) -> None:
    found, sizes = walk(records, page_size)
    assert found == ledger
    assert all(size <= page_size for size in sizes)


def test_by_peer(
    records: DistributionRecords, ledger: list[SenderDistribution], bob: Actor, charlie: Actor
) -> None:
    found, _ = walk(records, 2, peers=[bob.name])
    assert found == [r for r in ledger if r.peer == bob.name]
    assert walk(records, 2, peers=[bob.name, charlie.name])[0] == ledger
    unknown = X500Name.parse("O=Nobody, L=Oslo, C=NO")
    assert records.sender_records_page(peers=[unknown]).records == []


def test_by_time_window_from_inclusive_until_exclusive(
    records: DistributionRecords, ledger: list[SenderDistribution], charlie: Actor
) -> None:
    window = TimeWindow(NOW + timedelta(minutes=1), NOW + timedelta(minutes=9))
    found, _ = walk(records, 2, window=window)
    assert found == [r for r in ledger if window.from_time <= r.timestamp < window.until_time]  # type: ignore[operator]
    assert {r.timestamp for r in found} == {NOW + timedelta(minutes=1), NOW + timedelta(minutes=5)}
    since = NOW + timedelta(minutes=5)
    later, _ = walk(records, 2, window=TimeWindow(from_time=since), peers=[charlie.name])
    assert later == [r for r in ledger if r.peer == charlie.name and r.timestamp >= since]
    assert records.sender_records_page(window=TimeWindow(until_time=NOW)).records == []


def test_a_cursor_resumes_after_writes(
    records: DistributionRecords,
    transactions: TransactionStore,
    ledger: list[SenderDistribution],
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    first = records.sender_records_page(page_size=3)
    assert first.records == ledger[:3] and first.next is not None
    early, late = issue(alice, notary_actor, 500), issue(alice, notary_actor, 600)
    transactions.record_transaction(early, sender_records=[sent(early, bob, -1)])  # before the cursor
    transactions.record_transaction(late, sender_records=[sent(late, bob, 60)])
    rest: list[SenderDistribution] = []
    after = first.next
    while after is not None:
        page = records.sender_records_page(after=after, page_size=3)
        rest += page.records
        after = page.next
    assert rest == [*ledger[3:], sent(late, bob, 60)]


def test_receiver_records_page_by_sender(
    records: DistributionRecords,
    transactions: TransactionStore,
    alice: Actor,
    bob: Actor,
    charlie: Actor,
    notary_actor: Actor,
) -> None:
    txs = [issue(alice, notary_actor, i + 1) for i in range(5)]
    made = []
    for i, stx in enumerate(txs):
        sender = bob if i % 2 else charlie
        rec = ReceiverDistribution(stx.id, sender.name, NOW + timedelta(seconds=5 - i), i, b"\x01" * i, REL)
        transactions.record_transaction(stx, receiver_record=rec)
        made.append(rec)
    from_bob = sorted((r for r in made if r.sender == bob.name), key=lambda r: r.timestamp)
    page = records.receiver_records_page(peers=[bob.name], page_size=1)
    assert page.records == from_bob[:1] and page.next is not None
    rest = records.receiver_records_page(peers=[bob.name], after=page.next, page_size=5)
    assert rest.records == from_bob[1:] and rest.next is None


@pytest.mark.parametrize("bad", [0, 10_000_001])
def test_page_sizes_out_of_range_are_refused(records: DistributionRecords, bad: int) -> None:
    with pytest.raises(ConfigurationError, match="pageSize"):
        records.sender_records_page(page_size=bad)


def test_record_keys_name_the_records_held_with_a_peer(
    records: DistributionRecords,
    transactions: TransactionStore,
    ledger: list[SenderDistribution],
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    ids = sorted({str(r.tx_id) for r in ledger})
    to_bob = {(str(r.tx_id), r.timestamp, r.timestamp_discriminator) for r in ledger if r.peer == bob.name}
    assert records.record_keys("SENDER", bob.name, [*ids, "00" * 32]) == to_bob
    assert records.record_keys("RECEIVER", bob.name, ids) == set()
    stx = issue(alice, notary_actor, 99)
    transactions.record_transaction(
        stx, receiver_record=ReceiverDistribution(stx.id, bob.name, NOW, 4, b"x", REL)
    )
    assert records.record_keys("RECEIVER", bob.name, [str(stx.id)]) == {(str(stx.id), NOW, 4)}


def test_transactions_without_records_are_listed_in_id_order(
    records: DistributionRecords,
    transactions: TransactionStore,
    ledger: list[SenderDistribution],
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    bare = sorted([issue(alice, notary_actor, 100 + i) for i in range(3)], key=lambda s: str(s.id))
    for stx in bare:
        transactions.record_transaction(stx)
    received = issue(alice, notary_actor, 200)
    transactions.record_transaction(
        received, receiver_record=ReceiverDistribution(received.id, bob.name, NOW, 0, b"x", REL)
    )
    ids = [str(s.id) for s in bare]
    assert records.transactions_without_records() == ids
    assert records.transactions_without_records(after=ids[0], limit=1) == ids[1:2]

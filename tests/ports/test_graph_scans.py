"""GraphScans: raw pages of VERIFIED blobs, distribution peers and vault statuses, under scanning()."""

from __future__ import annotations

import pytest

from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.vault import StateStatus, StatesToRecord, TransactionStatus
from agent.ports.graph_scans import GraphScans
from agent.ports.transactions import TransactionStore
from agent.store.database import SCAN_CACHE_KIB, SQLITE_PRAGMAS, is_sqlite
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue, pay

REL = StatesToRecord.ONLY_RELEVANT


@pytest.fixture
def scans(store: LedgerStore) -> GraphScans:
    return store.graph_scans


@pytest.fixture
def transactions(store: LedgerStore) -> TransactionStore:
    return store.transactions


def test_blob_pages_hold_verified_rows_in_id_order(
    scans: GraphScans, transactions: TransactionStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    txs = [issue(alice, notary_actor, i + 1) for i in range(7)]
    for stx in txs:
        transactions.record_transaction(stx)
    transactions.record_transaction(
        pay(txs[0], 0, alice, bob, 1, notary_actor), status=TransactionStatus.IN_FLIGHT
    )
    pages = list(scans.verified_blob_pages(3))
    assert [len(p) for p in pages] == [3, 3, 1]
    by_id = sorted(txs, key=lambda stx: stx.id)
    assert [(h, bytes(blob)) for p in pages for h, blob in p] == [(str(s.id), s.tx.serialized) for s in by_id]
    assert scans.count_transactions(TransactionStatus.VERIFIED) == 7
    assert [
        h for p in scans.transaction_id_pages(status=TransactionStatus.VERIFIED, page_size=7) for h in p
    ] == [str(s.id) for s in by_id]
    assert scans.our_keys == frozenset({alice.party.owning_key})


def test_distribution_peers_and_party_names(
    scans: GraphScans,
    transactions: TransactionStore,
    alice: Actor,
    bob: Actor,
    charlie: Actor,
    notary_actor: Actor,
) -> None:
    one, two = issue(alice, notary_actor, 1), issue(alice, notary_actor, 2)
    transactions.record_transaction(
        one,
        sender_records=[
            SenderDistribution(one.id, bob.name, NOW, 0, REL, REL),
            SenderDistribution(one.id, charlie.name, NOW, 0, REL, REL),
        ],
    )
    transactions.record_transaction(
        two, receiver_record=ReceiverDistribution(two.id, bob.name, NOW, 0, b"l", REL)
    )
    pages = list(scans.distribution_peer_pages(2))
    assert all(len(p) <= 2 for p in pages)
    rows = sorted(tuple(r) for p in pages for r in p)
    assert rows == sorted(
        [
            (str(one.id), bob.name.peer_id),
            (str(one.id), charlie.name.peer_id),
            (str(two.id), bob.name.peer_id),
        ]
    )
    assert dict(scans.party_names()) == {
        bob.name.peer_id: str(bob.name),
        charlie.name.peer_id: str(charlie.name),
    }


def test_vault_status_pages(
    scans: GraphScans, transactions: TransactionStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    first = issue(alice, notary_actor, 10, 20, 30)
    transactions.record_transaction(first)
    transactions.record_transaction(pay(first, 1, alice, bob, 20, notary_actor).signed_by(notary_actor.key))
    pages = list(scans.vault_status_pages(2))
    assert [len(p) for p in pages] == [2, 1]
    rows = {(h, i): status for p in pages for h, i, status in p}
    assert rows == {
        (str(first.id), 0): StateStatus.UNCONSUMED,
        (str(first.id), 1): StateStatus.CONSUMED,
        (str(first.id), 2): StateStatus.UNCONSUMED,
    }


def test_scanning_keeps_the_sqlite_cache_small_and_gives_it_back(
    scans: GraphScans, store: LedgerStore, alice: Actor, notary_actor: Actor
) -> None:
    store.transactions.record_transaction(issue(alice, notary_actor, 1))
    sqlite = is_sqlite(store.database)

    def cache_size() -> int | None:
        return store.database.execute_sql("PRAGMA cache_size").fetchone()[0] if sqlite else None

    before = cache_size()
    with scans.scanning():
        during = cache_size()
        assert len(list(scans.verified_blob_pages(10))) == 1
    assert cache_size() == before
    if sqlite:
        assert (before, during) == (SQLITE_PRAGMAS["cache_size"], -SCAN_CACHE_KIB)

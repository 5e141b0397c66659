"""The batch methods (Ledger Recovery's): each leaves the store as its one-at-a-time counterpart would."""

from __future__ import annotations

from datetime import timedelta

from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StateStatus, StatesToRecord, TransactionStatus
from agent.ports.recovery import RECOVERED, UNRECOVERABLE, MissingTransaction
from agent.ports.transactions import Recording
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue, pay

REL, ALL = StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE
V, F = TransactionStatus.VERIFIED, TransactionStatus.IN_FLIGHT
SENDER = "SENDER"  # a record type, as Ledger Recovery names them


def sent(stx: SignedTransaction, peer: Actor, discriminator: int = 0) -> SenderDistribution:
    return SenderDistribution(stx.id, peer.name, NOW, discriminator, REL, ALL)


def states(store: LedgerStore) -> list[tuple[str, int, StateStatus, str | None]]:
    return [
        (
            str(s.ref.txhash),
            s.state.data["amount"],
            s.state_status,
            s.consuming_tx_id and str(s.consuming_tx_id),
        )
        for s in store.vault.iter_vault_states(state_status=None, relevancy=None)
    ]


def test_record_transactions_writes_rows_vault_and_records_as_record_transaction_would(
    store: LedgerStore, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    heard: list[tuple[SecureHash, TransactionStatus]] = []
    store.transactions.add_listener(lambda stx, status: heard.append((stx.id, status)))
    issued = issue(alice, notary_actor, 100, 50)
    moved = pay(issued, 0, alice, bob, 100, notary_actor).signed_by(notary_actor.key)
    received = ReceiverDistribution(moved.id, bob.name, NOW, 7, b"\x01sealed", REL)
    changed = store.transactions.record_transactions(
        [
            Recording(issued, sender_records=[sent(issued, bob)]),
            Recording(moved, receiver_record=received),
            Recording(issued, sender_records=[sent(issued, charlie)]),  # again: only its records
        ]
    )
    assert changed == [True, True, False]
    assert store.transactions.transaction_statuses([issued.id, moved.id]) == {issued.id: V, moved.id: V}
    assert states(store) == [
        (str(issued.id), 100, StateStatus.CONSUMED, str(moved.id)),
        (str(issued.id), 50, StateStatus.UNCONSUMED, None),
    ]
    assert {r.peer for r in store.distribution.sender_records(issued.id)} == {bob.name, charlie.name}
    assert store.distribution.receiver_records(moved.id) == [received]
    assert heard == [(issued.id, V), (moved.id, V)]


def test_record_distribution_adds_records_of_held_transactions_and_touches_nothing_else(
    store: LedgerStore, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    issued = issue(alice, notary_actor, 100)
    store.transactions.record_transaction(issued, sender_records=[sent(issued, bob)])
    heard: list[SecureHash] = []
    store.transactions.add_listener(lambda stx, status: heard.append(stx.id))
    before = states(store)
    received = ReceiverDistribution(issued.id, charlie.name, NOW, 3, b"\x02sealed", REL)
    store.transactions.record_distribution([sent(issued, charlie)], [received])
    store.transactions.record_distribution([sent(issued, charlie)], [received])  # again: the same rows
    assert {r.peer for r in store.distribution.sender_records(issued.id)} == {bob.name, charlie.name}
    assert store.distribution.receiver_records(issued.id) == [received]
    assert states(store) == before and heard == []
    assert store.transactions.transaction_statuses([issued.id]) == {issued.id: V}


def test_record_transactions_finalises_in_place_and_leaves_verified_rows_alone(
    store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    issued = issue(alice, notary_actor, 100)
    store.transactions.record_transaction(issued)
    moved = pay(issued, 0, alice, bob, 100, notary_actor)
    notarised = moved.signed_by(notary_actor.key)
    changed = store.transactions.record_transactions(
        [
            Recording(issued, sender_records=[sent(issued, bob)]),
            Recording(moved, status=F),
            Recording(notarised),
        ]
    )
    assert changed == [False, True, True]
    stored = store.transactions.get_stored(moved.id)
    assert stored is not None and stored.status is V and stored.stx.signers() == notarised.signers()
    assert states(store) == [(str(issued.id), 100, StateStatus.CONSUMED, str(moved.id))]
    assert [r.peer for r in store.distribution.sender_records(issued.id)] == [bob.name]


def test_raw_and_producing_transactions_in_bulk(
    store: LedgerStore, alice: Actor, notary_actor: Actor
) -> None:
    issued = issue(alice, notary_actor, 100)
    in_flight = pay(issued, 0, alice, alice, 100, notary_actor)
    store.transactions.record_transaction(issued)
    store.transactions.record_transaction(in_flight, status=F)
    unknown = SecureHash.of(b"unknown")
    raw = store.transactions.raw_transactions([issued.id, in_flight.id, unknown])
    assert set(raw) == {issued.id, in_flight.id}
    assert raw[in_flight.id].status is F and raw[in_flight.id].stx() == in_flight
    assert raw[issued.id].serialized() == issued.serialize()
    # Only VERIFIED transactions are back-chain.
    assert store.transactions.producing_transactions([issued.id, in_flight.id, unknown]) == {
        issued.id: issued.tx
    }


def test_sender_records_of_and_ids_with_records(
    store: LedgerStore, alice: Actor, bob: Actor, charlie: Actor, notary_actor: Actor
) -> None:
    a, b, c = (issue(alice, notary_actor, i + 1) for i in range(3))
    store.transactions.record_transaction(a, sender_records=[sent(a, bob), sent(a, charlie)])
    store.transactions.record_transaction(
        b, receiver_record=ReceiverDistribution(b.id, bob.name, NOW, 0, b"\x01", REL)
    )
    store.transactions.record_transaction(c, sender_records=[sent(c, charlie)])
    assert store.distribution.sender_records_of([a.id, b.id, c.id]) == {
        a.id: store.distribution.sender_records(a.id),
        c.id: store.distribution.sender_records(c.id),
    }
    assert store.distribution.ids_with_records(bob.name, [a.id, b.id, c.id]) == {a.id, b.id}
    assert store.distribution.ids_with_records(charlie.name, [a.id, b.id]) == {a.id}


def test_add_missing_counts_new_rows_and_mark_many_moves_them_on(store: LedgerStore) -> None:
    def row(tx: str) -> MissingTransaction:
        return MissingTransaction(
            tx, "O=Bob Plc, L=Rome, C=IT", SENDER, "PEER", NOW, 0, 1, b"", "flow", updated_at=NOW
        )

    ids = [str(SecureHash.of(bytes([i]))) for i in range(3)]
    assert store.recovery.add_missing([row(t) for t in ids]) == 3
    assert store.recovery.add_missing([row(ids[0]), row(ids[0])]) == 0
    later = NOW + timedelta(minutes=1)
    store.recovery.mark_many(
        [
            (ids[0], row(ids[0]).peer, SENDER, RECOVERED, None),
            (ids[1], row(ids[1]).peer, SENDER, UNRECOVERABLE, "no"),
        ],
        later,
    )
    assert [r.tx_id for r in store.recovery.pending()] == [ids[2]]
    gone = {r.tx_id: r for r in store.recovery.missing(status=UNRECOVERABLE)}
    assert (
        gone[ids[1]].failure_cause == "no" and gone[ids[1]].attempts == 1 and gone[ids[1]].updated_at == later
    )

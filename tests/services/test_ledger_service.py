"""Verify-then-record: bad input gets a named error and leaves the store exactly as it was."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.clock import ManualClock
from agent.errors import (
    AmountsNotConservedError,
    InvalidNameError,
    InvalidSignatureError,
    MissingSignatureError,
    NotaryConflictError,
    SerializationError,
    TransactionResolutionError,
    UnknownContractError,
)
from agent.ledger import token
from agent.ledger.identity import X500Name
from agent.ledger.shipped import default_contracts
from agent.ledger.transactions import (
    Command,
    SignedTransaction,
    TransactionSignature,
    TransactionState,
    WireTransaction,
)
from agent.ledger.vault import StateStatus, StatesToRecord, TransactionStatus
from agent.notary.service import NotaryService
from agent.notary.uniqueness import UniquenessProvider
from agent.services.ledger_service import LedgerService
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor


@pytest.fixture
def store(database_url: str, alice: Actor) -> LedgerStore:
    s = LedgerStore(database_url, our_keys=[alice.party.owning_key])
    yield s
    s.close()


@pytest.fixture
def ledger(store: LedgerStore) -> LedgerService:
    return LedgerService(store.transactions, default_contracts())


@pytest.fixture
def funded(ledger: LedgerService, alice: Actor, bob: Actor, notary_actor: Actor) -> SignedTransaction:
    stx = token.issue(alice.party, notary_actor.party, [(alice.party, 100), (bob.party, 40)], "GBP").sign(
        [alice.key]
    )
    assert ledger.record(stx)
    return stx


def snapshot(store: LedgerStore) -> tuple[object, ...]:
    return (
        list(store.transactions.iter_transaction_ids()),
        [(v.ref, v.state_status) for v in store.vault.iter_vault_states(state_status=None, relevancy=None)],
        store.schema.state_party.select().count(),
        store.schema.sender_distr_recs.select().count(),
    )


def notarised(stx: SignedTransaction, notary_actor: Actor) -> SignedTransaction:
    return stx.signed_by(notary_actor.key)


def test_a_good_chain_is_recorded_once(
    ledger: LedgerService,
    store: LedgerStore,
    funded: SignedTransaction,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    move = token.move([funded.tx.out_ref(0)], [(bob.party, 60)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    move = notarised(move, notary_actor)
    assert ledger.record(move) is True
    assert ledger.record(move) is False
    assert store.transactions.transaction_status(move.id) is TransactionStatus.VERIFIED
    consumed = [v.ref for v in store.vault.iter_vault_states(state_status=StateStatus.CONSUMED)]
    assert consumed == [funded.tx.output_ref(0)]
    assert [v.state.data["amount"] for v in store.vault.iter_vault_states()] == [40]  # Alice's change


def test_in_flight_needs_every_signature_but_the_notarys(
    ledger: LedgerService,
    store: LedgerStore,
    funded: SignedTransaction,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    move = token.move([funded.tx.out_ref(0)], [(bob.party, 60)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    assert ledger.record(move, status=TransactionStatus.IN_FLIGHT)
    before = snapshot(store)
    with pytest.raises(MissingSignatureError, match=notary_actor.party.owning_key.hex):
        ledger.record(move)  # VERIFIED needs the notary's signature
    assert snapshot(store) == before
    assert ledger.record(notarised(move, notary_actor)) is True


Case = Callable[[SignedTransaction, Actor, Actor, Actor], SignedTransaction]


def _bad_signature(funded: SignedTransaction, alice: Actor, bob: Actor, notary: Actor) -> SignedTransaction:
    move = token.move([funded.tx.out_ref(0)], [(bob.party, 60)], alice.party, notary.party).sign([alice.key])
    sig = move.sigs[0]
    forged = TransactionSignature(sig.by, bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    return notarised(SignedTransaction(move.tx, (forged,)), notary)


def _missing_signature(
    funded: SignedTransaction, alice: Actor, bob: Actor, notary: Actor
) -> SignedTransaction:
    move = token.move([funded.tx.out_ref(0)], [(bob.party, 60)], alice.party, notary.party)
    return notarised(SignedTransaction(move.to_wire()), notary)


def _missing_back_chain(
    funded: SignedTransaction, alice: Actor, bob: Actor, notary: Actor
) -> SignedTransaction:
    elsewhere = token.issue(alice.party, notary.party, [(alice.party, 5)], "EUR").sign([alice.key])
    move = token.move([elsewhere.tx.out_ref(0)], [(bob.party, 5)], alice.party, notary.party).sign(
        [alice.key]
    )
    return notarised(move, notary)


def _unknown_contract(
    funded: SignedTransaction, alice: Actor, bob: Actor, notary: Actor
) -> SignedTransaction:
    tx = WireTransaction(
        inputs=(),
        references=(),
        outputs=(TransactionState("com.example.Bond", {"face": 100}, (alice.party,)),),
        commands=(Command("com.example.Bond", "Issue", (alice.party.owning_key,)),),
        notary=notary.party,
    )
    return SignedTransaction(tx).signed_by(alice.key)


def _not_conserved(funded: SignedTransaction, alice: Actor, bob: Actor, notary: Actor) -> SignedTransaction:
    builder = token.move([funded.tx.out_ref(0)], [(bob.party, 60)], alice.party, notary.party)
    builder.outputs[-1] = token.Token(41, "GBP", alice.party, alice.party).to_state()  # 60 + 41 != 100
    return notarised(builder.sign([alice.key]), notary)


@pytest.mark.parametrize(
    ("make", "error", "names"),
    [
        (_bad_signature, InvalidSignatureError, "does not verify"),
        (_missing_signature, MissingSignatureError, "missing signatures"),
        (_missing_back_chain, TransactionResolutionError, "back-chain incomplete"),
        (_unknown_contract, UnknownContractError, "com.example.Bond"),
        (_not_conserved, AmountsNotConservedError, "amounts not conserved for GBP"),
    ],
    ids=["bad-signature", "missing-signature", "missing-back-chain", "unknown-contract", "not-conserved"],
)
def test_bad_transactions_are_refused_by_name_and_leave_nothing(
    ledger: LedgerService,
    store: LedgerStore,
    funded: SignedTransaction,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
    make: Case,
    error: type[Exception],
    names: str,
) -> None:
    stx = make(funded, alice, bob, notary_actor)
    before = snapshot(store)
    with pytest.raises(error, match=names) as err:
        ledger.record(stx)
    assert str(stx.id) in str(err.value)
    assert snapshot(store) == before
    assert store.transactions.transaction_status(stx.id) is None


def test_a_malformed_name_never_reaches_the_ledger(funded: SignedTransaction) -> None:
    with pytest.raises(InvalidNameError) as err:
        X500Name.parse("O=PartyA, L=London, C=UK")
    assert err.value.attribute == "C"
    # A transaction whose bytes carry a bad name does not even deserialise.
    good = funded.tx.serialized
    bad = good.replace(b"C=ES", b"C=XX")
    assert bad != good
    with pytest.raises(SerializationError, match="attribute C"):
        WireTransaction.deserialize(bad)


def test_a_double_spend_is_refused_and_recorded_nowhere(
    database_url: str,
    ledger: LedgerService,
    store: LedgerStore,
    funded: SignedTransaction,
    alice: Actor,
    bob: Actor,
    charlie: Actor,
    notary_actor: Actor,
    tmp_path: object,
) -> None:
    notary_store = LedgerStore(f"sqlite:///{tmp_path}/notary.db")
    clock = ManualClock()
    notary = NotaryService(
        notary_actor.party,
        notary_actor.key,
        UniquenessProvider(notary_store.uniqueness, notary_store.unit, clock),
        clock,
    )
    first = token.move([funded.tx.out_ref(0)], [(bob.party, 10)], alice.party, notary_actor.party).sign(
        [alice.key]
    )
    ledger.record(first.with_signatures(notary.notarise(first)))
    again = token.move([funded.tx.out_ref(0)], [(charlie.party, 10)], alice.party, notary_actor.party)
    again_stx = again.sign([alice.key])
    before = snapshot(store)
    with pytest.raises(NotaryConflictError, match=str(first.id)):
        notary.notarise(again_stx)
    assert snapshot(store) == before
    assert not notary.uniqueness.is_committed(again_stx.id)
    notary_store.close()


def test_record_chain_verifies_a_fetched_back_chain_parents_first(
    ledger: LedgerService, store: LedgerStore, alice: Actor, bob: Actor, notary_actor: Actor, tmp_path: object
) -> None:
    # Bob's chain, built elsewhere: issue -> move -> move, arriving shuffled.
    origin = token.issue(bob.party, notary_actor.party, [(bob.party, 30)], "USD").sign([bob.key])
    hop = notarised(
        token.move([origin.tx.out_ref(0)], [(bob.party, 30)], bob.party, notary_actor.party).sign([bob.key]),
        notary_actor,
    )
    last = notarised(
        token.move([hop.tx.out_ref(0)], [(alice.party, 30)], bob.party, notary_actor.party).sign([bob.key]),
        notary_actor,
    )
    recorded = ledger.record_chain([last, origin, hop], StatesToRecord.ONLY_RELEVANT)
    assert [s.id for s in recorded] == [origin.id, hop.id, last.id]
    assert [v.state.data["amount"] for v in store.vault.iter_vault_states()] == [30]
    assert ledger.record_chain([last, origin, hop]) == []

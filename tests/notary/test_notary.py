"""The notary: uniqueness, references, time windows, idempotence, persistence; on both databases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from agent.clock import ManualClock
from agent.errors import InvalidSignatureError, NotaryConflictError, NotaryRejectionError
from agent.ledger import token
from agent.ledger.transactions import SignedTransaction, TimeWindow, TransactionSignature
from agent.notary.service import NotaryService
from agent.notary.uniqueness import UniquenessProvider
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor, make_actor

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def notary_store(database_url: str) -> LedgerStore:
    store = LedgerStore(database_url)
    yield store
    store.close()


@pytest.fixture
def notary(notary_store: LedgerStore, notary_actor: Actor, clock: ManualClock) -> NotaryService:
    return NotaryService(
        notary_actor.party,
        notary_actor.key,
        UniquenessProvider(notary_store.uniqueness, notary_store.unit, clock),
        clock,
    )


@pytest.fixture
def issued(alice: Actor, bob: Actor, notary_actor: Actor) -> SignedTransaction:
    return token.issue(alice.party, notary_actor.party, [(alice.party, 100), (bob.party, 10)], "GBP").sign(
        [alice.key]
    )


def spend(
    issued: SignedTransaction, owner: Actor, to: Actor, notary_actor: Actor, amount: int = 10
) -> SignedTransaction:
    return token.move([issued.tx.out_ref(0)], [(to.party, amount)], owner.party, notary_actor.party).sign(
        [owner.key]
    )


def test_notarising_signs_the_id_and_commits_the_inputs(
    notary: NotaryService,
    notary_store: LedgerStore,
    issued: SignedTransaction,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    move = spend(issued, alice, bob, notary_actor)
    sig = notary.notarise(move, requester=alice.name)
    assert sig.by == notary_actor.party.owning_key
    assert sig.verify(move.id)
    assert notary.uniqueness.consumer_of(issued.tx.output_ref(0)) == move.id
    assert notary.uniqueness.is_committed(move.id)
    log = list(notary_store.schema.notary_request_log.select())
    assert [(r.consuming_transaction_id, r.requesting_party_name) for r in log] == [
        (str(move.id), str(alice.name))
    ]


def test_a_double_spend_names_the_consuming_transaction(
    notary: NotaryService,
    issued: SignedTransaction,
    alice: Actor,
    bob: Actor,
    charlie: Actor,
    notary_actor: Actor,
) -> None:
    first = spend(issued, alice, bob, notary_actor)
    notary.notarise(first)
    second = spend(issued, alice, charlie, notary_actor, amount=20)
    with pytest.raises(NotaryConflictError) as err:
        notary.notarise(second)
    assert err.value.conflicts == {str(issued.tx.output_ref(0)): str(first.id)}
    assert str(first.id) in str(err.value)
    assert not notary.uniqueness.is_committed(second.id)


def test_renotarising_the_same_transaction_is_idempotent(
    notary: NotaryService, issued: SignedTransaction, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    move = spend(issued, alice, bob, notary_actor)
    first = notary.notarise(move)
    again = notary.notarise(move)
    assert again.verify(move.id)
    assert again == first  # Ed25519 signatures are deterministic


def test_references_must_be_unconsumed_and_are_not_consumed(
    notary: NotaryService, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    pool = token.issue(
        alice.party, notary_actor.party, [(alice.party, 5), (alice.party, 6), (bob.party, 7)], "GBP"
    )
    pool_tx = pool.sign([alice.key])
    reader = token.move([pool_tx.tx.out_ref(0)], [(bob.party, 5)], alice.party, notary_actor.party)
    reader.add_reference(pool_tx.tx.out_ref(2))
    reading = reader.sign([alice.key])
    notary.notarise(reading)
    assert notary.uniqueness.consumer_of(pool_tx.tx.output_ref(2)) is None  # a reference is not consumed

    spender = token.move([pool_tx.tx.out_ref(2)], [(alice.party, 7)], bob.party, notary_actor.party).sign(
        [bob.key]
    )
    notary.notarise(spender)  # ... so its owner may still spend it
    late = token.move([pool_tx.tx.out_ref(1)], [(bob.party, 6)], alice.party, notary_actor.party)
    late.add_reference(pool_tx.tx.out_ref(2))
    with pytest.raises(NotaryConflictError) as err:
        notary.notarise(late.sign([alice.key]))
    assert err.value.conflicts == {str(pool_tx.tx.output_ref(2)): str(spender.id)}


def test_a_transaction_for_another_notary_is_refused(
    notary: NotaryService, issued: SignedTransaction, alice: Actor, bob: Actor
) -> None:
    other = make_actor("O=Other Notary, L=Oslo, C=NO")
    stranger = token.issue(alice.party, other.party, [(alice.party, 1)], "GBP").sign([alice.key])
    move = token.move([stranger.tx.out_ref(0)], [(bob.party, 1)], alice.party, other.party).sign([alice.key])
    with pytest.raises(NotaryRejectionError, match="names notary O=Other Notary"):
        notary.notarise(move)


def test_an_issuance_needs_no_notary(notary: NotaryService, issued: SignedTransaction) -> None:
    with pytest.raises(NotaryRejectionError, match="no inputs"):
        notary.notarise(issued)


def test_time_windows_are_checked_against_the_notary_clock(
    notary: NotaryService,
    clock: ManualClock,
    issued: SignedTransaction,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    builder = token.move([issued.tx.out_ref(0)], [(bob.party, 1)], alice.party, notary_actor.party)
    builder.time_window = TimeWindow(NOW + timedelta(minutes=5), NOW + timedelta(minutes=10))
    move = builder.sign([alice.key])
    with pytest.raises(NotaryRejectionError, match="time window"):
        notary.notarise(move)
    assert not notary.uniqueness.is_committed(move.id)
    clock.advance(timedelta(minutes=6))
    assert notary.notarise(move).verify(move.id)


def test_a_forged_signature_burns_nothing(
    notary: NotaryService, issued: SignedTransaction, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    move = spend(issued, alice, bob, notary_actor)
    forged = SignedTransaction(move.tx, (TransactionSignature(alice.party.owning_key, bytes(64)),))
    with pytest.raises(InvalidSignatureError):
        notary.notarise(forged)
    assert notary.uniqueness.consumer_of(issued.tx.output_ref(0)) is None


def test_commitments_survive_a_restart(
    database_url: str,
    notary: NotaryService,
    issued: SignedTransaction,
    alice: Actor,
    bob: Actor,
    charlie: Actor,
    notary_actor: Actor,
    clock: ManualClock,
) -> None:
    notary.notarise(spend(issued, alice, bob, notary_actor))
    reopened = LedgerStore(database_url)
    again = NotaryService(
        notary_actor.party,
        notary_actor.key,
        UniquenessProvider(reopened.uniqueness, reopened.unit, clock),
        clock,
    )
    with pytest.raises(NotaryConflictError):
        again.notarise(spend(issued, alice, charlie, notary_actor))
    reopened.close()


def test_racing_spends_let_exactly_one_through(
    database_url: str,
    notary: NotaryService,
    notary_store: LedgerStore,
    issued: SignedTransaction,
    alice: Actor,
    notary_actor: Actor,
) -> None:
    receivers = [make_actor(f"O=Receiver {chr(65 + i)}, L=Paris, C=FR") for i in range(4)]
    spends = [spend(issued, alice, r, notary_actor, amount=i + 1) for i, r in enumerate(receivers)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(spends))

    def attempt(stx: SignedTransaction) -> None:
        barrier.wait(timeout=10)
        try:
            notary.notarise(stx)
            outcomes.append("signed")
        except NotaryConflictError:
            outcomes.append("conflict")
        finally:
            notary_store.close()  # this thread's connection

    threads = [threading.Thread(target=attempt, args=(s,)) for s in spends]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "signed"]
    winner = notary.uniqueness.consumer_of(issued.tx.output_ref(0))
    assert winner in {s.id for s in spends}


def test_a_transaction_it_signed_is_signed_again_after_its_time_window_closed(
    notary: NotaryService,
    clock: ManualClock,
    issued: SignedTransaction,
    alice: Actor,
    bob: Actor,
    notary_actor: Actor,
) -> None:
    # Finality recovery re-notarises, perhaps long after the window: the notary answers as before.
    builder = token.move([issued.tx.out_ref(0)], [(bob.party, 1)], alice.party, notary_actor.party)
    builder.time_window = TimeWindow(None, NOW + timedelta(minutes=5))
    move = builder.sign([alice.key])
    first = notary.notarise(move)
    clock.advance(timedelta(hours=1))
    assert notary.notarise(move) == first
    late = token.move([issued.tx.out_ref(1)], [(alice.party, 10)], bob.party, notary_actor.party)
    late.time_window = TimeWindow(None, NOW + timedelta(minutes=5))
    with pytest.raises(NotaryRejectionError, match="time window"):  # one it never signed is refused
        notary.notarise(late.sign([bob.key]))


def test_the_notarisation_check_learns_who_consumed_the_inputs_and_consumes_nothing(
    notary: NotaryService,
    notary_store: LedgerStore,
    issued: SignedTransaction,
    alice: Actor,
    bob: Actor,
    charlie: Actor,
    notary_actor: Actor,
) -> None:
    from agent.finality.notarisation_check import Notarisation, check_transaction, interpret

    def ask(original: SignedTransaction) -> Notarisation:
        try:
            notary.notarise(
                check_transaction(original.tx, charlie.party, charlie.key), requester=charlie.name
            )
        except NotaryConflictError as conflict:
            return interpret(original.tx, conflict).status
        return interpret(original.tx, None).status

    move = spend(issued, alice, bob, notary_actor)
    assert ask(move) is Notarisation.NOT_NOTARISED
    assert ask(move) is Notarisation.NOT_NOTARISED  # asked twice: still nothing consumed
    assert notary.uniqueness.consumer_of(issued.tx.output_ref(0)) is None
    notary.notarise(move)
    assert ask(move) is Notarisation.NOTARISED
    rival = spend(issued, alice, charlie, notary_actor, amount=20)  # same input, never notarisable now
    assert ask(rival) is Notarisation.CONSUMED_ELSEWHERE
    assert notary.uniqueness.consumer_of(issued.tx.output_ref(0)) == move.id
    assert interpret(issued.tx, None).status is Notarisation.UNKNOWN  # no inputs to ask about
    requesters = {r.requesting_party_name for r in notary_store.schema.notary_request_log.select()}
    assert str(charlie.name) in requesters

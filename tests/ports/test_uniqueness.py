"""CommittedStates, and the notary's rule over it: conflicts named, re-commits idempotent, races lost."""

from __future__ import annotations

import pytest

from agent.clock import ManualClock
from agent.errors import ConstraintViolationError, NotaryConflictError
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import StateRef
from agent.notary.uniqueness import UniquenessProvider
from agent.ports.uniqueness import CommittedStates
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW

SOURCE = SecureHash.of(b"issuance")
A, B, C = (StateRef(SOURCE, i) for i in range(3))
T1, T2 = SecureHash.of(b"spend 1"), SecureHash.of(b"spend 2")


@pytest.fixture
def states(store: LedgerStore) -> CommittedStates:
    return store.uniqueness


@pytest.fixture
def provider(store: LedgerStore, states: CommittedStates, clock: ManualClock) -> UniquenessProvider:
    return UniquenessProvider(states, store.unit, clock)


def test_commit_records_consumers_and_the_transaction(states: CommittedStates) -> None:
    states.commit(T1, [A, B], NOW)
    assert states.is_committed(T1) and not states.is_committed(T2)
    assert (states.consumer_of(A), states.consumer_of(C)) == (T1, None)
    assert states.consumers_of([A, B, C]) == {A: T1, B: T1}
    assert states.consumers_of([]) == {}


def test_a_second_commit_of_a_state_is_refused_by_the_database(states: CommittedStates) -> None:
    states.commit(T1, [A], NOW)
    with pytest.raises(ConstraintViolationError):
        states.commit(T2, [B, A], NOW)
    assert states.consumer_of(B) is None  # the refused commit left nothing
    assert not states.is_committed(T2)


def test_a_double_spend_names_the_consumer(
    provider: UniquenessProvider, states: CommittedStates, alice: Actor
) -> None:
    provider.commit(T1, [A], requester=alice.name)
    with pytest.raises(NotaryConflictError) as caught:
        provider.commit(T2, [A, B], requester=alice.name)
    assert caught.value.conflicts == {str(A): str(T1)}
    assert states.consumer_of(B) is None and not states.is_committed(T2)


def test_a_consumed_reference_conflicts_and_a_reference_stays_unconsumed(
    provider: UniquenessProvider, states: CommittedStates
) -> None:
    provider.commit(T1, [A], references=[C])
    assert states.consumer_of(C) is None
    with pytest.raises(NotaryConflictError) as caught:
        provider.commit(T2, [B], references=[A])
    assert caught.value.conflicts == {str(A): str(T1)}


def test_recommitting_is_idempotent(
    provider: UniquenessProvider, states: CommittedStates, store: LedgerStore
) -> None:
    provider.commit(T1, [A, B])
    provider.commit(T1, [A, B])
    assert states.consumers_of([A, B]) == {A: T1, B: T1}
    log = store.schema.notary_request_log
    assert log.select().where(log.consuming_transaction_id == str(T1)).count() == 2

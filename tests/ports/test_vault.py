"""VaultStore: what recording leaves in the vault, consumption, filters and pages."""

from __future__ import annotations

import pytest

from agent.ledger import token
from agent.ledger.vault import RelevancyStatus, StateStatus, StatesToRecord, TransactionStatus
from agent.ports.transactions import TransactionStore
from agent.ports.vault import VaultStore
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue, pay


@pytest.fixture
def vault(store: LedgerStore) -> VaultStore:
    return store.vault


@pytest.fixture
def transactions(store: LedgerStore) -> TransactionStore:
    return store.transactions


def test_only_relevant_states_are_kept_unless_all_visible(
    vault: VaultStore, transactions: TransactionStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    mixed = token.issue(alice.party, notary_actor.party, [(alice.party, 5), (bob.party, 7)], "GBP").sign(
        [alice.key]
    )
    transactions.record_transaction(mixed)
    assert [(s.ref, s.state.data["amount"]) for s in vault.iter_vault_states()] == [
        (mixed.tx.output_ref(0), 5)
    ]
    theirs = token.issue(bob.party, notary_actor.party, [(bob.party, 3)], "USD").sign([bob.key])
    transactions.record_transaction(theirs, states_to_record=StatesToRecord.ALL_VISIBLE)
    assert vault.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT) == 1
    assert vault.count_vault_states() == 2


def test_in_flight_leaves_the_vault_alone_until_finalised(
    vault: VaultStore, transactions: TransactionStore, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    first = issue(alice, notary_actor, 100)
    transactions.record_transaction(first)
    move = pay(first, 0, alice, bob, 30, notary_actor)
    transactions.record_transaction(move, status=TransactionStatus.IN_FLIGHT)
    assert [s.ref for s in vault.iter_vault_states()] == [first.tx.output_ref(0)]
    transactions.record_transaction(move.signed_by(notary_actor.key))
    consumed = list(vault.iter_vault_states(state_status=StateStatus.CONSUMED))
    assert [(c.ref, c.consuming_tx_id, c.consumed_timestamp) for c in consumed] == [
        (first.tx.output_ref(0), move.id, NOW)
    ]
    assert [s.state.data["amount"] for s in vault.iter_vault_states()] == [70]


def test_pages_cross_the_composite_key_and_filters_combine(
    vault: VaultStore, transactions: TransactionStore, alice: Actor, notary_actor: Actor
) -> None:
    many = issue(alice, notary_actor, *range(1, 8))
    other = issue(alice, notary_actor, 50, currency="EUR")
    transactions.record_transaction(many)
    transactions.record_transaction(other)
    refs = sorted([many.tx.output_ref(i) for i in range(7)] + [other.tx.output_ref(0)])
    assert [s.ref for s in vault.iter_vault_states(page_size=3)] == refs
    assert [s.ref for s in vault.iter_vault_states(contract=token.TOKEN_CONTRACT, page_size=1)] == refs
    assert list(vault.iter_vault_states(contract="no.such.Contract")) == []
    assert list(vault.iter_vault_states(state_status=StateStatus.CONSUMED)) == []
    assert vault.count_vault_states(state_status=None, relevancy=None) == 8

"""UnitOfWork: writes through several ports commit together or not at all; listeners hear after commit."""

from __future__ import annotations

import pytest

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import StateRef
from agent.ledger.vault import TransactionStatus
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue

FLOW = "00000000-0000-0000-0000-000000000001"
KEY = "00000000-0000-0000-0000-00000000000a"


class Boom(Exception):
    pass


def write_everything(store: LedgerStore, alice: Actor, notary: Actor) -> SecureHash:
    stx = issue(alice, notary, 100)
    store.transactions.record_transaction(stx)
    store.checkpoints.save_checkpoint(FlowCheckpoint(FLOW, "FinalityFlow", FlowStatus.RUNNABLE, NOW, NOW))
    store.keys.add_aes_keys({KEY: b"material"})
    store.uniqueness.commit(SecureHash.of(b"t"), [StateRef(stx.id, 0)], NOW)
    return stx.id


def test_a_raise_rolls_back_every_port(store: LedgerStore, alice: Actor, notary_actor: Actor) -> None:
    heard: list[object] = []
    store.transactions.add_listener(lambda stx, status: heard.append(stx.id))
    with pytest.raises(Boom), store.unit.unit_of_work():
        tx_id = write_everything(store, alice, notary_actor)
        raise Boom
    assert store.transactions.transaction_status(tx_id) is None
    assert store.vault.count_vault_states() == 0
    assert store.checkpoints.get_checkpoint(FLOW) is None
    assert store.keys.aes_keys() == {}
    assert not store.uniqueness.is_committed(SecureHash.of(b"t"))
    assert heard == []  # never heard of a transaction that was rolled back
    # and the store is still usable
    assert store.transactions.record_transaction(issue(alice, notary_actor, 1)) is True


def test_a_commit_keeps_everything_and_then_notifies(
    store: LedgerStore, alice: Actor, notary_actor: Actor
) -> None:
    heard: list[tuple[object, TransactionStatus]] = []
    store.transactions.add_listener(lambda stx, status: heard.append((stx.id, status)))
    with store.unit.unit_of_work():
        tx_id = write_everything(store, alice, notary_actor)
        with store.unit.unit_of_work():  # nested: a savepoint, still one commit
            store.keys.add_aes_keys({KEY.replace("a", "b"): b"more"})
        assert heard == []  # recorded, but not committed yet
    assert heard == [(tx_id, TransactionStatus.VERIFIED)]
    assert store.transactions.transaction_status(tx_id) is TransactionStatus.VERIFIED
    assert store.checkpoints.get_checkpoint(FLOW) is not None
    assert len(store.keys.aes_keys()) == 2
    assert store.uniqueness.is_committed(SecureHash.of(b"t"))


def test_an_inner_failure_caught_inside_rolls_back_only_its_savepoint(
    store: LedgerStore, alice: Actor, notary_actor: Actor
) -> None:
    with store.unit.unit_of_work():
        store.keys.add_aes_keys({KEY: b"kept"})
        with pytest.raises(Boom), store.unit.unit_of_work():
            store.checkpoints.save_checkpoint(
                FlowCheckpoint(FLOW, "FinalityFlow", FlowStatus.RUNNABLE, NOW, NOW)
            )
            raise Boom
    assert store.keys.aes_keys() == {KEY: b"kept"}
    assert store.checkpoints.get_checkpoint(FLOW) is None

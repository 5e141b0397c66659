"""The benchmark fixture: a deterministic, valid token ledger, and the bulk loader that stores it.

No timings here: speed is measured by the scripts in bench/, never asserted by a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.ledger import token
from agent.ledger.hashing import SecureHash
from agent.ledger.shipped import default_contracts
from agent.ledger.transactions import SignedTransaction, StateRef, WireTransaction
from agent.ledger.vault import RelevancyStatus, StateStatus
from agent.ledger.verification import required_signers, verify
from agent.store.ledger_store import LedgerStore
from bench.fixture import (
    NOTARY_NAME,
    fixture_store_keys,
    generate_ledger,
    ledger_parties,
    load,
    party_name,
)

N = 200


@pytest.fixture(scope="module")
def ledger() -> list[SignedTransaction]:
    return list(generate_ledger(N))


class DictResolver:
    """The resolver port over the transactions generated so far."""

    def __init__(self) -> None:
        self.known: dict[SecureHash, WireTransaction] = {}

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        return self.known.get(txhash)


def unspent(txs: Sequence[SignedTransaction]) -> set[StateRef]:
    left: set[StateRef] = set()
    for stx in txs:
        left.difference_update(stx.tx.inputs)
        left.update(stx.tx.output_ref(i) for i in range(len(stx.tx.outputs)))
    return left


# -- the parties -------------------------------------------------------------------------------------


def test_parties_are_named_in_order_with_seeded_keys() -> None:
    cast = ledger_parties(4, seed=7)
    assert [str(p.name) for p in cast.parties] == [party_name(i) for i in range(4)]
    assert str(cast.parties[0].name) == "O=Party0001, L=London, C=GB"
    assert str(cast.notary.party.name) == NOTARY_NAME
    for member in (*cast.members, cast.notary):
        assert member.keys.public == member.party.owning_key
    assert len({k.public for k in cast.signing_keys}) == 5
    assert ledger_parties(4, seed=8).parties[0].owning_key != cast.parties[0].owning_key


def test_a_ledger_needs_two_parties_and_a_non_negative_size() -> None:
    with pytest.raises(ValueError, match="at least 2 parties"):
        ledger_parties(1)
    with pytest.raises(ValueError, match="must not be negative"):
        list(generate_ledger(-1))
    assert list(generate_ledger(0)) == []


# -- determinism ---------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_transactions(ledger: list[SignedTransaction]) -> None:
    again = list(generate_ledger(N))
    assert [stx.serialize() for stx in again] == [stx.serialize() for stx in ledger]


def test_a_shorter_ledger_is_a_prefix(ledger: list[SignedTransaction]) -> None:
    assert [stx.id for stx in generate_ledger(50)] == [stx.id for stx in ledger[:50]]


def test_another_seed_or_party_count_gives_another_ledger(ledger: list[SignedTransaction]) -> None:
    ids = {stx.id for stx in ledger}
    assert ids.isdisjoint(stx.id for stx in generate_ledger(N, seed=2))
    assert ids.isdisjoint(stx.id for stx in generate_ledger(N, parties=5))


def test_signing_in_worker_processes_gives_the_same_transactions(ledger: list[SignedTransaction]) -> None:
    # Small chunks: several jobs in flight, reassembled in order.
    pooled = list(generate_ledger(N, workers=1, chunk=30))
    assert [stx.serialize() for stx in pooled] == [stx.serialize() for stx in ledger]


# -- validity and shape --------------------------------------------------------------------------------


def test_every_transaction_verifies_against_the_ones_before(ledger: list[SignedTransaction]) -> None:
    resolver, contracts = DictResolver(), default_contracts()
    for stx in ledger:
        verify(stx, resolver, contracts)
        assert stx.signers() == required_signers(stx.tx)
        resolver.known[stx.id] = stx.tx


def test_moves_and_exits_are_notarised_and_issuances_need_no_notary(ledger: list[SignedTransaction]) -> None:
    notary = ledger_parties().notary.party
    for stx in ledger:
        assert stx.tx.notary == notary
        assert (notary.owning_key in stx.signers()) == stx.tx.needs_notarisation
        assert stx.tx.needs_notarisation == (stx.tx.commands[0].name != token.ISSUE)


def test_the_mix_has_issues_moves_and_exits(ledger: list[SignedTransaction]) -> None:
    kinds = [stx.tx.commands[0].name for stx in ledger]
    assert kinds[0] == token.ISSUE
    assert {token.ISSUE, token.MOVE, token.EXIT} <= set(kinds)
    assert kinds.count(token.MOVE) > N // 2
    assert any(len(stx.tx.inputs) == 2 for stx in ledger)


def test_parents_come_first_and_no_output_is_spent_twice(ledger: list[SignedTransaction]) -> None:
    produced: set[StateRef] = set()
    spent: set[StateRef] = set()
    depth: dict[SecureHash, int] = {}
    for stx in ledger:
        for ref in stx.tx.inputs:
            assert ref in produced and ref not in spent
            spent.add(ref)
        produced.update(stx.tx.output_ref(i) for i in range(len(stx.tx.outputs)))
        depth[stx.id] = 1 + max((depth[r.txhash] for r in stx.tx.inputs), default=0)
    # Moves spend the outputs of moves: the back-chains are chains, not one hop from an issuance.
    assert max(depth.values()) >= 5


def test_the_unspent_outputs_hover_near_the_pool_target() -> None:
    # A soft bound: over the target, moves merge where they can and pay in full, issuances still add.
    assert 40 <= len(unspent(list(generate_ledger(1000, pool_target=50)))) <= 60


def test_the_fixture_builds_what_the_token_builders_build(ledger: list[SignedTransaction]) -> None:
    cast = ledger_parties()
    notary = cast.notary.party
    by_id = {stx.id: stx.tx for stx in ledger}
    for stx in ledger:
        tx = stx.tx
        inputs = [by_id[r.txhash].out_ref(r.index) for r in tx.inputs]
        outputs = [token.Token.from_state(s) for s in tx.outputs]
        command = tx.commands[0]
        if command.name == token.ISSUE:
            issuer = outputs[0].issuer
            holdings = [(t.owner, t.amount) for t in outputs]
            builder = token.issue(issuer, notary, holdings, outputs[0].currency)
        else:
            owner = token.Token.from_state(inputs[0].state).owner
            if command.name == token.EXIT:
                builder = token.exit_tokens(inputs, command.args["amount"], owner, notary)
            else:
                payments = outputs[:-1] if outputs[-1].owner == owner else outputs
                builder = token.move(inputs, [(t.owner, t.amount) for t in payments], owner, notary)
        assert builder.to_wire(tx.salt).serialized == tx.serialized


# -- loading -------------------------------------------------------------------------------------------


def test_load_writes_every_transaction_and_the_vault_of_our_party(
    database_url: str, ledger: list[SignedTransaction]
) -> None:
    store = LedgerStore(database_url, our_keys=fixture_store_keys())
    try:
        assert load(store, N, batch_size=64) == N
        assert store.transactions.count_transactions() == N
        assert sorted(store.transactions.iter_transaction_ids()) == sorted(stx.id for stx in ledger)
        ours = fixture_store_keys()
        outputs = {
            stx.tx.output_ref(i): out
            for stx in ledger
            for i, out in enumerate(stx.tx.outputs)
            if out.participants[0].owning_key in ours
        }
        assert outputs, "the first party holds something"
        assert store.vault.count_vault_states(state_status=None) == len(outputs)
        unconsumed = {rec.ref for rec in store.vault.iter_vault_states(relevancy=RelevancyStatus.RELEVANT)}
        assert unconsumed == set(outputs) & unspent(ledger)
        assert store.vault.count_vault_states(state_status=StateStatus.CONSUMED) == len(outputs) - len(
            unconsumed
        )
    finally:
        store.close()


def test_skip_leaves_out_exactly_the_chosen_transactions(
    tmp_path: Path, ledger: list[SignedTransaction]
) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db", our_keys=fixture_store_keys())
    seen: list[int] = []

    def every_tenth(index: int, stx: SignedTransaction) -> bool:
        assert stx.id == ledger[index].id
        seen.append(index)
        return index % 10 == 3

    try:
        assert load(store, N, skip=every_tenth) == N - N // 10
        assert seen == list(range(N))
        expected = {stx.id for i, stx in enumerate(ledger) if i % 10 != 3}
        assert set(store.transactions.iter_transaction_ids()) == expected
    finally:
        store.close()

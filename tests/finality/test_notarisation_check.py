"""The RecoveryContract that the notarisation check's transaction is built under."""

from __future__ import annotations

import pytest

from agent.errors import ContractRejection
from agent.finality.notarisation_check import check_transaction
from agent.ledger import token
from agent.ledger.contracts import RECOVERY_CONTRACT, LedgerTransaction, RecoveryContract
from agent.ledger.transactions import Command, StateAndRef, TransactionState
from tests.conftest import Actor


def _ledger_tx(check_inputs: tuple[StateAndRef, ...], alice: Actor, notary: Actor) -> LedgerTransaction:
    issued = token.issue(alice.party, notary.party, [(alice.party, 5)], "GBP").sign([alice.key])
    move = token.move([issued.tx.out_ref(0)], [(alice.party, 5)], alice.party, notary.party).sign([alice.key])
    check = check_transaction(move.tx, alice.party, alice.key).tx
    assert check.references == move.tx.inputs and check.inputs == ()
    return LedgerTransaction(
        check.id,
        check_inputs,
        (issued.tx.out_ref(0),),
        check.outputs,
        check.commands,
        check.notary,
        None,
    )


def test_a_check_consumes_nothing_and_is_signed_by_whoever_asks(alice: Actor, notary_actor: Actor) -> None:
    contract = RecoveryContract()
    ltx = _ledger_tx((), alice, notary_actor)
    contract.verify(ltx)
    issued = token.issue(alice.party, notary_actor.party, [(alice.party, 1)], "GBP").sign([alice.key])
    with pytest.raises(ContractRejection, match="consumes nothing"):
        contract.verify(_ledger_tx((issued.tx.out_ref(0),), alice, notary_actor))
    unsigned = Command(RECOVERY_CONTRACT, "Check", ())
    with pytest.raises(ContractRejection, match="must sign"):
        contract.verify(
            LedgerTransaction(ltx.id, (), ltx.references, ltx.outputs, (unsigned,), ltx.notary, None)
        )
    two = (*ltx.outputs, TransactionState(RECOVERY_CONTRACT, {}, (alice.party,)))
    with pytest.raises(ContractRejection, match="exactly one output"):
        contract.verify(LedgerTransaction(ltx.id, (), ltx.references, two, ltx.commands, ltx.notary, None))
    with pytest.raises(ContractRejection, match="reference"):
        contract.verify(LedgerTransaction(ltx.id, (), (), ltx.outputs, ltx.commands, ltx.notary, None))

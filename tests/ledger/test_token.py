from __future__ import annotations

import pytest

from agent.errors import AmountsNotConservedError, ContractRejection
from agent.ledger.contracts import ContractRegistry, LedgerTransaction
from agent.ledger.token import (
    EXIT,
    ISSUE,
    MOVE,
    TOKEN_CONTRACT,
    FungibleToken,
    Token,
    exit_tokens,
    issue,
    move,
    party_data,
)
from agent.ledger.transactions import Command, SignedTransaction, TransactionBuilder
from tests.ledger.conftest import Ledger, Member


def _signed(builder: TransactionBuilder, *signers: Member) -> SignedTransaction:
    return builder.sign([m.keys for m in signers])


def _amounts(ltx: LedgerTransaction) -> list[tuple[str, int]]:
    return [(str(t.owner.name), t.amount) for t in map(Token.from_state, ltx.outputs)]


def _rejected(ledger: Ledger, stx: SignedTransaction) -> ContractRejection:
    with pytest.raises(ContractRejection) as caught:
        ledger.verify(stx)
    assert caught.value.contract == TOKEN_CONTRACT
    assert caught.value.tx_id == str(stx.id)
    return caught.value


# -- issue -----------------------------------------------------------------------------------------


def test_issue_is_accepted(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100), (c.bob.party, 5)], "GBP")
    ltx = ledger.verify(_signed(builder, c.bank))
    assert _amounts(ltx) == [(str(c.alice.party.name), 100), (str(c.bob.party.name), 5)]
    assert {Token.from_state(s).issuer for s in ltx.outputs} == {c.bank.party}


def test_issue_must_be_signed_by_the_issuer(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.commands[0] = Command(TOKEN_CONTRACT, ISSUE, (c.alice.keys.public,))
    assert "must sign" in _rejected(ledger, _signed(builder, c.alice)).reason


def test_issuance_with_inputs_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 200)], "GBP").add_input(held)
    error = _rejected(ledger, _signed(builder, c.bank, c.notary))
    assert "consumes no tokens" in error.reason


@pytest.mark.parametrize("amount", [0, -1, -100])
def test_issuing_a_non_positive_amount_is_refused(ledger: Ledger, amount: int) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, amount)], "GBP")
    assert "amount must be a positive integer" in _rejected(ledger, _signed(builder, c.bank)).reason


def test_a_boolean_amount_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 1)], "GBP")
    state = builder.outputs[0]
    builder.outputs[0] = type(state)(state.contract, {**state.data, "amount": True}, state.participants)
    assert "amount" in _rejected(ledger, _signed(builder, c.bank)).reason


def test_a_token_whose_participant_is_not_its_owner_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 10)], "GBP")
    state = builder.outputs[0]
    builder.outputs[0] = type(state)(state.contract, state.data, (c.bob.party,))
    assert "owner" in _rejected(ledger, _signed(builder, c.bank)).reason


# -- move ------------------------------------------------------------------------------------------


def test_move_that_conserves_is_accepted(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 60)], c.alice.party, c.notary.party)
    ltx = ledger.verify(_signed(builder, c.alice, c.notary))
    assert _amounts(ltx) == [(str(c.bob.party.name), 60), (str(c.alice.party.name), 40)]


def test_move_merging_inputs_is_accepted(ledger: Ledger) -> None:
    c = ledger.cast
    first = ledger.issue(c.alice, 30).tx.out_ref(0)
    second = ledger.issue(c.bob, 12).tx.out_ref(0)
    builder = move([first, second], [(c.bob.party, 42)], c.alice.party, c.notary.party)
    ltx = ledger.verify(_signed(builder, c.alice, c.bob, c.notary))
    assert _amounts(ltx) == [(str(c.bob.party.name), 42)]


@pytest.mark.parametrize("paid", [59, 61, 1])
def test_move_that_does_not_conserve_is_refused(ledger: Ledger, paid: int) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 60)], c.alice.party, c.notary.party)
    builder.outputs[0] = Token(paid, "GBP", c.bank.party, c.bob.party).to_state()
    with pytest.raises(AmountsNotConservedError) as caught:
        ledger.verify(_signed(builder, c.alice, c.notary))
    assert "inputs 100" in caught.value.reason
    assert f"outputs {paid + 40}" in caught.value.reason


def test_tokens_of_two_issuers_cannot_be_swapped(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = TransactionBuilder(notary=c.notary.party).add_input(held)
    builder.add_output(Token(100, "GBP", c.other_bank.party, c.alice.party).to_state())
    builder.add_command(Command(TOKEN_CONTRACT, MOVE, (c.alice.keys.public,)))
    with pytest.raises(AmountsNotConservedError) as caught:
        ledger.verify(_signed(builder, c.alice, c.notary))
    assert "Bank of London" in caught.value.reason


def test_currencies_cannot_be_swapped(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = TransactionBuilder(notary=c.notary.party).add_input(held)
    builder.add_output(Token(100, "USD", c.bank.party, c.alice.party).to_state())
    builder.add_command(Command(TOKEN_CONTRACT, MOVE, (c.alice.keys.public,)))
    with pytest.raises(AmountsNotConservedError):
        ledger.verify(_signed(builder, c.alice, c.notary))


def test_two_issuers_each_conserved_in_one_move_is_accepted(ledger: Ledger) -> None:
    c = ledger.cast
    london = ledger.issue(c.alice, 100).tx.out_ref(0)
    paris = ledger.issue(c.alice, 50, issuer=c.other_bank).tx.out_ref(0)
    builder = TransactionBuilder(notary=c.notary.party).add_input(london).add_input(paris)
    builder.add_output(Token(50, "GBP", c.other_bank.party, c.bob.party).to_state())
    builder.add_output(Token(100, "GBP", c.bank.party, c.bob.party).to_state())
    builder.add_command(Command(TOKEN_CONTRACT, MOVE, (c.alice.keys.public,)))
    ltx = ledger.verify(_signed(builder, c.alice, c.notary))
    assert sum(Token.from_state(s).amount for s in ltx.outputs) == 150


def test_move_without_the_owner_among_the_signers_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 100)], c.alice.party, c.notary.party)
    builder.commands[0] = Command(TOKEN_CONTRACT, MOVE, (c.bob.keys.public,))
    error = _rejected(ledger, _signed(builder, c.bob, c.notary))
    assert not isinstance(error, AmountsNotConservedError)
    assert "Alice Ltd" in error.reason
    assert "must sign" in error.reason


def test_move_without_inputs_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = TransactionBuilder(notary=c.notary.party)
    builder.add_output(Token(5, "GBP", c.bank.party, c.alice.party).to_state())
    builder.add_command(Command(TOKEN_CONTRACT, MOVE, (c.alice.keys.public,)))
    assert "consumes at least one token" in _rejected(ledger, _signed(builder, c.alice)).reason


# -- exit ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "change"), [(30, 70), (100, 0)])
def test_exit_of_the_right_amount_is_accepted(ledger: Ledger, amount: int, change: int) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = exit_tokens([held], amount, c.alice.party, c.notary.party)
    ltx = ledger.verify(_signed(builder, c.alice, c.bank, c.notary))
    assert sum(Token.from_state(s).amount for s in ltx.outputs) == change


@pytest.mark.parametrize("claimed", [29, 31, 100])
def test_exit_of_the_wrong_amount_is_refused(ledger: Ledger, claimed: int) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = exit_tokens([held], 30, c.alice.party, c.notary.party)
    command = builder.commands[0]
    builder.commands[0] = Command(
        command.contract, EXIT, command.signers, {**command.args, "amount": claimed}
    )
    with pytest.raises(AmountsNotConservedError) as caught:
        ledger.verify(_signed(builder, c.alice, c.bank, c.notary))
    assert f"exited {claimed}" in caught.value.reason


def test_exit_under_another_issuer_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = exit_tokens([held], 100, c.alice.party, c.notary.party)
    args = {"amount": 100, "currency": "GBP", "issuer": party_data(c.other_bank.party)}
    signers = (c.alice.keys.public, c.other_bank.keys.public)
    builder.commands[0] = Command(TOKEN_CONTRACT, EXIT, signers, args)
    with pytest.raises(AmountsNotConservedError):
        ledger.verify(_signed(builder, c.alice, c.other_bank, c.notary))


def test_exit_needs_the_issuer_among_the_signers(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = exit_tokens([held], 100, c.alice.party, c.notary.party)
    command = builder.commands[0]
    builder.commands[0] = Command(TOKEN_CONTRACT, EXIT, (c.alice.keys.public,), command.args)
    assert "must sign the exit" in _rejected(ledger, _signed(builder, c.alice, c.notary)).reason


@pytest.mark.parametrize("args", [{}, {"amount": 5, "currency": "GBP"}, {"amount": 5, "issuer": "bank"}])
def test_exit_without_its_args_is_refused(ledger: Ledger, args: dict[str, object]) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = exit_tokens([held], 100, c.alice.party, c.notary.party)
    command = builder.commands[0]
    builder.commands[0] = Command(TOKEN_CONTRACT, EXIT, command.signers, args)
    assert "an exit needs args" in _rejected(ledger, _signed(builder, c.alice, c.bank, c.notary)).reason


@pytest.mark.parametrize("amount", [0, -5, "5"])
def test_exit_of_a_non_positive_amount_is_refused(ledger: Ledger, amount: object) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = exit_tokens([held], 100, c.alice.party, c.notary.party)
    command = builder.commands[0]
    builder.commands[0] = Command(TOKEN_CONTRACT, EXIT, command.signers, {**command.args, "amount": amount})
    error = _rejected(ledger, _signed(builder, c.alice, c.bank, c.notary))
    assert "exit amount must be a positive integer" in error.reason


# -- commands --------------------------------------------------------------------------------------


def test_unknown_command_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 100)], c.alice.party, c.notary.party)
    builder.commands[0] = Command(TOKEN_CONTRACT, "Burn", (c.alice.keys.public,))
    assert "unknown command 'Burn'" in _rejected(ledger, _signed(builder, c.alice, c.notary)).reason


def test_two_token_commands_are_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.add_command(Command(TOKEN_CONTRACT, ISSUE, (c.bank.keys.public,)))
    assert "got 2" in _rejected(ledger, _signed(builder, c.bank)).reason


class _AcceptAll:
    """A contract that accepts anything, so that a transaction may carry a command but no token one."""

    name = "tests.AcceptAll"

    def verify(self, ltx: LedgerTransaction) -> None:
        return None


def test_token_states_without_a_token_command_are_refused() -> None:
    ledger = Ledger(contracts=ContractRegistry([FungibleToken(), _AcceptAll()]))
    c = ledger.cast
    builder = TransactionBuilder(notary=c.notary.party)
    builder.add_output(Token(5, "GBP", c.bank.party, c.alice.party).to_state())
    builder.add_command(Command(_AcceptAll.name, "Anything", (c.bank.keys.public,)))
    assert "got 0" in _rejected(ledger, _signed(builder, c.bank)).reason


def test_builders_refuse_inputs_of_two_groups(ledger: Ledger) -> None:
    c = ledger.cast
    london = ledger.issue(c.alice, 100).tx.out_ref(0)
    paris = ledger.issue(c.alice, 50, issuer=c.other_bank).tx.out_ref(0)
    with pytest.raises(ValueError, match="exactly one issuer"):
        move([london, paris], [(c.bob.party, 10)], c.alice.party, c.notary.party)
    with pytest.raises(ValueError, match="exactly one issuer"):
        exit_tokens([london, paris], 10, c.alice.party, c.notary.party)
    with pytest.raises(ValueError, match="payments need more"):
        move([london], [(c.bob.party, 101)], c.alice.party, c.notary.party)


def test_registry_refuses_a_second_contract_of_the_same_name() -> None:
    registry = ContractRegistry([FungibleToken()])
    with pytest.raises(ValueError, match=TOKEN_CONTRACT):
        registry.register(FungibleToken())
    assert registry.names() == [TOKEN_CONTRACT]

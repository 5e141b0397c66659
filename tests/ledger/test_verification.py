from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.clock import from_epoch_ms
from agent.errors import (
    InvalidSignatureError,
    InvalidTransactionError,
    MissingSignatureError,
    TransactionResolutionError,
    UnknownContractError,
)
from agent.ledger.token import MOVE, TOKEN_CONTRACT, Token, exit_tokens, issue, move
from agent.ledger.transactions import (
    Command,
    SignedTransaction,
    StateAndRef,
    StateRef,
    TimeWindow,
    TransactionBuilder,
    TransactionSignature,
    TransactionState,
    sign,
)
from agent.ledger.verification import required_signers, verify_chain
from tests.ledger.conftest import CAST, InMemoryResolver, Ledger, Member


def _signed(builder: TransactionBuilder, *signers: Member) -> SignedTransaction:
    return builder.sign([m.keys for m in signers])


def _moved(ledger: Ledger, held: StateAndRef, to: Member, *signers: Member) -> SignedTransaction:
    """Pay all of held to `to`, signed by signers."""
    token = Token.from_state(held.state)
    builder = move([held], [(to.party, token.amount)], token.owner, CAST.notary.party)
    return _signed(builder, *signers)


def _flip(stx: SignedTransaction, index: int, byte: int, bit: int) -> SignedTransaction:
    sigs = list(stx.sigs)
    old = sigs[index].signature
    bad = old[:byte] + bytes([old[byte] ^ (1 << bit)]) + old[byte + 1 :]
    sigs[index] = TransactionSignature(sigs[index].by, bad)
    return SignedTransaction(stx.tx, tuple(sigs))


# -- the happy path --------------------------------------------------------------------------------


def test_issue_move_exit(ledger: Ledger) -> None:
    c = ledger.cast
    issued = ledger.issue(c.alice, 100)
    assert not issued.tx.needs_notarisation

    moved = _signed(
        move([issued.tx.out_ref(0)], [(c.bob.party, 60)], c.alice.party, c.notary.party), c.alice, c.notary
    )
    ltx = ledger.verify(moved)
    assert ltx.id == moved.id
    assert [s.ref for s in ltx.inputs] == [StateRef(issued.id, 0)]
    assert ltx.inputs[0].state == issued.tx.outputs[0]
    assert ltx.inputs[0].notary == c.notary.party
    assert required_signers(moved.tx) == {c.alice.keys.public, c.notary.keys.public}
    ledger.resolver.add(moved)

    exited = _signed(
        exit_tokens([moved.tx.out_ref(0)], 60, c.bob.party, c.notary.party), c.bob, c.bank, c.notary
    )
    ltx = ledger.verify(exited)
    assert ltx.outputs == ()
    assert [s.ref for s in ltx.inputs] == [StateRef(moved.id, 0)]


# -- signatures ------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 1), st.integers(0, 63), st.integers(0, 7))
def test_a_flipped_bit_in_any_signature_is_refused(index: int, byte: int, bit: int) -> None:
    ledger = Ledger()
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    good = _moved(ledger, held, c.bob, c.alice, c.notary)
    ledger.verify(good)
    bad = _flip(good, index, byte, bit)
    with pytest.raises(InvalidSignatureError) as caught:
        ledger.verify(bad)
    assert caught.value.key_hex == bad.sigs[index].by.hex
    assert caught.value.tx_id == str(good.id)


def test_a_signature_over_another_transaction_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    other = ledger.issue(c.alice, 100)
    stx = SignedTransaction(_moved(ledger, held, c.bob).tx).with_signatures(
        sign(other.id, c.alice.keys), sign(other.id, c.notary.keys)
    )
    with pytest.raises(InvalidSignatureError):
        ledger.verify(stx)


def test_an_absent_required_signer_is_named(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    with pytest.raises(MissingSignatureError) as caught:
        ledger.verify(_moved(ledger, held, c.bob, c.notary))
    assert caught.value.missing == (c.alice.keys.public.hex,)
    assert c.alice.keys.public.hex in str(caught.value)


def test_every_absent_signer_is_named_in_order(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    with pytest.raises(MissingSignatureError) as caught:
        ledger.verify(_signed(exit_tokens([held], 100, c.alice.party, c.notary.party)))
    keys = (c.alice.keys.public, c.bank.keys.public, c.notary.keys.public)
    assert caught.value.missing == tuple(sorted(k.hex for k in keys))


def test_a_signature_by_a_stranger_does_not_stand_in(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    with pytest.raises(MissingSignatureError) as caught:
        ledger.verify(_moved(ledger, held, c.bob, c.bob, c.notary))
    assert caught.value.missing == (c.alice.keys.public.hex,)


def test_the_notary_signature_is_needed_unless_told_otherwise(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    stx = _moved(ledger, held, c.bob, c.alice)
    with pytest.raises(MissingSignatureError) as caught:
        ledger.verify(stx)
    assert caught.value.missing == (c.notary.keys.public.hex,)
    assert ledger.verify(stx, check_notary_signature=False).id == stx.id


def test_skipping_the_notary_check_skips_only_the_notary(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    with pytest.raises(MissingSignatureError) as caught:
        ledger.verify(_moved(ledger, held, c.bob), check_notary_signature=False)
    assert caught.value.missing == (c.alice.keys.public.hex,)


def test_a_time_window_needs_the_notary(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.time_window = TimeWindow(from_epoch_ms(0), from_epoch_ms(1000))
    with pytest.raises(MissingSignatureError) as caught:
        ledger.verify(_signed(builder, c.bank))
    assert caught.value.missing == (c.notary.keys.public.hex,)
    ledger.verify(_signed(builder, c.bank, c.notary))


# -- resolution ------------------------------------------------------------------------------------


def test_every_missing_producer_is_listed(ledger: Ledger) -> None:
    c = ledger.cast
    unknown = [
        _signed(issue(c.bank.party, c.notary.party, [(c.alice.party, n)], "GBP"), c.bank) for n in (1, 2, 3)
    ]
    known = ledger.issue(c.alice, 4)
    held = [u.tx.out_ref(0) for u in unknown] + [known.tx.out_ref(0)]
    stx = _signed(move(held, [(c.bob.party, 10)], c.alice.party, c.notary.party), c.alice, c.notary)
    with pytest.raises(TransactionResolutionError) as caught:
        ledger.verify(stx)
    assert caught.value.missing == tuple(sorted(str(u.id) for u in unknown))
    assert caught.value.tx_id == str(stx.id)


def test_a_missing_reference_producer_is_listed(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    elsewhere = _signed(issue(c.bank.party, c.notary.party, [(c.bob.party, 1)], "GBP"), c.bank)
    builder = move([held], [(c.bob.party, 100)], c.alice.party, c.notary.party)
    builder.add_reference(elsewhere.tx.out_ref(0))
    with pytest.raises(TransactionResolutionError) as caught:
        ledger.verify(_signed(builder, c.alice, c.notary))
    assert caught.value.missing == (str(elsewhere.id),)


def test_an_input_past_the_outputs_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    issued = ledger.issue(c.alice, 100)
    beyond = StateAndRef(issued.tx.outputs[0], StateRef(issued.id, 1), c.notary.party)
    stx = _moved(ledger, beyond, c.bob, c.alice, c.notary)
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(stx)
    assert "points past the 1 outputs" in caught.value.reason


def test_an_input_under_another_notary_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100, notary=c.other_notary).tx.out_ref(0)
    stx = _moved(ledger, held, c.bob, c.alice, c.notary)
    assert stx.tx.notary == c.notary.party
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(stx)
    assert "Other Notary" in caught.value.reason


def test_an_unknown_contract_is_named(ledger: Ledger) -> None:
    c = ledger.cast
    builder = TransactionBuilder(notary=c.notary.party)
    builder.add_output(TransactionState("com.example.Unknown", {"x": 1}, (c.alice.party,)))
    builder.add_command(Command("com.example.Unknown", "Create", (c.alice.keys.public,)))
    with pytest.raises(UnknownContractError) as caught:
        ledger.verify(_signed(builder, c.alice))
    assert caught.value.contract == "com.example.Unknown"


def test_an_unknown_contract_named_only_by_a_command_is_named(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.add_command(Command("com.example.Audit", "Look", (c.bank.keys.public,)))
    with pytest.raises(UnknownContractError) as caught:
        ledger.verify(_signed(builder, c.bank))
    assert caught.value.contract == "com.example.Audit"


# -- structure -------------------------------------------------------------------------------------


def test_a_duplicate_input_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 100)], c.alice.party, c.notary.party).add_input(held)
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.alice, c.notary))
    assert "input is listed twice" in caught.value.reason


def test_an_input_that_is_also_a_reference_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 100)], c.alice.party, c.notary.party).add_reference(held)
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.alice, c.notary))
    assert "both an input and a reference" in caught.value.reason


def test_a_duplicate_reference_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    held = ledger.issue(c.alice, 100).tx.out_ref(0)
    seen = ledger.issue(c.bob, 1).tx.out_ref(0)
    builder = move([held], [(c.bob.party, 100)], c.alice.party, c.notary.party)
    builder.add_reference(seen).add_reference(seen)
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.alice, c.notary))
    assert "reference input is listed twice" in caught.value.reason


def test_no_commands_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.commands.clear()
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.bank))
    assert "at least one command" in caught.value.reason


def test_no_states_at_all_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = TransactionBuilder(notary=c.notary.party)
    builder.add_command(Command(TOKEN_CONTRACT, MOVE, (c.alice.keys.public,)))
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.alice))
    assert "inputs or outputs" in caught.value.reason


def test_outputs_need_a_notary(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.notary = None
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.bank))
    assert "notary" in caught.value.reason


def test_a_command_without_signers_is_refused(ledger: Ledger) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.commands[0] = Command(TOKEN_CONTRACT, "Issue", ())
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.bank))
    assert "no signers" in caught.value.reason


@pytest.mark.parametrize(("start", "until"), [(1000, 1000), (2000, 1000)])
def test_an_empty_time_window_is_refused(ledger: Ledger, start: int, until: int) -> None:
    c = ledger.cast
    builder = issue(c.bank.party, c.notary.party, [(c.alice.party, 100)], "GBP")
    builder.time_window = TimeWindow(from_epoch_ms(start), from_epoch_ms(until))
    with pytest.raises(InvalidTransactionError) as caught:
        ledger.verify(_signed(builder, c.bank, c.notary))
    assert "time window" in caught.value.reason


# -- back-chains -----------------------------------------------------------------------------------


def _chain() -> list[SignedTransaction]:
    """issue -> move -> move -> move -> exit, each verified against its parents."""
    ledger = Ledger()
    c = ledger.cast
    chain = [ledger.issue(c.alice, 100)]
    owners = [c.alice, c.bob, c.alice, c.bob]
    for owner, to in pairwise(owners):
        chain.append(ledger.record(_moved(ledger, chain[-1].tx.out_ref(0), to, owner, c.notary)))
    held = chain[-1].tx.out_ref(0)
    chain.append(
        ledger.record(_signed(exit_tokens([held], 100, c.bob.party, c.notary.party), c.bob, c.bank, c.notary))
    )
    return chain


CHAIN = _chain()


def test_the_chain_is_five_linked_transactions() -> None:
    assert len(CHAIN) == 5
    for parent, child in pairwise(CHAIN):
        assert [ref.txhash for ref in child.tx.inputs] == [parent.id]


@settings(max_examples=40, deadline=None)
@given(st.permutations(CHAIN))
def test_verify_chain_puts_parents_first(batch: list[SignedTransaction]) -> None:
    ordered = verify_chain(batch, InMemoryResolver(), Ledger().contracts)
    assert [stx.id for stx in ordered] == [stx.id for stx in CHAIN]


@settings(max_examples=20, deadline=None)
@given(st.permutations(CHAIN[1:]))
def test_verify_chain_uses_the_resolver_for_what_is_already_here(batch: list[SignedTransaction]) -> None:
    resolver = InMemoryResolver()
    resolver.add(CHAIN[0])
    ordered = verify_chain(batch, resolver, Ledger().contracts)
    assert [stx.id for stx in ordered] == [stx.id for stx in CHAIN[1:]]


@settings(max_examples=20, deadline=None)
@given(st.permutations([stx for i, stx in enumerate(CHAIN) if i != 2]))
def test_verify_chain_with_a_missing_middle_link_is_refused(batch: list[SignedTransaction]) -> None:
    with pytest.raises(TransactionResolutionError) as caught:
        verify_chain(batch, InMemoryResolver(), Ledger().contracts)
    assert caught.value.missing == (str(CHAIN[2].id),)
    assert caught.value.tx_id == str(CHAIN[3].id)


def test_verify_chain_verifies_every_member_not_only_the_tip() -> None:
    tampered = _flip(CHAIN[2], 0, 10, 3)
    batch = [CHAIN[4], tampered, CHAIN[0], CHAIN[3], CHAIN[1]]
    with pytest.raises(InvalidSignatureError) as caught:
        verify_chain(batch, InMemoryResolver(), Ledger().contracts)
    assert caught.value.tx_id == str(CHAIN[2].id)


def test_verify_chain_of_nothing_is_nothing() -> None:
    assert verify_chain([], InMemoryResolver(), Ledger().contracts) == []

from __future__ import annotations

import pytest

from agent.ledger.token import Token
from agent.ledger.transactions import TransactionState, WireTransaction
from agent.ledger.vault import RelevancyStatus, StatesToRecord, is_relevant, outputs_to_record
from tests.ledger.conftest import CAST

RELEVANT, NOT_RELEVANT = RelevancyStatus.RELEVANT, RelevancyStatus.NOT_RELEVANT


def _token(owner_index: int) -> TransactionState:
    owners = [CAST.alice, CAST.bob, CAST.bank]
    return Token(10, "GBP", CAST.bank.party, owners[owner_index].party).to_state()


# outputs: 0 alice's, 1 bob's, 2 shared by alice and bob, 3 the bank's, 4 nobody's
TX = WireTransaction(
    inputs=(),
    references=(),
    outputs=(
        _token(0),
        _token(1),
        TransactionState("tests.Shared", {}, (CAST.bob.party, CAST.alice.party)),
        _token(2),
        TransactionState("tests.Orphan", {}, ()),
    ),
    commands=(),
    notary=CAST.notary.party,
)
ALICE = {CAST.alice.keys.public}


def test_only_relevant_keeps_only_ours() -> None:
    assert outputs_to_record(TX, ALICE, StatesToRecord.ONLY_RELEVANT) == [(0, RELEVANT), (2, RELEVANT)]


def test_all_visible_keeps_everything_marked() -> None:
    assert outputs_to_record(TX, ALICE, StatesToRecord.ALL_VISIBLE) == [
        (0, RELEVANT),
        (1, NOT_RELEVANT),
        (2, RELEVANT),
        (3, NOT_RELEVANT),
        (4, NOT_RELEVANT),
    ]


@pytest.mark.parametrize("keys", [ALICE, set(), {CAST.alice.keys.public, CAST.bob.keys.public}])
def test_none_keeps_nothing(keys: set[object]) -> None:
    assert outputs_to_record(TX, keys, StatesToRecord.NONE) == []  # type: ignore[arg-type]


def test_several_keys_of_ours() -> None:
    ours = {CAST.bob.keys.public, CAST.bank.keys.public}
    assert outputs_to_record(TX, ours, StatesToRecord.ONLY_RELEVANT) == [
        (1, RELEVANT),
        (2, RELEVANT),
        (3, RELEVANT),
    ]


def test_no_keys_of_ours() -> None:
    assert outputs_to_record(TX, set(), StatesToRecord.ONLY_RELEVANT) == []
    assert [status for _, status in outputs_to_record(TX, set(), StatesToRecord.ALL_VISIBLE)] == [
        NOT_RELEVANT
    ] * 5


def test_the_notary_alone_does_not_make_a_state_relevant() -> None:
    assert not is_relevant(TX.outputs[0], {CAST.notary.keys.public})
    assert is_relevant(TX.outputs[0], ALICE)


def test_ordinals_are_corda_s() -> None:
    ordinals = (StatesToRecord.NONE, StatesToRecord.ALL_VISIBLE, StatesToRecord.ONLY_RELEVANT)
    assert [int(s) for s in ordinals] == [0, 1, 2]
    assert (int(RELEVANT), int(NOT_RELEVANT)) == (0, 1)

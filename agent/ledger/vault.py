"""Which outputs a node keeps in its vault, and the statuses Corda stores with them."""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum, IntEnum

from agent.errors import SerializationError
from agent.ledger.keys import PublicKey
from agent.ledger.transactions import TransactionState, WireTransaction


class StatesToRecord(IntEnum):
    """Stored as the ordinal, as Corda stores it."""

    NONE = 0
    ALL_VISIBLE = 1
    ONLY_RELEVANT = 2


def states_to_record(value: object, field: str) -> StatesToRecord:
    """A StatesToRecord ordinal from a message; SerializationError naming field otherwise."""
    if type(value) is not int or value not in {s.value for s in StatesToRecord}:
        allowed = ", ".join(f"{s.value} ({s.name})" for s in StatesToRecord)
        raise SerializationError(field, f"{value!r} is not a StatesToRecord ordinal: {allowed}")
    return StatesToRecord(value)


class TransactionStatus(Enum):
    """node_transactions.status: Corda's one-letter codes."""

    UNVERIFIED = "U"
    VERIFIED = "V"
    IN_FLIGHT = "F"


class StateStatus(IntEnum):
    UNCONSUMED = 0
    CONSUMED = 1


class RelevancyStatus(IntEnum):
    RELEVANT = 0
    NOT_RELEVANT = 1


def is_relevant(state: TransactionState, our_keys: Collection[PublicKey]) -> bool:
    """A state is relevant to us when one of its participants is us."""
    return any(p.owning_key in our_keys for p in state.participants)


def outputs_to_record(
    tx: WireTransaction, our_keys: Collection[PublicKey], states_to_record: StatesToRecord
) -> list[tuple[int, RelevancyStatus]]:
    """The output indexes to put in the vault, each with its relevancy."""
    if states_to_record is StatesToRecord.NONE:
        return []
    chosen = []
    for index, state in enumerate(tx.outputs):
        relevant = is_relevant(state, our_keys)
        if relevant:
            chosen.append((index, RelevancyStatus.RELEVANT))
        elif states_to_record is StatesToRecord.ALL_VISIBLE:
            chosen.append((index, RelevancyStatus.NOT_RELEVANT))
    return chosen

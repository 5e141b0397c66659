"""Whether the notary signed a transaction, learnt without consuming anything (Corda's
TransactionNotarizationCheckFlow, which FinalityPeerRecoveryFlow uses).

A receiver holding a transaction IN_FLIGHT cannot ask the notary to notarise it (that is the
initiator's decision), nor can it ask whether the notary did: the notary answers only notarisation
requests. So it builds a new transaction that holds the original's inputs as reference states under
the RecoveryContract, and asks the notary to notarise that. A reference must be unconsumed and is
never consumed, so the notary either signs it (the inputs are unconsumed: the original was not
notarised) or refuses with a conflict naming who consumed each input: the original itself (it was
notarised) or another transaction (a double spend: the original can never be notarised).

Corda's check holds a single input as the reference; this one holds every input, which costs nothing
and also catches an original whose other inputs another transaction consumed. A transaction without
inputs (references or a time window only) cannot be checked this way: the answer is UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from agent.errors import NotaryConflictError
from agent.finality.flows import TOPIC_NOTARISE, Peers
from agent.ledger.contracts import RECOVERY_CHECK, RECOVERY_CONTRACT
from agent.ledger.identity import Party
from agent.ledger.keys import KeyPair
from agent.ledger.transactions import (
    Command,
    SignedTransaction,
    TransactionState,
    WireTransaction,
)


class Notarisation(Enum):
    NOTARISED = "NOTARISED"  # the notary consumed the inputs for this very transaction
    CONSUMED_ELSEWHERE = "CONSUMED_ELSEWHERE"  # another transaction consumed one: never notarisable
    NOT_NOTARISED = "NOT_NOTARISED"  # every input is unconsumed
    UNKNOWN = "UNKNOWN"  # no inputs to ask about


@dataclass(frozen=True)
class NotarisationCheck:
    """The answer, with each consumed input's consumer as the notary named them."""

    status: Notarisation
    consumers: dict[str, str] = field(default_factory=dict)


def check_transaction(original: WireTransaction, me: Party, key: KeyPair) -> SignedTransaction:
    """The transaction the notary is asked to notarise: the original's inputs as references."""
    check = WireTransaction(
        inputs=(),
        references=original.inputs,
        outputs=(TransactionState(RECOVERY_CONTRACT, {"checks": str(original.id)}, (me,)),),
        commands=(Command(RECOVERY_CONTRACT, RECOVERY_CHECK, (me.owning_key,)),),
        notary=original.notary,
    )
    return SignedTransaction(check).signed_by(key)


def interpret(original: WireTransaction, conflict: NotaryConflictError | None) -> NotarisationCheck:
    """What the notary's answer to the check says about the original."""
    if not original.inputs:
        return NotarisationCheck(Notarisation.UNKNOWN)
    if conflict is None:
        return NotarisationCheck(Notarisation.NOT_NOTARISED)
    consumers = dict(conflict.conflicts)
    if any(by != str(original.id) for by in consumers.values()):
        return NotarisationCheck(Notarisation.CONSUMED_ELSEWHERE, consumers)
    # The notary commits a transaction's inputs together: one consumed by it means all were.
    return NotarisationCheck(Notarisation.NOTARISED, consumers)


class TransactionNotarizationCheckFlow:
    """Corda's helper flow, run inside a step of FinalityPeerRecoveryFlow (a notary round trip that a
    replayed step simply makes again: a check consumes nothing)."""

    def __init__(self, original: SignedTransaction, me: Party, key: KeyPair, peers: Peers) -> None:
        self.original = original
        self.me = me
        self.key = key
        self.peers = peers

    def call(self) -> NotarisationCheck:
        wire = self.original.tx
        if not wire.inputs or wire.notary is None:
            return NotarisationCheck(Notarisation.UNKNOWN)
        check = check_transaction(wire, self.me, self.key)
        try:
            self.peers.request(wire.notary.name, TOPIC_NOTARISE, {"tx": check.serialize()})
        except NotaryConflictError as conflict:
            return interpret(wire, conflict)
        return interpret(wire, None)

"""What finality recovery would do with a transaction, found without changing anything (a dry run).

For each transaction, as this node sees it:

    notarisation  NOTARISED (the notary signed it: the initiator holds its signature, or the check
                  says so), NOT_NOTARISED, CONSUMED_ELSEWHERE (a double spend: it never can be),
                  UNKNOWN (no inputs to check, or the notary not asked)
    side          who must act: this node as its initiator, this node as a peer, or the initiator
                  elsewhere (a peer's transaction the notary never signed); None when nobody need
    action        FINALISE, UNDO (after a conflict), REDISTRIBUTE (VERIFIED here, to the receivers
                  that lack it), NOTHING

The notary is asked with the notarisation check (agent.finality.notarisation_check), which consumes
nothing and changes nothing on this node; `check_notary=False` skips that round trip and answers
UNKNOWN where only the notary could tell. Nothing here writes to the store or starts a flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from agent.finality.flows import FinalityDeps
from agent.finality.notarisation_check import Notarisation, TransactionNotarizationCheckFlow
from agent.finality.queries import INITIATOR, PEER, FinalityMetadata
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import TransactionStatus


class Side(Enum):
    INITIATOR_HERE = "INITIATOR_HERE"  # this node, as the transaction's initiator
    PEER_HERE = "PEER_HERE"  # this node, as a peer (receiver) of it
    INITIATOR_ELSEWHERE = "INITIATOR_ELSEWHERE"  # only the initiator, another node, can


class Action(Enum):
    FINALISE = "FINALISE"
    UNDO = "UNDO"
    REDISTRIBUTE = "REDISTRIBUTE"
    NOTHING = "NOTHING"


@dataclass(frozen=True)
class RecoveryPlan:
    """One transaction's dry run; key is what the bulk recoveries would key its result by."""

    key: str
    tx_id: SecureHash
    status: TransactionStatus | None
    role: str | None
    initiator: X500Name | None
    age: timedelta | None
    notarisation: Notarisation
    side: Side | None
    action: Action
    reason: str
    running: tuple[str, ...] = field(default=())  # finality flows still live here (forceRecover stops them)


def holds_notary_signature(stx: SignedTransaction) -> bool:
    notary = stx.tx.notary
    return notary is not None and notary.owning_key in stx.signers()


def notarisation_of(
    stx: SignedTransaction, deps: FinalityDeps, key: KeyPair, check_notary: bool
) -> tuple[Notarisation, str]:
    """Whether the notary signed stx, and how that is known."""
    if holds_notary_signature(stx):
        return Notarisation.NOTARISED, "it holds the notary's signature"
    if not stx.tx.needs_notarisation:
        return Notarisation.NOT_NOTARISED, "it needs no notary"
    if not check_notary:
        return Notarisation.UNKNOWN, "the notary was not asked"
    check = TransactionNotarizationCheckFlow(stx, deps.identity, key, deps.peers).call()
    if check.status is Notarisation.UNKNOWN:
        return check.status, "it has no inputs for the notarisation check to ask about"
    consumers = ", ".join(f"{r} by {by}" for r, by in sorted(check.consumers.items()))
    return check.status, "the notarisation check: " + (consumers or "every input is unconsumed")


def classify(
    meta: FinalityMetadata, deps: FinalityDeps, key: KeyPair, now: datetime, *, check_notary: bool = True
) -> RecoveryPlan:
    """What recovering meta's transaction here would do; reads only (and the notary's check)."""

    def plan(notarisation: Notarisation, side: Side | None, action: Action, reason: str) -> RecoveryPlan:
        return RecoveryPlan(
            key=meta.key,
            tx_id=meta.tx_id,
            status=None if meta.stored is None else meta.stored.status,
            role=meta.role,
            initiator=meta.initiator,
            age=meta.age(now),
            notarisation=notarisation,
            side=side,
            action=action,
            reason=reason,
            running=tuple(f.flow_id for f in meta.live_flows),
        )

    stored = meta.stored
    if stored is None:
        if meta.role == PEER:
            return plan(
                Notarisation.UNKNOWN,
                Side.INITIATOR_ELSEWHERE,
                Action.NOTHING,
                f"not recorded here: only its initiator {meta.initiator} can recover it",
            )
        return plan(Notarisation.UNKNOWN, None, Action.NOTHING, "no finality of it recorded here")
    if stored.status is TransactionStatus.VERIFIED:
        if meta.role == INITIATOR and meta.peers:
            return plan(
                Notarisation.NOTARISED if stored.stx.tx.needs_notarisation else Notarisation.NOT_NOTARISED,
                Side.INITIATOR_HERE,
                Action.REDISTRIBUTE,
                "VERIFIED here: its receivers that lack it get it",
            )
        return plan(Notarisation.NOTARISED, None, Action.NOTHING, "VERIFIED here: nothing to recover")
    notarisation, how = notarisation_of(stored.stx, deps, key, check_notary)
    if meta.role == PEER:
        if notarisation is Notarisation.NOTARISED:
            return plan(notarisation, Side.PEER_HERE, Action.FINALISE, how)
        if notarisation is Notarisation.CONSUMED_ELSEWHERE:
            return plan(notarisation, Side.PEER_HERE, Action.UNDO, how + ": it can never be notarised")
        return plan(
            notarisation,
            Side.INITIATOR_ELSEWHERE,
            Action.NOTHING,
            f"{how}: only its initiator {meta.initiator} can notarise it (a recovery here asks it for "
            "the outcome)",
        )
    if notarisation is Notarisation.CONSUMED_ELSEWHERE:
        return plan(
            notarisation, Side.INITIATOR_HERE, Action.UNDO, how + ": undone here and at its receivers"
        )
    return plan(notarisation, Side.INITIATOR_HERE, Action.FINALISE, how)

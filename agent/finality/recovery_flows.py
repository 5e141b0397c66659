"""FinalityRecoveryFlow: finishes or undoes one transaction's interrupted finality, as a durable flow.

Its first step reads the recovery metadata and chooses the role, as Corda's FinalityRecoveryFlow
does: the initiator runs FinalityInitiatorRecoveryFlow's steps, a peer FinalityPeerRecoveryFlow's.
Each step commits with its checkpoint, so a crash in the middle of a recovery resumes it.

Initiator (the node with the sender records, or with the transaction alone):
    INITIATOR            notarised again (the notary answers a transaction it signed with the same
                         signature); a conflict instead: ABORTED, the IN_FLIGHT row removed with
                         that checkpoint
    NOTARISED            nothing more (the notary's signature is in the state)
    RECEIVERS_FINALISED  every receiver has it VERIFIED: those that lacked it got it, back-chain and
                         all (finality.recovery.finalise)
    FINALISED            ours VERIFIED last, as FinalityFlow finalises last; the flow COMPLETED
    RECEIVERS_ABORTED    (after ABORTED) every receiver removed its IN_FLIGHT copy
                         (finality.recovery.abort); COMPLETED
A transaction already VERIFIED here (an issuance whose observers never got it, a payment whose
receivers failed after we finalised) skips the notary: the receivers are recovered, nothing else.

Peer (the node with a receiver record):
    PEER                 the notarisation check (TransactionNotarizationCheckFlow) asked the notary
                         whether the inputs were consumed, consuming nothing
    CHECKED -> FINALISED      notarised: the notary's signature (asked again) finalises ours
            -> ABORTED        consumed by another transaction: ours is removed (it can never be
                              notarised)
            -> NOT_NOTARISED  FAILED with FlowRecoveryException: only the initiator may notarise
The result is True when something was recovered (finalised or undone, here or at a receiver), False
when nothing needed it ("Recovery not possible for transaction with status VERIFIED").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agent.errors import FlowRecoveryException, NotaryConflictError, PeerError
from agent.finality.flows import (
    OUTCOME_ABORTED,
    OUTCOME_VERIFIED,
    TOPIC_NOTARISE,
    TOPIC_OUTCOME,
    TOPIC_RECOVER_FINALISE,
    FinalityDeps,
)
from agent.finality.notarisation_check import Notarisation, TransactionNotarizationCheckFlow
from agent.finality.queries import INITIATOR, PEER, RECOVERY_FLOW
from agent.flows.flow import Advance, Flow, FlowContext, StepOutcome
from agent.ledger import serialization as ser
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.transactions import SignedTransaction, decode_signatures
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.recovery.distribution_list import DistributionList, PublicHeader, encrypt

log = logging.getLogger("ledger_agent.finality.recovery")

TOPIC_RECOVER_ABORT = "finality.recovery.abort"
VERIFIED_MESSAGE = "Recovery not possible for transaction with status VERIFIED"
INITIATOR_FLOW = "FinalityInitiatorRecoveryFlow"
PEER_FLOW = "FinalityPeerRecoveryFlow"


@dataclass(frozen=True)
class RecoveryDeps:
    """Finality's dependencies, and the node's key (a peer signs its notarisation check)."""

    finality: FinalityDeps
    key: KeyPair


class FinalityRecoveryFlow(Flow):
    name = RECOVERY_FLOW

    def __init__(self, state: dict[str, Any], deps: RecoveryDeps) -> None:
        super().__init__(state)
        self.deps = deps
        self.id = SecureHash.parse(ser.expect(state["tx_id"], str, "tx_id"), "tx_id")

    @classmethod
    def create(cls, tx_id: SecureHash, deps: RecoveryDeps) -> FinalityRecoveryFlow:
        return cls({"tx_id": str(tx_id)}, deps)

    @property
    def tx_id(self) -> SecureHash:
        return self.id

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        if self.state.get("role") == PEER:
            return (X500Name.parse(str(self.state["initiator"])),)
        return tuple(sorted(self._receivers()))

    @property
    def role_flow(self) -> str | None:
        """FinalityInitiatorRecoveryFlow or FinalityPeerRecoveryFlow, once the first step chose."""
        role = self.state.get("role")
        return None if role is None else INITIATOR_FLOW if role == INITIATOR else PEER_FLOW

    def _receivers(self) -> dict[X500Name, StatesToRecord]:
        return {
            X500Name.parse(n): StatesToRecord(h) for n, h in dict(self.state.get("receivers", {})).items()
        }

    def _stx(self) -> SignedTransaction:
        return SignedTransaction.deserialize(ser.expect(self.state["tx"], bytes, "tx"))

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        match progress_step:
            case "STARTED":
                return self._choose()
            case "INITIATOR":
                return self._notarise()
            case "NOTARISED":
                return self._finalise_receivers()
            case "RECEIVERS_FINALISED":
                return self._finalise_here()
            case "ABORTED" if self.state.get("role") == INITIATOR:
                return self._abort_receivers()
            case "PEER":
                return self._check()
            case "CHECKED":
                return self._after_check()
        raise FlowRecoveryException(f"{RECOVERY_FLOW} has no step after {progress_step}")

    # -- choosing the role ---------------------------------------------------------------------------

    def _choose(self) -> StepOutcome:
        finality = self.deps.finality
        stored = finality.transactions.get_stored(self.id)
        if stored is None:
            log.warning("transaction %s is not recorded here: nothing to recover", self.id)
            return Advance("NOTHING_TO_RECOVER", done=True, result=False)
        self.state["tx"] = stored.stx.serialize()
        received = finality.distribution.receiver_records(self.id)
        if received:
            self.state.update(role=PEER, initiator=str(received[0].sender))
            self.state["how"] = int(received[0].receiver_states_to_record)
            if stored.status is TransactionStatus.VERIFIED:
                log.warning("%s: %s", VERIFIED_MESSAGE, self.id)
                return Advance("NOTHING_TO_RECOVER", done=True, result=False)
            log.info("recovering %s as a peer of %s (%s)", self.id, received[0].sender, self.role_flow)
            return Advance("PEER")
        sent = finality.distribution.sender_records(self.id)
        self.state.update(
            role=INITIATOR, receivers={str(r.peer): int(r.receiver_states_to_record) for r in sent}
        )
        if sent:
            # Sealed once, under the records' key, for receivers that never got the transaction.
            key_id, key = finality.aes_keys.pick()
            peers = {r.peer.peer_id: r.receiver_states_to_record for r in sent}
            header = PublicHeader(sent[0].timestamp, sent[0].timestamp_discriminator)
            self.state["sealed"] = encrypt(
                DistributionList(sent[0].sender_states_to_record, peers), header, key_id, key
            )
        elif stored.status is TransactionStatus.VERIFIED:
            log.warning("%s: %s", VERIFIED_MESSAGE, self.id)
            return Advance("NOTHING_TO_RECOVER", done=True, result=False)
        log.info("recovering %s as its initiator (%s)", self.id, self.role_flow)
        return Advance("INITIATOR")

    # -- initiator -----------------------------------------------------------------------------------

    def _notarise(self) -> StepOutcome:
        finality = self.deps.finality
        stored = finality.transactions.get_stored(self.id)
        if stored is None:  # removed meanwhile: an earlier recovery met a notary conflict
            return Advance("NOTHING_TO_RECOVER", done=True, result=False)
        stx = stored.stx
        self.state["was_in_flight"] = stored.status is TransactionStatus.IN_FLIGHT
        if stored.status is TransactionStatus.IN_FLIGHT and stx.tx.needs_notarisation:
            assert stx.tx.notary is not None
            try:
                reply = finality.peers.request(stx.tx.notary.name, TOPIC_NOTARISE, {"tx": stx.serialize()})
            except NotaryConflictError as conflict:
                self.state["conflicts"] = dict(conflict.conflicts)
                log.warning("recovering %s: %s; undoing its finality everywhere", self.id, conflict)
                return Advance("ABORTED", effect=lambda: finality.transactions.remove_in_flight(self.id))
            stx = stx.with_signatures(*decode_signatures(ser.expect(reply.get("signatures"), bytes, "reply")))
        self.state["tx"] = stx.serialize()
        return Advance("NOTARISED")

    def _finalise_receivers(self) -> StepOutcome:
        finality, stx = self.deps.finality, self._stx()
        recovered = []
        for peer, how in sorted(self._receivers().items()):
            payload = {
                "tx": stx.serialize(),
                "distribution": self.state.get("sealed"),
                "states_to_record": int(how),
            }
            reply = finality.peers.request(peer, TOPIC_RECOVER_FINALISE, payload)
            if reply.get("changed"):
                recovered.append(str(peer))
        self.state["recovered_receivers"] = recovered
        if recovered:
            log.info("recovering %s: finalised at %s", self.id, ", ".join(recovered))
        return Advance("RECEIVERS_FINALISED")

    def _finalise_here(self) -> StepOutcome:
        finality, stx = self.deps.finality, self._stx()
        stored = finality.transactions.get_stored(self.id)
        if stored is not None and stored.status is not TransactionStatus.VERIFIED:
            run_id = stored.state_machine_run_id
            log.info("recovered the finality of %s", self.id)
            return Advance(
                "FINALISED",
                effect=lambda: finality.ledger.record(stx, state_machine_run_id=run_id),
                done=True,
                result=True,
            )
        recovered = bool(self.state.get("recovered_receivers")) or bool(self.state.get("was_in_flight"))
        if not recovered:
            log.warning("%s: %s (every receiver has it too)", VERIFIED_MESSAGE, self.id)
        return Advance("FINALISED", done=True, result=recovered)

    def _abort_receivers(self) -> StepOutcome:
        finality = self.deps.finality
        reason = str(NotaryConflictError(str(self.id), dict(self.state.get("conflicts", {}))))
        for peer in sorted(self._receivers()):
            finality.peers.request(peer, TOPIC_RECOVER_ABORT, {"tx_id": str(self.id), "reason": reason})
        return Advance("RECEIVERS_ABORTED", done=True, result=True)

    # -- peer ----------------------------------------------------------------------------------------

    def _check(self) -> StepOutcome:
        finality = self.deps.finality
        stored = finality.transactions.get_stored(self.id)
        if stored is None or stored.status is TransactionStatus.VERIFIED:
            # Finalised or undone meanwhile (the initiator's recovery, or its signatures, came first).
            if stored is not None:
                log.warning("%s: %s", VERIFIED_MESSAGE, self.id)
            return Advance("NOTHING_TO_RECOVER", done=True, result=False)
        check = TransactionNotarizationCheckFlow(stored.stx, finality.identity, self.deps.key, finality.peers)
        outcome = check.call()
        self.state.update(check=outcome.status.value, consumers=outcome.consumers)
        log.info("recovering %s: the notarisation check says %s", self.id, outcome.status.value)
        return Advance("CHECKED")

    def _after_check(self) -> StepOutcome:
        finality, stx = self.deps.finality, self._stx()
        initiator = X500Name.parse(str(self.state["initiator"]))
        status = Notarisation(str(self.state["check"]))
        signatures: bytes | None = None
        if status is Notarisation.NOTARISED:
            assert stx.tx.notary is not None
            reply = finality.peers.request(stx.tx.notary.name, TOPIC_NOTARISE, {"tx": stx.serialize()})
            signatures = ser.expect(reply.get("signatures"), bytes, "reply")
        elif status is Notarisation.UNKNOWN:
            signatures, aborted = self._ask_initiator(initiator)
            if aborted:
                status = Notarisation.CONSUMED_ELSEWHERE
        if status is Notarisation.CONSUMED_ELSEWHERE:
            consumers = ", ".join(
                f"{r} consumed by {by}" for r, by in sorted(dict(self.state.get("consumers", {})).items())
            )
            log.warning(
                "recovering %s: it can never be notarised (%s); removing it",
                self.id,
                consumers or "the initiator aborted it",
            )
            return Advance(
                "ABORTED",
                effect=lambda: finality.transactions.remove_in_flight(self.id),
                done=True,
                result=True,
            )
        if signatures is None:
            error = FlowRecoveryException(
                f"transaction {self.id} was not notarised: only its initiator {initiator} can recover it "
                f"(flow recoverFinalityByTxnId {self.id} on {initiator})"
            )
            return Advance("NOT_NOTARISED", fail=error)
        final = stx.with_signatures(*decode_signatures(signatures))
        how = StatesToRecord(int(self.state["how"]))
        log.info("recovered the finality of %s", self.id)
        return Advance(
            "FINALISED",
            effect=lambda: finality.ledger.record(final, states_to_record=how),
            done=True,
            result=True,
        )

    def _ask_initiator(self, initiator: X500Name) -> tuple[bytes | None, bool]:
        """(signatures, aborted) as the initiator reports them, for a transaction the check cannot
        tell about; an initiator that is down or does not know says nothing."""
        try:
            reply = self.deps.finality.peers.request(initiator, TOPIC_OUTCOME, {"tx_id": str(self.id)})
        except PeerError as exc:
            log.info("asked %s for the outcome of %s: %s", initiator, self.id, exc)
            return None, False
        if reply.get("status") == OUTCOME_VERIFIED:
            return ser.expect(reply.get("signatures"), bytes, "signatures"), False
        return None, reply.get("status") == OUTCOME_ABORTED

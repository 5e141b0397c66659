"""A receiver's side of its initiator's finality recovery: the two peer topics it answers.

- `finality.recovery.finalise` {tx (with the notary's signature), distribution, states_to_record}:
  the transaction ends VERIFIED here. A receiver that never got it (its flow failed before it
  recorded, or it was restored from a backup taken before) resolves the back-chain from the
  initiator and records it with its receiver record, as ReceiveFinalityFlow would have; one holding
  it IN_FLIGHT finalises it. Answers {"changed": whether this call did anything}.
- `finality.recovery.abort` {tx_id, reason}: the notary refused the transaction (its inputs went to
  another): the IN_FLIGHT row and its records go, as after finality's own abort. {"removed": bool}.

A ReceiveFinalityFlow parked at RECORDED (waiting for the signature) is given it, and completes as
if FinalityFlow had sent it. Otherwise, a ReceiveFinalityFlow of that transaction from that initiator
still RUNNABLE, PAUSED or HOSPITALIZED here is killed first, and waited for, so that two flows never act on one transaction
(and a flow kept in the hospital before it recorded does not block the recovery). Both are
idempotent: the initiator's recovery flow sends again after a crash, and the answer is the same.
Only the transaction's sender may finalise or abort a copy it sent us; anyone may send one we lack,
which we verify in full (the notary's signature included) like any finality broadcast.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from agent.errors import FinalityError, ReceiverBusyError, TransactionAccessDeniedError
from agent.finality.flows import (
    RECEIVE_FLOW,
    TOPIC_RECOVER_FINALISE,
    FinalityDeps,
    fetch_backchain,
    withdrawal_refused,
)
from agent.finality.queries import LIVE
from agent.finality.recovery_flows import TOPIC_RECOVER_ABORT
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowEngine
from agent.ledger import serialization as ser
from agent.ledger.distribution import ReceiverDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction, encode_signatures
from agent.ledger.vault import StatesToRecord, TransactionStatus, states_to_record
from agent.recovery.distribution_list import read_header

log = logging.getLogger("ledger_agent.finality.recovery")

STOP_WAIT_S = 25.0  # under the sender's request timeout: a flow that does not stop by then is busy


class Handlers(Protocol):
    def register(self, topic: str, handler: Any) -> None: ...


class RecoveryReceiver:
    def __init__(self, deps: FinalityDeps, engine: FlowEngine) -> None:
        self.deps = deps
        self.engine = engine
        self._lock = threading.Lock()  # one recovery message at a time: they are rare, and act on rows

    def register(self, handlers: Handlers) -> None:
        handlers.register(TOPIC_RECOVER_FINALISE, ser.map_payload(self._on_finalise))
        handlers.register(TOPIC_RECOVER_ABORT, ser.map_payload(self._on_abort))

    def _check_sender(self, tx_id: SecureHash, sender: X500Name, what: str) -> bool:
        """Whether we hold a receiver record of the transaction (from that sender, or refused)."""
        records = self.deps.distribution.receiver_records(tx_id)
        if records and not any(r.sender == sender for r in records):
            raise TransactionAccessDeniedError(str(sender), str(tx_id), f"only its sender may {what} it")
        return bool(records)

    def _end_receiving_flows(self, tx_id: SecureHash, sender: X500Name) -> None:
        """Kill the ReceiveFinalityFlows of the transaction from sender that have not ended, and wait."""
        for cp in self.engine.flows(tx_id=tx_id, flow_name=RECEIVE_FLOW, counterparty=sender):
            if cp.status not in LIVE or not self.engine.kill(cp.flow_id):
                continue
            log.warning(
                "%s %s (%s at %s) ended: %s recovers the finality of %s",
                RECEIVE_FLOW,
                cp.flow_id,
                cp.status.name,
                cp.progress_step,
                sender,
                tx_id,
            )
            handle = self.engine.handle(cp.flow_id)
            if handle is not None and not handle.wait_for(lambda h: h.done, STOP_WAIT_S):
                raise ReceiverBusyError(f"{RECEIVE_FLOW} {cp.flow_id} for {tx_id} is still in a step")

    def _deliver_to_waiting_flow(self, stx: SignedTransaction, sender: X500Name) -> bool:
        """A ReceiveFinalityFlow parked at RECORDED takes the signatures as from FinalityFlow and
        completes; whether the transaction is VERIFIED now."""
        for cp in self.engine.flows(tx_id=stx.id, flow_name=RECEIVE_FLOW, counterparty=sender):
            handle = self.engine.handle(cp.flow_id)
            parked = self.engine.wake_at(cp.flow_id) is not None
            if cp.status is not FlowStatus.RUNNABLE or cp.progress_step != "RECORDED" or not parked:
                continue
            if handle is None:
                continue
            self.engine.deliver(cp.flow_id, "signatures", encode_signatures(stx.sigs), here=True)
            handle.wait_for(
                lambda h: h.checkpoint is not None and h.checkpoint.status is not FlowStatus.RUNNABLE,
                STOP_WAIT_S,
            )
            break
        return self.deps.transactions.transaction_status(stx.id) is TransactionStatus.VERIFIED

    def _on_finalise(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        stx = SignedTransaction.deserialize(ser.expect(payload.get("tx"), bytes, "tx"))
        how = states_to_record(payload.get("states_to_record"), "states_to_record")
        if how not in (StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE):
            raise FinalityError(f"a receiver records ONLY_RELEVANT or ALL_VISIBLE, not {how.name}")
        sealed = payload.get("distribution")
        deps, tx_id = self.deps, stx.id
        with self._lock:
            had_record = self._check_sender(tx_id, sender, "finalise")
            if deps.transactions.transaction_status(tx_id) is TransactionStatus.VERIFIED:
                return {"changed": False}
            if had_record and self._deliver_to_waiting_flow(stx, sender):
                return {"changed": True}
            self._end_receiving_flows(tx_id, sender)
            stored = deps.transactions.get_stored(tx_id)  # a killed flow's last step may have recorded it
            if stored is not None and had_record:
                how = next(r.receiver_states_to_record for r in deps.distribution.receiver_records(tx_id))
            record = None
            if stored is None or not had_record:
                if not isinstance(sealed, bytes):
                    raise FinalityError(f"{sender} sent {tx_id} without its distribution list")
                header = read_header(sealed)
                record = ReceiverDistribution(
                    tx_id, sender, header.sender_recorded_timestamp, header.time_discriminator, sealed, how
                )
            if stored is None:
                for dep in deps.ledger.verify_chain(fetch_backchain(deps, stx, sender)):
                    deps.transactions.record_transaction(dep)  # parents first, each on its own
            changed = deps.ledger.record(stx, states_to_record=how, receiver_record=record)
            log.info("%s recovered the finality of %s here", sender, tx_id)
            return {"changed": changed}

    def _on_abort(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        reason = str(payload.get("reason", ""))
        with self._lock:
            if not self._check_sender(tx_id, sender, "abort"):
                return {"removed": False}  # it never reached us
            refused = withdrawal_refused(self.deps, tx_id, sender)
            if refused is not None:
                raise TransactionAccessDeniedError(str(sender), str(tx_id), refused)
            self._end_receiving_flows(tx_id, sender)
            removed = self.deps.transactions.remove_in_flight(tx_id)
        if removed:
            log.warning("%s undid the finality of %s: %s", sender, tx_id, reason)
        return {"removed": removed}

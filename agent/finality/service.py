"""Two-phase finality on the flow engine: starting FinalityFlow, and the receiving side's handlers.

The flows themselves (their steps, what each commits) are in agent/finality/flows.py. Here:
- `start`/`finalise`: an initiator's FinalityFlow on the engine (a handle, or the result).
- the peer topics: a broadcast starts (or finds) the ReceiveFinalityFlow for that transaction and
  answers once it has recorded it; signatures and aborts are delivered to that flow; a receiver that
  asks for the outcome is told what we know; the back-chain is served only to a receiver of a
  transaction it is in the back-chain of; the notary's service answers notarisation requests.
Participants record ONLY_RELEVANT, observers ALL_VISIBLE.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from agent.errors import (
    FinalityError,
    KeptForObservationError,
    ReceiverBusyError,
    TransactionAccessDeniedError,
    TransactionNotFoundError,
)
from agent.finality.flows import (
    FINALITY_FLOW,
    OUTCOME_ABORTED,
    OUTCOME_IN_FLIGHT,
    OUTCOME_UNKNOWN,
    OUTCOME_VERIFIED,
    RECEIVE_FLOW,
    TOPIC_ABORT,
    TOPIC_BACKCHAIN,
    TOPIC_KILLED,
    TOPIC_NOTARISE,
    TOPIC_OUTCOME,
    TOPIC_SIGNATURES,
    TOPIC_TRANSACTION,
    FinalityDeps,
    FinalityFlow,
    ReceiveFinalityFlow,
    withdrawal_refused,
)
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import FlowEngine, FlowHandle
from agent.ledger import serialization as ser
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction, decode_signatures, encode_signatures
from agent.ledger.vault import StatesToRecord, TransactionStatus, states_to_record
from agent.ledger.verification import back_chain, resolve
from agent.notary.service import NotaryService
from agent.recovery.distribution_list import read_header

log = logging.getLogger("ledger_agent.finality")

# How long a peer handler waits for the receiving flow before answering (under the peer's timeout).
REPLY_WAIT_S = 25.0
FIRST_PHASE_STEPS = ("RECORDED", "BEFORE_FINALISE", "FINALISED")


class Handlers(Protocol):
    def register(self, topic: str, handler: Any) -> None: ...


class FinalityService:
    def __init__(self, deps: FinalityDeps, engine: FlowEngine, notary: NotaryService | None = None) -> None:
        self.deps = deps
        self.identity = deps.identity
        self.ledger = deps.ledger
        self.transactions = deps.transactions
        self.distribution = deps.distribution
        self.peers = deps.peers
        self.aes_keys = deps.aes_keys
        self.clock = deps.clock
        self.engine = engine
        self.notary = notary
        self._closures: OrderedDict[SecureHash, frozenset[SecureHash]] = OrderedDict()
        self._closure_lock = threading.Lock()
        self._receiving = threading.Lock()
        engine.register(FINALITY_FLOW, lambda state: FinalityFlow(state, deps))
        engine.register(RECEIVE_FLOW, lambda state: ReceiveFinalityFlow(state, deps))

    def register(self, handlers: Handlers) -> None:
        handlers.register(TOPIC_TRANSACTION, ser.map_payload(self._on_transaction))
        handlers.register(TOPIC_BACKCHAIN, ser.map_payload(self._on_backchain))
        handlers.register(TOPIC_SIGNATURES, ser.map_payload(self._on_signatures))
        handlers.register(TOPIC_ABORT, ser.map_payload(self._on_abort))
        handlers.register(TOPIC_OUTCOME, ser.map_payload(self._on_outcome))
        handlers.register(TOPIC_KILLED, ser.map_payload(self._on_killed))
        if self.notary is not None:
            handlers.register(TOPIC_NOTARISE, ser.map_payload(self._on_notarise))

    # -- initiator -----------------------------------------------------------------------------------

    def receivers(
        self, stx: SignedTransaction, observers: Iterable[X500Name]
    ) -> dict[X500Name, StatesToRecord]:
        """Participants of inputs and outputs get ONLY_RELEVANT, observers ALL_VISIBLE; never ourselves."""
        ltx = resolve(stx.tx, self.transactions)
        participants = {p.name for s in ltx.outputs for p in s.participants}
        participants |= {p.name for s in ltx.inputs for p in s.state.participants}
        chosen = {name: StatesToRecord.ONLY_RELEVANT for name in participants}
        for name in observers:
            chosen.setdefault(name, StatesToRecord.ALL_VISIBLE)
        chosen.pop(self.identity.name, None)
        return chosen

    def start(
        self, stx: SignedTransaction, observers: Sequence[X500Name] = (), *, flow_id: str | None = None
    ) -> FlowHandle:
        """Start FinalityFlow on the engine's pool; the handle gives its result (the final transaction)."""
        flow = FinalityFlow.create(stx, self.receivers(stx, observers), self.deps)
        return self.engine.start(flow, flow_id=flow_id)

    def create(self, stx: SignedTransaction, observers: Sequence[X500Name] = ()) -> FlowHandle:
        """FinalityFlow checkpointed but not yet run: the caller runs it (engine.run_here)."""
        return self.engine.create(FinalityFlow.create(stx, self.receivers(stx, observers), self.deps))

    def finalise(
        self,
        stx: SignedTransaction,
        observers: Sequence[X500Name] = (),
        *,
        flow_id: str | None = None,
        timeout: float | None = None,
    ) -> SignedTransaction:
        """Run FinalityFlow and wait for it; FlowTimeoutError if it is still running after timeout."""
        result: SignedTransaction = self.start(stx, observers, flow_id=flow_id).result(timeout)
        return result

    # -- receiver ------------------------------------------------------------------------------------

    def _receive_flows(self, tx_id: SecureHash, sender: X500Name) -> list[FlowCheckpoint]:
        return self.engine.flows(tx_id=tx_id, flow_name=RECEIVE_FLOW, counterparty=sender)

    def _on_transaction(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        stx = SignedTransaction.deserialize(ser.expect(payload.get("tx"), bytes, "tx"))
        sealed = ser.expect(payload.get("distribution"), bytes, "distribution")
        how = states_to_record(payload.get("states_to_record"), "states_to_record")
        if how not in (StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE):
            raise FinalityError(f"a receiver records ONLY_RELEVANT or ALL_VISIBLE, not {how.name}")
        read_header(sealed)  # an unreadable header is refused before any flow starts
        handle: FlowHandle | None = None
        with self._receiving:
            for cp in self._receive_flows(stx.id, sender):
                if cp.status is FlowStatus.COMPLETED or (
                    cp.status in (FlowStatus.PAUSED, FlowStatus.HOSPITALIZED)
                    and cp.progress_step in FIRST_PHASE_STEPS
                ):
                    # A repeated delivery: answer as before, start nothing new.
                    return {"ack": True, "flow_id": cp.flow_id}
                if cp.status is FlowStatus.HOSPITALIZED:
                    raise self._kept(cp.flow_id, cp.progress_step, cp.error)
                if cp.status is FlowStatus.PAUSED:
                    raise ReceiverBusyError(
                        f"{RECEIVE_FLOW} {cp.flow_id} for {stx.id} is paused at {cp.progress_step}"
                    )
                if cp.status is FlowStatus.RUNNABLE:
                    handle = self.engine.handle(cp.flow_id)
                    if handle is None:
                        return {"ack": True, "flow_id": cp.flow_id}
            if handle is None:
                if self.transactions.transaction_status(stx.id) is TransactionStatus.VERIFIED and (
                    any(r.sender == sender for r in self.distribution.receiver_records(stx.id))
                ):
                    return {"ack": True, "flow_id": None}
                flow = ReceiveFinalityFlow.create(stx, sender, sealed, how, self.deps)
                handle = self.engine.create(flow)
        self.engine.run_here(handle.flow_id)
        if not handle.wait_for(lambda h: _recorded(h) or _held(h), REPLY_WAIT_S):
            raise ReceiverBusyError(
                f"{RECEIVE_FLOW} {handle.flow_id} for {stx.id} is still at {_step(handle)}"
            )
        if handle.done:
            handle.result(0)  # its error, if it failed
        now = handle.checkpoint
        if now is not None and now.status is FlowStatus.HOSPITALIZED and not _recorded(handle):
            raise self._kept(handle.flow_id, now.progress_step, now.error)
        if now is not None and now.status is FlowStatus.PAUSED and not _recorded(handle):
            raise ReceiverBusyError(
                f"{RECEIVE_FLOW} {handle.flow_id} for {stx.id} is paused at {now.progress_step}"
            )
        return {"ack": True, "flow_id": handle.flow_id}

    def _kept(self, flow_id: str, step: str | None, error: str | None) -> KeptForObservationError:
        """The sender waits, as for a peer that is down, until our operator retries or kills the flow."""
        return KeptForObservationError(
            str(self.identity.name),
            f"{RECEIVE_FLOW} {flow_id} is in the flow hospital at {step} ({error})",
        )

    def _live_receiver(self, tx_id: SecureHash, sender: X500Name) -> FlowHandle | None:
        for cp in self._receive_flows(tx_id, sender):
            if cp.status is FlowStatus.RUNNABLE:
                handle = self.engine.handle(cp.flow_id)
                if handle is not None:
                    return handle
        return None

    def _on_signatures(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        sigs = ser.expect(payload.get("signatures"), bytes, "signatures")
        decode_signatures(sigs)  # refuse a malformed list here, not inside the flow
        handle = self._live_receiver(tx_id, sender)
        if handle is not None:
            self.engine.deliver(handle.flow_id, "signatures", sigs, here=True)
            if not handle.wait_for(_held, REPLY_WAIT_S):
                raise ReceiverBusyError(
                    f"{RECEIVE_FLOW} {handle.flow_id} for {tx_id} is still at {_step(handle)}"
                )
            if handle.done:
                handle.result(0)
                return {"ack": True}
            # Kept in the hospital (or paused) on the way: finalised here, as when no flow holds it.
        stored = self.transactions.get_stored(tx_id)
        if stored is None:
            raise TransactionNotFoundError(str(tx_id))
        if stored.status is not TransactionStatus.VERIFIED:
            # No flow holds it (its checkpoint is gone): finalise it here, verified in full.
            if not any(r.sender == sender for r in self.distribution.receiver_records(tx_id)):
                raise TransactionAccessDeniedError(
                    str(sender), str(tx_id), "it did not send us that transaction"
                )
            self.ledger.record(
                stored.stx.with_signatures(*decode_signatures(sigs)),
                state_machine_run_id=stored.state_machine_run_id,
            )
        return {"ack": True}

    def _on_abort(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        reason = str(payload.get("reason", ""))
        refused = withdrawal_refused(self.deps, tx_id, sender)
        if refused is not None:
            raise TransactionAccessDeniedError(str(sender), str(tx_id), refused)
        handle = self._live_receiver(tx_id, sender)
        if handle is not None:
            self.engine.deliver(handle.flow_id, "abort", reason, here=True)
            handle.wait_for(lambda _: False, REPLY_WAIT_S)
            return {"removed": self.transactions.transaction_status(tx_id) is None}
        return {"removed": self.transactions.remove_in_flight(tx_id)}

    def _on_killed(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        """The initiator's operator killed its FinalityFlow: our side ends, the row stays IN_FLIGHT."""
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        if not any(r.sender == sender for r in self.distribution.receiver_records(tx_id)):
            raise TransactionAccessDeniedError(
                str(sender), str(tx_id), "only its sender may end its finality"
            )
        handle = self._live_receiver(tx_id, sender)
        if handle is None:
            return {"ended": False}
        self.engine.deliver(handle.flow_id, "killed", True, here=True)
        handle.wait_for(lambda _: False, REPLY_WAIT_S)
        return {"ended": handle.done}

    def _on_outcome(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        """A receiver asks how our finality of a transaction we sent it ended."""
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        ours = self.engine.flows(tx_id=tx_id, flow_name=FINALITY_FLOW)
        stored = self.transactions.get_stored(tx_id)
        aborted = [cp for cp in ours if cp.progress_step == "ABORTED" and requester in cp.counterparties]
        if stored is None and aborted:
            return {"status": OUTCOME_ABORTED, "reason": aborted[-1].error or ""}
        if not any(r.peer == requester for r in self.distribution.sender_records(tx_id)):
            # The same refusal whether we hold it or not: asking must not tell who knows an id whether
            # we hold it. (A receiver goes on waiting on this answer as on "unknown".)
            raise TransactionAccessDeniedError(
                str(requester), str(tx_id), "we did not send it that transaction"
            )
        if stored is not None and stored.status is TransactionStatus.VERIFIED:
            return {"status": OUTCOME_VERIFIED, "signatures": encode_signatures(stored.stx.sigs)}
        if stored is not None:
            return {"status": OUTCOME_IN_FLIGHT}
        return {"status": OUTCOME_UNKNOWN}

    def _on_backchain(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        ids = [
            SecureHash.parse(ser.expect(h, str, "ids[]"), "ids[]")
            for h in ser.expect_list(payload.get("ids"), "ids")
        ]
        if not any(r.peer == requester for r in self.distribution.sender_records(tx_id)):
            raise TransactionAccessDeniedError(
                str(requester), str(tx_id), "we did not send it that transaction"
            )
        allowed = self._backchain_of(tx_id)
        txs = []
        for h in ids:
            if h not in allowed:
                raise TransactionAccessDeniedError(
                    str(requester), str(h), f"not in the back-chain of {tx_id}"
                )
            txs.append(self.transactions.require_transaction(h).serialize())
        return {"txs": txs}

    def _backchain_of(self, tx_id: SecureHash) -> frozenset[SecureHash]:
        with self._closure_lock:
            if tx_id in self._closures:
                self._closures.move_to_end(tx_id)
                return self._closures[tx_id]
        stored = self.transactions.get_stored(tx_id)
        if stored is None:
            raise TransactionNotFoundError(str(tx_id))
        parents = [r.txhash for r in (*stored.stx.tx.inputs, *stored.stx.tx.references)]
        closure = frozenset(back_chain(parents, self.transactions))
        with self._closure_lock:
            self._closures[tx_id] = closure
            while len(self._closures) > 64:
                self._closures.popitem(last=False)
        return closure

    # -- notary --------------------------------------------------------------------------------------

    def _on_notarise(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        assert self.notary is not None
        stx = SignedTransaction.deserialize(ser.expect(payload.get("tx"), bytes, "tx"))
        signature = self.notary.notarise(stx, requester=requester)
        return {"signatures": encode_signatures([signature])}


def _recorded(handle: FlowHandle) -> bool:
    cp = handle.checkpoint
    return cp is not None and cp.progress_step in FIRST_PHASE_STEPS


def _held(handle: FlowHandle) -> bool:
    cp = handle.checkpoint
    return cp is not None and cp.status in (FlowStatus.HOSPITALIZED, FlowStatus.PAUSED)


def _step(handle: FlowHandle) -> str:
    step = None if handle.checkpoint is None else handle.checkpoint.progress_step
    waiting = f", waiting for {handle.waiting_for}" if handle.waiting_for else ""
    return f"{step}{waiting}"

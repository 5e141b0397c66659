"""Two-phase finality, in Corda's order, leaving the recovery metadata behind.

Initiator (FinalityFlow):
    VERIFIED            every signature checked but the notary's; contracts and back-chain verified
    AFTER_RECORD        recorded IN_FLIGHT (VERIFIED for an issuance), with one SenderDistribution
                        record per receiver; the ReceiverDistribution list is sealed once
    AFTER_BROADCAST     every receiver has recorded it IN_FLIGHT (and acknowledged)
    AFTER_NOTARISE      the notary signed (a conflict instead: IN_FLIGHT rows removed everywhere)
    BEFORE_SEND_SIGNATURE / AFTER_SEND_SIGNATURE
                        the notary's signature goes to every receiver, which finalises at once
    FINALISED           the initiator finalises last, so a receiver can be VERIFIED before it
Receiver (ReceiveFinalityFlow): RECEIVED, BACKCHAIN_RESOLVED, RECORDED, BEFORE_FINALISE, FINALISED.

Each of those names is a fault-injection point ("FinalityFlow.AFTER_NOTARISE=crash").
Participants record ONLY_RELEVANT, observers ALL_VISIBLE. A receiver fetches the back-chain from the
sender, which serves only transactions in the back-chain of one it is sending to that receiver.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from agent.clock import Clock
from agent.errors import (
    FinalityError,
    NotaryConflictError,
    PeerError,
    TransactionAccessDeniedError,
    TransactionNotFoundError,
    TransactionResolutionError,
)
from agent.flows.checkpoints import FlowStatus
from agent.flows.runner import FlowContext, FlowRunner
from agent.ledger import serialization as ser
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party, X500Name
from agent.ledger.transactions import (
    SignedTransaction,
    TransactionSignature,
    decode_signatures,
    encode_signatures,
)
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.ledger.verification import resolve
from agent.notary.service import NotaryService
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.distribution_list import DistributionList, PublicHeader, encrypt, read_header
from agent.services.ledger_service import LedgerService

log = logging.getLogger("ledger_agent.finality")

TOPIC_TRANSACTION = "finality.transaction"
TOPIC_BACKCHAIN = "finality.backchain"
TOPIC_SIGNATURES = "finality.signatures"
TOPIC_ABORT = "finality.abort"
TOPIC_NOTARISE = "notary.notarise"

FINALITY_FLOW = "FinalityFlow"
RECEIVE_FLOW = "ReceiveFinalityFlow"
BACKCHAIN_BATCH = 500
MAX_BACKCHAIN = 1_000_000


class Peers(Protocol):
    """The peer client, as finality needs it."""

    def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any: ...


class Handlers(Protocol):
    def register(self, topic: str, handler: Any) -> None: ...


# Like Corda's JVM-global AtomicInteger: it tells apart records made in the same second; not persisted.
_discriminator = itertools.count()
_discriminator_lock = threading.Lock()


def _next_discriminator() -> int:
    with _discriminator_lock:
        return next(_discriminator) % 2**31


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class FinalityService:
    def __init__(
        self,
        identity: Party,
        ledger: LedgerService,
        runner: FlowRunner,
        peers: Peers,
        aes_keys: NodeAesKeys,
        clock: Clock,
        notary: NotaryService | None = None,
    ) -> None:
        self.identity = identity
        self.ledger = ledger
        self.store = ledger.store
        self.runner = runner
        self.peers = peers
        self.aes_keys = aes_keys
        self.clock = clock
        self.notary = notary
        self._closures: OrderedDict[SecureHash, frozenset[SecureHash]] = OrderedDict()
        self._closure_lock = threading.Lock()

    def register(self, handlers: Handlers) -> None:
        handlers.register(TOPIC_TRANSACTION, self._on_transaction)
        handlers.register(TOPIC_BACKCHAIN, self._on_backchain)
        handlers.register(TOPIC_SIGNATURES, self._on_signatures)
        handlers.register(TOPIC_ABORT, self._on_abort)
        if self.notary is not None:
            handlers.register(TOPIC_NOTARISE, self._on_notarise)

    # -- initiator -----------------------------------------------------------------------------------

    def receivers(
        self, stx: SignedTransaction, observers: Iterable[X500Name]
    ) -> dict[X500Name, StatesToRecord]:
        """Participants of inputs and outputs get ONLY_RELEVANT, observers ALL_VISIBLE; never ourselves."""
        ltx = resolve(stx.tx, self.store)
        participants = {p.name for s in ltx.outputs for p in s.participants}
        participants |= {p.name for s in ltx.inputs for p in s.state.participants}
        chosen = {name: StatesToRecord.ONLY_RELEVANT for name in participants}
        for name in observers:
            chosen.setdefault(name, StatesToRecord.ALL_VISIBLE)
        chosen.pop(self.identity.name, None)
        return chosen

    def finalise(
        self, stx: SignedTransaction, observers: Sequence[X500Name] = (), *, flow_id: str | None = None
    ) -> SignedTransaction:
        """Run FinalityFlow to the end in this thread; returns the transaction as finally recorded."""
        receivers = self.receivers(stx, observers)
        return self.runner.run(
            FINALITY_FLOW,
            lambda ctx: self._finality(ctx, stx, receivers),
            flow_id=flow_id,
            counterparties=sorted(receivers),
            tx_id=stx.id,
        )

    def _finality(
        self, ctx: FlowContext, stx: SignedTransaction, receivers: dict[X500Name, StatesToRecord]
    ) -> SignedTransaction:
        tx = stx.tx
        needs_notary = tx.needs_notarisation
        timestamp = _whole_seconds(self.clock.now())
        discriminator = _next_discriminator()
        sender_records = [
            SenderDistribution(tx.id, peer, timestamp, discriminator, StatesToRecord.ONLY_RELEVANT, how)
            for peer, how in sorted(receivers.items())
        ]
        key_id, key = self.aes_keys.pick()
        sealed = encrypt(
            DistributionList(StatesToRecord.ONLY_RELEVANT, {p.peer_id: how for p, how in receivers.items()}),
            PublicHeader(timestamp, discriminator),
            key_id,
            key,
        )
        self.ledger.verify(stx, check_notary_signature=False)
        ctx.step("VERIFIED")
        self.store.record_transaction(
            stx,
            status=TransactionStatus.IN_FLIGHT if needs_notary else TransactionStatus.VERIFIED,
            states_to_record=StatesToRecord.ONLY_RELEVANT,
            state_machine_run_id=ctx.flow_id,
            sender_records=sender_records,
        )
        ctx.step("AFTER_RECORD", value=_checkpoint_value(stx, receivers))
        for peer, how in sorted(receivers.items()):
            self.peers.request(
                peer,
                TOPIC_TRANSACTION,
                {"tx": stx.serialize(), "distribution": sealed, "states_to_record": int(how)},
            )
        ctx.step("AFTER_BROADCAST")
        if not needs_notary:
            ctx.step("FINALISED")
            return stx

        assert tx.notary is not None
        try:
            reply = self.peers.request(tx.notary.name, TOPIC_NOTARISE, {"tx": stx.serialize()})
        except NotaryConflictError as conflict:
            self._abort(ctx, stx, receivers, conflict)
            raise
        notary_sigs = decode_signatures(ser.expect(reply.get("signatures"), bytes, "notary reply"))
        final = stx.with_signatures(*notary_sigs)
        ctx.step("AFTER_NOTARISE", value=_checkpoint_value(final, receivers))
        ctx.step("BEFORE_SEND_SIGNATURE")
        for peer in sorted(receivers):
            self.peers.request(
                peer, TOPIC_SIGNATURES, {"tx_id": str(tx.id), "signatures": encode_signatures(notary_sigs)}
            )
        ctx.step("AFTER_SEND_SIGNATURE")
        self.ledger.record(final, state_machine_run_id=ctx.flow_id)
        ctx.step("FINALISED")
        return final

    def _abort(
        self,
        ctx: FlowContext,
        stx: SignedTransaction,
        receivers: dict[X500Name, StatesToRecord],
        conflict: NotaryConflictError,
    ) -> None:
        """A notary conflict: every party removes its IN_FLIGHT copy, then the flow fails with it."""
        self.store.remove_in_flight(stx.id)
        ctx.step("ABORTED")
        for peer in sorted(receivers):
            try:
                self.peers.request(peer, TOPIC_ABORT, {"tx_id": str(stx.id), "reason": str(conflict)})
            except PeerError as exc:  # that receiver keeps IN_FLIGHT; recovery will find it
                log.warning("could not tell %s to drop %s: %s", peer, stx.id, exc)

    # -- receiver ------------------------------------------------------------------------------------

    def _on_transaction(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        stx = SignedTransaction.deserialize(ser.expect(payload.get("tx"), bytes, "tx"))
        sealed = ser.expect(payload.get("distribution"), bytes, "distribution")
        how = StatesToRecord(ser.expect(payload.get("states_to_record"), int, "states_to_record"))
        if how not in (StatesToRecord.ONLY_RELEVANT, StatesToRecord.ALL_VISIBLE):
            raise FinalityError(f"a receiver records ONLY_RELEVANT or ALL_VISIBLE, not {how.name}")
        header = read_header(sealed)
        record = ReceiverDistribution(
            stx.id, sender, header.sender_recorded_timestamp, header.time_discriminator, sealed, how
        )
        needs_notary = stx.tx.needs_notarisation
        if self.store.transaction_status(stx.id) is not None:
            # A retried delivery (its first reply was lost): answer as before, start nothing new.
            for cp in self.store.iter_checkpoints(tx_id=stx.id, flow_name=RECEIVE_FLOW):
                if sender in cp.counterparties and cp.status is not FlowStatus.FAILED:
                    return {"ack": True, "flow_id": cp.flow_id}

        def body(ctx: FlowContext) -> dict[str, Any]:
            ctx.step("RECEIVED")
            chain = self._fetch_backchain(sender, stx)
            self.ledger.record_chain(chain)
            ctx.step("BACKCHAIN_RESOLVED")
            self.ledger.record(
                stx,
                status=TransactionStatus.IN_FLIGHT if needs_notary else TransactionStatus.VERIFIED,
                states_to_record=how,
                state_machine_run_id=ctx.flow_id,
                receiver_record=record,
            )
            ctx.step("RECORDED")
            if not needs_notary:
                ctx.step("FINALISED")
            return {"ack": True, "flow_id": ctx.flow_id}

        return self.runner.run(
            RECEIVE_FLOW, body, counterparties=[sender], tx_id=stx.id, complete=not needs_notary
        )

    def _fetch_backchain(self, sender: X500Name, stx: SignedTransaction) -> list[SignedTransaction]:
        fetched: dict[SecureHash, SignedTransaction] = {}
        wanted = {r.txhash for r in (*stx.tx.inputs, *stx.tx.references)}
        wanted = {h for h in wanted if self.store.transaction_status(h) is not TransactionStatus.VERIFIED}
        while wanted:
            batch = sorted(wanted)[:BACKCHAIN_BATCH]
            reply = self.peers.request(
                sender, TOPIC_BACKCHAIN, {"tx_id": str(stx.id), "ids": [str(h) for h in batch]}
            )
            got = [SignedTransaction.deserialize(b) for b in ser.expect_list(reply.get("txs"), "txs")]
            missing = set(batch) - {t.id for t in got}
            if missing or len(got) != len(batch):
                raise TransactionResolutionError(str(stx.id), sorted(str(h) for h in missing))
            wanted -= set(batch)
            for dep in got:
                fetched[dep.id] = dep
                for ref in (*dep.tx.inputs, *dep.tx.references):
                    if ref.txhash not in fetched and ref.txhash not in wanted:
                        status = self.store.transaction_status(ref.txhash)
                        if status is not TransactionStatus.VERIFIED:
                            wanted.add(ref.txhash)
            if len(fetched) > MAX_BACKCHAIN:
                raise FinalityError(f"back-chain of {stx.id} exceeds {MAX_BACKCHAIN} transactions")
        return list(fetched.values())

    def _on_backchain(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        ids = [
            SecureHash.parse(ser.expect(h, str, "ids[]"), "ids[]")
            for h in ser.expect_list(payload.get("ids"), "ids")
        ]
        if not any(r.peer == requester for r in self.store.sender_records(tx_id)):
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
            txs.append(self.store.require_transaction(h).serialize())
        return {"txs": txs}

    def _backchain_of(self, tx_id: SecureHash) -> frozenset[SecureHash]:
        with self._closure_lock:
            if tx_id in self._closures:
                self._closures.move_to_end(tx_id)
                return self._closures[tx_id]
        stored = self.store.get_stored(tx_id)
        if stored is None:
            raise TransactionNotFoundError(str(tx_id))
        seen: set[SecureHash] = set()
        stack = [r.txhash for r in (*stored.stx.tx.inputs, *stored.stx.tx.references)]
        while stack:
            h = stack.pop()
            if h in seen:
                continue
            seen.add(h)
            wire = self.store.producing_transaction(h)
            if wire is not None:
                stack.extend(r.txhash for r in (*wire.inputs, *wire.references))
        closure = frozenset(seen)
        with self._closure_lock:
            self._closures[tx_id] = closure
            while len(self._closures) > 64:
                self._closures.popitem(last=False)
        return closure

    def _receive_context(self, tx_id: SecureHash) -> FlowContext | None:
        for cp in self.store.iter_checkpoints(FlowStatus.RUNNABLE, tx_id=tx_id, flow_name=RECEIVE_FLOW):
            return self.runner.context_of(cp.flow_id)
        return None

    def _on_signatures(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        sigs: tuple[TransactionSignature, ...] = decode_signatures(
            ser.expect(payload.get("signatures"), bytes, "signatures")
        )
        stored = self.store.get_stored(tx_id)
        if stored is None:
            raise TransactionNotFoundError(str(tx_id))
        ctx = self._receive_context(tx_id)
        if stored.status is not TransactionStatus.VERIFIED:
            if ctx is not None:
                ctx.step("BEFORE_FINALISE")
            # Verified again in full: only a real notary signature finalises.
            self.ledger.record(
                stored.stx.with_signatures(*sigs), state_machine_run_id=stored.state_machine_run_id
            )
        if ctx is not None:
            ctx.step("FINALISED")
            self.runner.finish(ctx, FlowStatus.COMPLETED)
        return {"ack": True}

    def _on_abort(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("tx_id"), str, "tx_id"), "tx_id")
        reason = str(payload.get("reason", ""))
        if not any(r.sender == sender for r in self.store.receiver_records(tx_id)):
            raise TransactionAccessDeniedError(str(sender), str(tx_id), "only its sender may withdraw it")
        removed = self.store.remove_in_flight(tx_id)
        ctx = self._receive_context(tx_id)
        if ctx is not None:
            ctx.step("ABORTED")
            self.runner.finish(ctx, FlowStatus.FAILED, f"NotaryConflictError: {reason}")
        return {"removed": removed}

    # -- notary --------------------------------------------------------------------------------------

    def _on_notarise(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        assert self.notary is not None
        stx = SignedTransaction.deserialize(ser.expect(payload.get("tx"), bytes, "tx"))
        signature = self.notary.notarise(stx, requester=requester)
        return {"signatures": encode_signatures([signature])}


def _checkpoint_value(stx: SignedTransaction, receivers: dict[X500Name, StatesToRecord]) -> bytes:
    """What recovery needs to resume: the transaction (with any notary signature) and who gets it."""
    return ser.encode({"tx": stx.serialize(), "receivers": {str(p): int(h) for p, h in receivers.items()}})

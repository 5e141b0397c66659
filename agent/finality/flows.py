"""FinalityFlow and ReceiveFinalityFlow as durable flows: each named step is a checkpoint.

Initiator (FinalityFlow):
    VERIFIED            every signature checked but the notary's; contracts and back-chain verified
    AFTER_RECORD        recorded IN_FLIGHT (VERIFIED for an issuance) with one SenderDistribution
                        record per receiver, in the same database transaction as this checkpoint
    AFTER_BROADCAST     every receiver has recorded it IN_FLIGHT (and acknowledged)
    AFTER_NOTARISE      the notary signed; its signature is in the checkpoint (a conflict instead:
                        ABORTED, the IN_FLIGHT row removed with that checkpoint, receivers told)
    BEFORE_SEND_SIGNATURE / AFTER_SEND_SIGNATURE
                        the notary's signature goes to every receiver, which finalises at once
    FINALISED           the initiator finalises last, with the checkpoint that completes the flow
Receiver (ReceiveFinalityFlow): RECEIVED, BACKCHAIN_RESOLVED, RECORDED, BEFORE_FINALISE, FINALISED.

Everything a step decides once (the record timestamp, the discriminator, the sealed distribution
list) is in the flow's state from the start, so a replayed step sends the same bytes and the
receivers' records keep the sender's key. Every message is idempotent on the receiving side: a
repeated broadcast is acknowledged by the flow it started, a repeated signature by a VERIFIED row,
and the notary signs the same transaction again. A receiver at RECORDED that hears nothing from its
initiator for `outcome_timeout` asks it for the outcome instead of waiting for ever.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from agent.clock import Clock, from_epoch_ms, to_epoch_ms
from agent.errors import (
    FinalityError,
    IdentityError,
    NotaryConflictError,
    PeerError,
    PeerRequestError,
    TransactionNotFoundError,
    TransactionResolutionError,
)
from agent.flows.flow import STARTED, Advance, Await, Flow, FlowContext, StepOutcome
from agent.ledger import serialization as ser
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party, X500Name
from agent.ledger.transactions import SignedTransaction, decode_signatures, encode_signatures
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.network.network_map import NetworkMap
from agent.ports.distribution import DistributionRecords
from agent.ports.transactions import TransactionStore
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.distribution_list import DistributionList, PublicHeader, encrypt, read_header
from agent.services.ledger_service import LedgerService

log = logging.getLogger("ledger_agent.finality")

TOPIC_TRANSACTION = "finality.transaction"
TOPIC_BACKCHAIN = "finality.backchain"
TOPIC_SIGNATURES = "finality.signatures"
TOPIC_ABORT = "finality.abort"
TOPIC_OUTCOME = "finality.outcome"
TOPIC_KILLED = "finality.killed"
TOPIC_NOTARISE = "notary.notarise"
TOPIC_RECOVER_FINALISE = "finality.recovery.finalise"  # served by recovery_receiver

FINALITY_FLOW = "FinalityFlow"
RECEIVE_FLOW = "ReceiveFinalityFlow"
BACKCHAIN_BATCH = 500
MAX_BACKCHAIN = 1_000_000
DEFAULT_OUTCOME_TIMEOUT = timedelta(seconds=60)

# Outcomes an initiator reports to a receiver that asks (TOPIC_OUTCOME).
OUTCOME_VERIFIED, OUTCOME_ABORTED, OUTCOME_IN_FLIGHT, OUTCOME_UNKNOWN = (
    "VERIFIED",
    "ABORTED",
    "IN_FLIGHT",
    "UNKNOWN",
)


class Peers(Protocol):
    """The peer client, as finality needs it."""

    def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any: ...


@dataclass(frozen=True)
class FinalityDeps:
    """What finality's flows and peer handlers use; one per node, given to every flow the engine rebuilds."""

    identity: Party
    ledger: LedgerService
    transactions: TransactionStore
    distribution: DistributionRecords
    peers: Peers
    aes_keys: NodeAesKeys
    clock: Clock
    network_map: NetworkMap
    outcome_timeout: timedelta = DEFAULT_OUTCOME_TIMEOUT


def withdrawal_refused(deps: FinalityDeps, tx_id: SecureHash, sender: X500Name) -> str | None:
    """Why sender may not withdraw (abort) the transaction here; None when it may.

    Only the initiator of its finality may: a party that sent it to us and is one of its required
    signers (the initiator signs what it finalises), or else the only party that sent it to us. Any
    member may send us a transaction it holds (an observer passing it on) and so hold a receiver
    record of it; that alone must not let it undo another party's finality (issue 16, item 2).
    """
    senders = {r.sender for r in deps.distribution.receiver_records(tx_id)}
    if sender not in senders:
        return "only its sender may withdraw it"
    if senders == {sender}:
        return None
    stored = deps.transactions.get_stored(tx_id)
    try:
        key = deps.network_map.node(sender).party.owning_key
    except IdentityError:
        key = None
    if stored is not None and key is not None and key in stored.stx.tx.required_signers():
        return None
    return (
        "only the initiator of its finality may withdraw it: "
        f"{', '.join(sorted(str(s) for s in senders - {sender}))} sent it to us too, and {sender} is not its signer"
    )


# Like Corda's JVM-global AtomicInteger: it tells apart records made in the same second; not persisted.
_discriminator = itertools.count()
_discriminator_lock = threading.Lock()


def _next_discriminator() -> int:
    with _discriminator_lock:
        return next(_discriminator) % 2**31


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


class _FinalityFlowBase(Flow):
    deps: FinalityDeps
    stx: SignedTransaction

    def _remove_in_flight(self) -> None:
        self.deps.transactions.remove_in_flight(self.stx.id)

    @property
    def _first_phase_status(self) -> TransactionStatus:
        """IN_FLIGHT until the notary signs; an issuance needs no notary and is VERIFIED at once."""
        return TransactionStatus.IN_FLIGHT if self.stx.tx.needs_notarisation else TransactionStatus.VERIFIED


class FinalityFlow(_FinalityFlowBase):
    name = FINALITY_FLOW

    def __init__(self, state: dict[str, Any], deps: FinalityDeps) -> None:
        super().__init__(state)
        self.deps = deps
        self.stx = SignedTransaction.deserialize(ser.expect(state["tx"], bytes, "tx"))
        self.receivers = {
            X500Name.parse(name): StatesToRecord(how) for name, how in dict(state["receivers"]).items()
        }

    @classmethod
    def create(
        cls, stx: SignedTransaction, receivers: dict[X500Name, StatesToRecord], deps: FinalityDeps
    ) -> FinalityFlow:
        """A new flow, with the record key and the sealed distribution list decided once."""
        timestamp = _whole_seconds(deps.clock.now())
        discriminator = _next_discriminator()
        key_id, key = deps.aes_keys.pick()
        sealed = encrypt(
            DistributionList(StatesToRecord.ONLY_RELEVANT, {p.peer_id: how for p, how in receivers.items()}),
            PublicHeader(timestamp, discriminator),
            key_id,
            key,
        )
        state = {
            "tx": stx.serialize(),
            "receivers": {str(p): int(how) for p, how in sorted(receivers.items())},
            "timestamp": to_epoch_ms(timestamp),
            "discriminator": discriminator,
            "sealed": sealed,
        }
        return cls(state, deps)

    @property
    def tx_id(self) -> SecureHash:
        return self.stx.id

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return tuple(sorted(self.receivers))

    def _set_tx(self, stx: SignedTransaction) -> None:
        self.stx = stx
        self.state["tx"] = stx.serialize()

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        deps, stx = self.deps, self.stx
        needs_notary = stx.tx.needs_notarisation
        match progress_step:
            case "STARTED":
                deps.ledger.verify(stx, check_notary_signature=False)
                return Advance("VERIFIED")
            case "VERIFIED":
                return Advance("AFTER_RECORD", effect=lambda: self._record_first_phase(ctx.flow_id))
            case "AFTER_RECORD":
                for peer, how in sorted(self.receivers.items()):
                    payload = {"tx": stx.serialize(), "distribution": self.state["sealed"]}
                    payload["states_to_record"] = int(how)
                    deps.peers.request(peer, TOPIC_TRANSACTION, payload)
                return Advance("AFTER_BROADCAST")
            case "AFTER_BROADCAST" if not needs_notary:
                return Advance("FINALISED", done=True, result=stx)
            case "AFTER_BROADCAST":
                return self._notarise()
            case "AFTER_NOTARISE":
                return Advance("BEFORE_SEND_SIGNATURE")
            case "BEFORE_SEND_SIGNATURE":
                sigs = encode_signatures(self._notary_signatures())
                for peer in sorted(self.receivers):
                    try:
                        deps.peers.request(peer, TOPIC_SIGNATURES, {"tx_id": str(stx.id), "signatures": sigs})
                    except PeerRequestError as exc:
                        if exc.error_type != TransactionNotFoundError.__name__:
                            raise
                        self._finalise_at(peer)
                return Advance("AFTER_SEND_SIGNATURE")
            case "AFTER_SEND_SIGNATURE":
                return Advance(
                    "FINALISED",
                    effect=lambda: self._finalise(ctx.flow_id),
                    done=True,
                    result=stx,
                )
            case "ABORTED":
                return self._tell_receivers_of_abort()
        raise FinalityError(f"{FINALITY_FLOW} has no step after {progress_step}")

    def _record_first_phase(self, flow_id: str) -> None:
        stx = self.stx
        timestamp = from_epoch_ms(int(self.state["timestamp"]))
        discriminator = int(self.state["discriminator"])
        self.deps.transactions.record_transaction(
            stx,
            status=self._first_phase_status,
            states_to_record=StatesToRecord.ONLY_RELEVANT,
            state_machine_run_id=flow_id,
            sender_records=[
                SenderDistribution(stx.id, peer, timestamp, discriminator, StatesToRecord.ONLY_RELEVANT, how)
                for peer, how in sorted(self.receivers.items())
            ],
        )

    def _notarise(self) -> StepOutcome:
        stx = self.stx
        assert stx.tx.notary is not None
        try:
            reply = self.deps.peers.request(stx.tx.notary.name, TOPIC_NOTARISE, {"tx": stx.serialize()})
        except NotaryConflictError as conflict:
            self.state["conflicts"] = dict(conflict.conflicts)
            # Every party removes its IN_FLIGHT copy: ours goes with the ABORTED checkpoint.
            return Advance("ABORTED", effect=self._remove_in_flight)
        notary_sigs = decode_signatures(ser.expect(reply.get("signatures"), bytes, "notary reply"))
        self._set_tx(stx.with_signatures(*notary_sigs))
        return Advance("AFTER_NOTARISE")

    def _finalise_at(self, peer: X500Name) -> None:
        """A receiver that lost the transaction since phase one (restored from a backup, say) gets the
        whole notarised transaction, as finality recovery would send it: a signature alone would leave
        it notarised and VERIFIED nowhere (found by the simulation, docs/simulation.md)."""
        log.warning("%s no longer holds %s: it is sent the notarised transaction", peer, self.stx.id)
        payload = {
            "tx": self.stx.serialize(),
            "distribution": self.state["sealed"],
            "states_to_record": int(self.receivers[peer]),
        }
        self.deps.peers.request(peer, TOPIC_RECOVER_FINALISE, payload)

    def _notary_signatures(self) -> list[Any]:
        notary = self.stx.tx.notary
        assert notary is not None
        return [s for s in self.stx.sigs if s.by == notary.owning_key]

    def _finalise(self, flow_id: str) -> None:
        self.deps.ledger.record(self.stx, state_machine_run_id=flow_id)

    def _conflict(self) -> NotaryConflictError:
        return NotaryConflictError(str(self.stx.id), dict(self.state.get("conflicts", {})))

    def _tell_receivers_of_abort(self) -> StepOutcome:
        conflict = self._conflict()
        for peer in sorted(self.receivers):
            try:
                self.deps.peers.request(
                    peer, TOPIC_ABORT, {"tx_id": str(self.stx.id), "reason": str(conflict)}
                )
            except PeerError as exc:  # it will ask us for the outcome (ABORTED) when it times out
                log.warning("could not tell %s to drop %s: %s", peer, self.stx.id, exc)
        return Advance("ABORTED", fail=conflict)

    def on_killed(self) -> None:
        """Receivers end their side; they keep the transaction IN_FLIGHT for finality recovery.

        Nothing is withdrawn: the notary may have signed in a step that was under way (or that a
        crash cut off before its checkpoint), and only recovery can tell and finish or undo it.
        """
        for peer in sorted(self.receivers):
            try:
                self.deps.peers.request(peer, TOPIC_KILLED, {"tx_id": str(self.stx.id)})
            except PeerError as exc:  # it asks us for the outcome later and hears IN_FLIGHT
                log.warning(
                    "could not tell %s that the finality of %s was killed: %s", peer, self.stx.id, exc
                )


class ReceiveFinalityFlow(_FinalityFlowBase):
    name = RECEIVE_FLOW

    def __init__(self, state: dict[str, Any], deps: FinalityDeps) -> None:
        super().__init__(state)
        self.deps = deps
        self.stx = SignedTransaction.deserialize(ser.expect(state["tx"], bytes, "tx"))
        self.sender = X500Name.parse(ser.expect(state["sender"], str, "sender"))

    @classmethod
    def create(
        cls,
        stx: SignedTransaction,
        sender: X500Name,
        sealed: bytes,
        how: StatesToRecord,
        deps: FinalityDeps,
    ) -> ReceiveFinalityFlow:
        state = {"tx": stx.serialize(), "sender": str(sender), "distribution": sealed, "how": int(how)}
        return cls(state, deps)

    @property
    def tx_id(self) -> SecureHash:
        return self.stx.id

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return (self.sender,)

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        deps, stx = self.deps, self.stx
        needs_notary = stx.tx.needs_notarisation
        match progress_step:
            case "STARTED":
                return Advance("RECEIVED")
            case "RECEIVED":
                ordered = deps.ledger.verify_chain(self._fetch_backchain())
                return Advance("BACKCHAIN_RESOLVED", effect=lambda: self._record_chain(ordered))
            case "BACKCHAIN_RESOLVED":
                deps.ledger.verify(stx, check_notary_signature=not needs_notary)
                return Advance("RECORDED", effect=lambda: self._record_first_phase(ctx.flow_id))
            case "RECORDED" if not needs_notary:
                return Advance("FINALISED", done=True, result=stx)
            case "RECORDED":
                return self._await_outcome(ctx)
            case "BEFORE_FINALISE":
                final = stx.with_signatures(*decode_signatures(bytes(self.state["signatures"])))
                return Advance(
                    "FINALISED",
                    effect=lambda: self._finalise(final, ctx.flow_id),
                    done=True,
                    result=final,
                )
        raise FinalityError(f"{RECEIVE_FLOW} has no step after {progress_step}")

    def _record_chain(self, ordered: list[SignedTransaction]) -> None:
        for dep in ordered:  # parents first, as the ledger ordered them
            self.deps.transactions.record_transaction(dep)

    def _record_first_phase(self, flow_id: str) -> None:
        stx = self.stx
        sealed = ser.expect(self.state["distribution"], bytes, "distribution")
        header = read_header(sealed)
        how = StatesToRecord(int(self.state["how"]))
        record = ReceiverDistribution(
            stx.id, self.sender, header.sender_recorded_timestamp, header.time_discriminator, sealed, how
        )
        self.deps.transactions.record_transaction(
            stx,
            status=self._first_phase_status,
            states_to_record=how,
            state_machine_run_id=flow_id,
            receiver_record=record,
        )

    def _finalise(self, final: SignedTransaction, flow_id: str) -> None:
        # Verified again in full: only a real notary signature finalises.
        self.deps.ledger.record(
            final, states_to_record=StatesToRecord(int(self.state["how"])), state_machine_run_id=flow_id
        )

    def _await_outcome(self, ctx: FlowContext) -> StepOutcome:
        signatures = ctx.message("signatures")
        reason = ctx.message("abort")
        if signatures is None and reason is None and ctx.message("killed") is not None:
            error = FinalityError(
                f"{self.sender} killed its FinalityFlow for {self.stx.id}; "
                "the transaction stays IN_FLIGHT for finality recovery"
            )
            return Advance("RECORDED", fail=error)
        if signatures is None and reason is None and ctx.timed_out:
            signatures, reason = self._ask_initiator()
        if signatures is not None:
            self.state["signatures"] = bytes(signatures)
            return Advance("BEFORE_FINALISE")
        if reason is not None:
            return Advance(
                "ABORTED",
                effect=self._remove_in_flight,
                fail=FinalityError(f"NotaryConflictError: {reason}"),
            )
        if self.deps.transactions.transaction_status(self.stx.id) is TransactionStatus.VERIFIED:
            # Finalised meanwhile by another path (a later transaction's back-chain brought it).
            return Advance("FINALISED", done=True, result=self.stx)
        return Await(
            ("signatures", "abort", "killed"),
            ctx.now + self.deps.outcome_timeout,
            f"the notary's signature from {self.sender}",
        )

    def _ask_initiator(self) -> tuple[bytes | None, str | None]:
        """(signatures, abort reason) as the initiator reports them; (None, None) to go on waiting."""
        try:
            reply = self.deps.peers.request(self.sender, TOPIC_OUTCOME, {"tx_id": str(self.stx.id)})
        except PeerError as exc:
            log.info("asked %s for the outcome of %s: %s", self.sender, self.stx.id, exc)
            return None, None
        status = reply.get("status")
        if status == OUTCOME_VERIFIED:
            return ser.expect(reply.get("signatures"), bytes, "signatures"), None
        if status == OUTCOME_ABORTED:
            return None, str(reply.get("reason", ""))
        return None, None

    def _fetch_backchain(self) -> list[SignedTransaction]:
        return fetch_backchain(self.deps, self.stx, self.sender)


def fetch_backchain(deps: FinalityDeps, stx: SignedTransaction, sender: X500Name) -> list[SignedTransaction]:
    """The transactions of stx's back-chain not VERIFIED here, fetched from its sender, unordered.

    The sender serves only the back-chain of a transaction it sent us (its sender records say so).
    """
    transactions = deps.transactions
    fetched: dict[SecureHash, SignedTransaction] = {}
    wanted = {r.txhash for r in (*stx.tx.inputs, *stx.tx.references)}
    wanted = {h for h in wanted if transactions.transaction_status(h) is not TransactionStatus.VERIFIED}
    while wanted:
        batch = sorted(wanted)[:BACKCHAIN_BATCH]
        reply = deps.peers.request(
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
                known = ref.txhash in fetched or ref.txhash in wanted
                if (
                    not known
                    and transactions.transaction_status(ref.txhash) is not TransactionStatus.VERIFIED
                ):
                    wanted.add(ref.txhash)
        if len(fetched) > MAX_BACKCHAIN:
            raise FinalityError(f"back-chain of {stx.id} exceeds {MAX_BACKCHAIN} transactions")
    return list(fetched.values())  # the ledger leaves out what is VERIFIED here meanwhile


__all__ = [
    "FINALITY_FLOW",
    "RECEIVE_FLOW",
    "STARTED",
    "FinalityDeps",
    "FinalityFlow",
    "ReceiveFinalityFlow",
    "fetch_backchain",
]

"""What must hold once the network is quiescent; each check returns the violations it found, in words.

- no acknowledged transaction lost: every party of a call that returned its transaction holds it VERIFIED
  (a node restored from a backup, once it has run Ledger Recovery, too: but for one that every party
  lost to a restore and that no node holds)
- no double spend: no state is an input of two VERIFIED transactions (anywhere), and of a deliberate
  double spend at most one transaction survives, anywhere
- no IN_FLIGHT row left, on any node
- each vault holds exactly the unconsumed outputs it should: the outputs of the network's VERIFIED
  transactions that no VERIFIED transaction consumed and that the node owns
- every party of a transaction holds the same status (the initiator, its receivers and observers as its
  sender records name them, the owners of its inputs and outputs)
- no flow failed but by a notary conflict (a payment must not be lost to a dropped message or a crash)
- the notary agrees: every transaction it signed is VERIFIED somewhere (a notarised transaction that
  nobody finalised leaves its inputs spent at the notary and unspendable for ever), and every input of
  a VERIFIED transaction is committed at the notary to that very transaction
- no call of the workload raised anything outside the agent's error tree
"""

from __future__ import annotations

from collections import defaultdict

from agent.flows.checkpoints import FlowStatus
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction, StateRef
from agent.ledger.vault import RelevancyStatus, TransactionStatus
from agent.store.ledger_store import LedgerStore, StoredTransaction
from tests.simulation.network import NODES, NOTARY, Simulation
from tests.simulation.workload import Record


def _owners(stx: SignedTransaction, index: int) -> set[X500Name]:
    return {p.name for p in stx.tx.outputs[index].participants}


def _status(txs: dict[SecureHash, StoredTransaction], tx_id: SecureHash) -> TransactionStatus | None:
    stored = txs.get(tx_id)
    return None if stored is None else stored.status


def check(sim: Simulation, record: Record) -> list[str]:
    stores: dict[X500Name, LedgerStore] = {name: sim.runtime(name).node.store for name in NODES}
    held: dict[X500Name, dict[SecureHash, StoredTransaction]] = {
        name: {s.stx.id: s for s in store.transactions.iter_transactions()} for name, store in stores.items()
    }
    violations = [f"unexpected error: {e}" for e in record.unexpected]

    # No IN_FLIGHT (or other unfinished) row left.
    for name, txs in held.items():
        for tx_id, stored in txs.items():
            if stored.status is not TransactionStatus.VERIFIED:
                violations.append(f"{name.organisation} holds {tx_id} {stored.status.name}")

    verified: dict[SecureHash, SignedTransaction] = {}
    for txs in held.values():
        for tx_id, stored in txs.items():
            if stored.status is TransactionStatus.VERIFIED:
                verified.setdefault(tx_id, stored.stx)

    # No double spend.
    consumers: dict[StateRef, set[SecureHash]] = defaultdict(set)
    for tx_id, stx in verified.items():
        for ref in stx.tx.inputs:
            consumers[ref].add(tx_id)
    for ref, spenders in consumers.items():
        if len(spenders) > 1:
            violations.append(f"{ref} spent by {sorted(map(str, spenders))}")
    for first, second in record.double_spends:
        if first in verified and second in verified:
            violations.append(f"both {first} and {second} are VERIFIED: a double spend")

    # No acknowledged transaction lost. But for the documented unrecoverable: one that every party
    # lost to a restore (each held it when it died for the restore, its backup did not) and that no
    # node holds, so no recovery has anyone to get it from: an issuance to itself observed by nobody,
    # or one whose holders were all restored from backups older than it (seed 2203).
    anywhere = {tx_id for txs in held.values() for tx_id in txs}
    for ack in record.acknowledged:
        if ack.stx.id not in anywhere and all(ack.stx.id in sim.lost.get(p, ()) for p in ack.parties):
            continue
        for party in sorted(ack.parties):
            status = _status(held[party], ack.stx.id)
            if status is not TransactionStatus.VERIFIED:
                violations.append(
                    f"acknowledged {ack.stx.id} ({ack.what}) is {status} at {party.organisation}"
                )

    # Every party holds the same status.
    for tx_id, stx in verified.items():
        parties: set[X500Name] = set()
        for index in range(len(stx.tx.outputs)):
            parties |= _owners(stx, index)
        for ref in stx.tx.inputs:
            producer = verified.get(ref.txhash)
            if producer is not None:
                parties |= _owners(producer, ref.index)
        for name, store in stores.items():
            records = store.distribution.sender_records(tx_id)
            if records:
                parties |= {name, *(r.peer for r in records)}
        for party in sorted(parties & set(NODES)):
            status = _status(held[party], tx_id)
            if status is not TransactionStatus.VERIFIED:
                violations.append(f"{tx_id} is VERIFIED elsewhere but {status} at {party.organisation}")

    # Each vault holds what it should.
    spent = set(consumers)
    for name, store in stores.items():
        expected = {
            StateRef(tx_id, index)
            for tx_id, stx in verified.items()
            for index in range(len(stx.tx.outputs))
            if name in _owners(stx, index) and StateRef(tx_id, index) not in spent
        }
        actual = {v.ref for v in store.vault.iter_vault_states(relevancy=RelevancyStatus.RELEVANT)}
        for ref in sorted(expected - actual, key=str):
            violations.append(f"{name.organisation}'s vault lacks unconsumed {ref}")
        for ref in sorted(actual - expected, key=str):
            violations.append(
                f"{name.organisation}'s vault holds {ref}, which it should not (consumed or not its)"
            )

    # The notary agrees with the ledger.
    notary_store = sim.runtime(NOTARY).node.store
    notary = notary_store.schema
    for row in notary.notary_committed_txs.select():
        if SecureHash.parse(row.transaction_id) not in verified:
            violations.append(f"{row.transaction_id} was notarised but is VERIFIED nowhere")
    for tx_id, stx in verified.items():
        for ref in stx.tx.inputs:
            consumer = notary_store.uniqueness.consumer_of(ref)
            if consumer != tx_id:
                violations.append(f"{tx_id} consumed {ref}, but the notary says {consumer}")

    # No flow failed but by a notary conflict.
    for name, store in stores.items():
        for cp in store.checkpoints.iter_checkpoints(FlowStatus.FAILED):
            if cp.progress_step != "ABORTED":
                violations.append(
                    f"{name.organisation}: {cp.flow_name} {cp.flow_id[:8]} for {cp.tx_id} failed at "
                    f"{cp.progress_step}: {cp.error}"
                )
    return violations

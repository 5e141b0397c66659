"""The notary's tables: committed states, committed transactions and the request log."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import StateRef
from agent.store.database import write_transaction
from agent.store.models import Schema


def ref_key(ref: StateRef) -> str:
    """node_notary_committed_states.state_ref: "TXID:index"."""
    return f"{ref.txhash}:{ref.index}"


class CommittedStatesRepository:
    """The notary's committed states of one store (implements agent.ports.uniqueness.CommittedStates)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def is_committed(self, tx_id: SecureHash) -> bool:
        txs = self.schema.notary_committed_txs
        return bool(txs.select().where(txs.transaction_id == str(tx_id)).exists())

    def consumer_of(self, ref: StateRef) -> SecureHash | None:
        states = self.schema.notary_committed_states
        row = states.get_or_none(states.state_ref == ref_key(ref))
        return None if row is None else SecureHash.parse(row.consuming_transaction_id)

    def consumers_of(self, refs: Collection[StateRef]) -> dict[StateRef, SecureHash]:
        if not refs:
            return {}
        states = self.schema.notary_committed_states
        keys = {ref_key(r): r for r in refs}
        return {
            keys[row.state_ref]: SecureHash.parse(row.consuming_transaction_id)
            for row in states.select().where(states.state_ref.in_(list(keys)))
        }

    def log_request(self, tx_id: SecureHash, requester: X500Name | None, at: datetime) -> None:
        self.schema.notary_request_log.insert(
            consuming_transaction_id=str(tx_id),
            requesting_party_name=None if requester is None else str(requester),
            request_timestamp=at,
        ).execute()

    def commit(self, tx_id: SecureHash, inputs: Sequence[StateRef], at: datetime) -> None:
        states, txs = self.schema.notary_committed_states, self.schema.notary_committed_txs
        me = str(tx_id)
        # Plain inserts, no ON CONFLICT: a lost race must fail here (ConstraintViolationError).
        with write_transaction(self.schema.database):
            if inputs:
                states.insert_many(
                    [{"state_ref": ref_key(r), "consuming_transaction_id": me} for r in inputs]
                ).execute()
            txs.insert(transaction_id=me, committed_at=at).execute()

"""Commits consumed state refs; refuses a double spend with the transaction that consumed the state.

Committing is one database transaction. Two racing requests for the same state both try to insert its
row; the database's primary key lets one win, and the loser re-reads and reports the winner as the
conflict, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.clock import Clock
from agent.errors import ConstraintViolationError, NotaryConflictError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import StateRef
from agent.store.database import write_transaction
from agent.store.models import Schema


def ref_key(ref: StateRef) -> str:
    """node_notary_committed_states.state_ref: "TXID:index"."""
    return f"{ref.txhash}:{ref.index}"


class UniquenessProvider:
    def __init__(self, schema: Schema, clock: Clock) -> None:
        self.schema = schema
        self.clock = clock

    def is_committed(self, tx_id: SecureHash) -> bool:
        txs = self.schema.notary_committed_txs
        return txs.select().where(txs.transaction_id == str(tx_id)).exists()

    def consumer_of(self, ref: StateRef) -> SecureHash | None:
        states = self.schema.notary_committed_states
        row = states.get_or_none(states.state_ref == ref_key(ref))
        return None if row is None else SecureHash.parse(row.consuming_transaction_id)

    def commit(
        self,
        tx_id: SecureHash,
        inputs: Sequence[StateRef],
        references: Sequence[StateRef] = (),
        requester: X500Name | None = None,
    ) -> None:
        """Consume the inputs for tx_id; references must be unconsumed and stay so. Idempotent."""
        for attempt in (1, 2):
            try:
                self._commit_once(tx_id, inputs, references, requester)
                return
            except ConstraintViolationError:
                # Lost a race for one of the rows: the second pass sees the winner as a conflict.
                if attempt == 2:
                    raise

    def _commit_once(
        self,
        tx_id: SecureHash,
        inputs: Sequence[StateRef],
        references: Sequence[StateRef],
        requester: X500Name | None,
    ) -> None:
        db = self.schema.database
        states, txs, log = (
            self.schema.notary_committed_states,
            self.schema.notary_committed_txs,
            self.schema.notary_request_log,
        )
        me = str(tx_id)
        now = self.clock.now()
        with write_transaction(db):
            log.insert(
                consuming_transaction_id=me,
                requesting_party_name=None if requester is None else str(requester),
                request_timestamp=now,
            ).execute()
            if txs.select().where(txs.transaction_id == me).exists():
                return
            keys = {ref_key(r): r for r in (*inputs, *references)}
            consumed = {
                row.state_ref: row.consuming_transaction_id
                for row in states.select().where(states.state_ref.in_(list(keys)))
            }
            conflicts = {
                str(ref): consumed[key]
                for key, ref in keys.items()
                if key in consumed and (consumed[key] != me or ref in references)
            }
            if conflicts:
                raise NotaryConflictError(me, conflicts)
            if inputs:
                states.insert_many(
                    [{"state_ref": ref_key(r), "consuming_transaction_id": me} for r in inputs]
                ).execute()
            txs.insert(transaction_id=me, committed_at=now).execute()

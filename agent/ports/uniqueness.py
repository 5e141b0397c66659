"""The notary's committed states (node_notary_committed_states, _txs, _request_log).

The conflict rule lives with the notary (agent.notary.uniqueness); this port only reads and writes
rows, inside a unit of work the notary opens, so that checking and committing are one transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import StateRef


class CommittedStates(Protocol):
    """Which transaction consumed each state ref, and which transactions the notary committed."""

    def is_committed(self, tx_id: SecureHash) -> bool:
        """Whether the notary committed (and signed) this transaction."""
        ...

    def consumer_of(self, ref: StateRef) -> SecureHash | None:
        """The transaction that consumed this state, None while unconsumed."""
        ...

    def consumers_of(self, refs: Collection[StateRef]) -> dict[StateRef, SecureHash]:
        """The consumed ones among these refs, with their consumers."""
        ...

    def log_request(self, tx_id: SecureHash, requester: X500Name | None, at: datetime) -> None:
        """Note who asked to commit what, and when."""
        ...

    def commit(self, tx_id: SecureHash, inputs: Sequence[StateRef], at: datetime) -> None:
        """Mark the inputs consumed by tx_id and the transaction committed.

        A ref (or the transaction) already there raises ConstraintViolationError: the database's
        keys decide a race between two notarisations, never a read before the write.
        """
        ...

"""Commits consumed state refs; refuses a double spend with the transaction that consumed the state.

Committing is one unit of work: the request is logged, the refs' consumers read, and the inputs
consumed together or not at all. Two racing requests for the same state both try to insert its row;
the database's primary key lets one win, and the loser, on its second pass, reads the winner and
reports it as the conflict, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.clock import Clock
from agent.errors import ConstraintViolationError, NotaryConflictError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import StateRef
from agent.ports.uniqueness import CommittedStates
from agent.ports.unit_of_work import UnitOfWork


def conflicts(
    tx_id: SecureHash,
    inputs: Sequence[StateRef],
    references: Sequence[StateRef],
    consumers: dict[StateRef, SecureHash],
) -> dict[str, str]:
    """Each ref another transaction consumed (or a reference consumed at all) -> its consumer."""
    found: dict[str, str] = {}
    for ref in (*inputs, *references):
        consumer = consumers.get(ref)
        # An input consumed by this very transaction is a repeated request, not a conflict.
        if consumer is not None and (consumer != tx_id or ref in references):
            found[str(ref)] = str(consumer)
    return found


class UniquenessProvider:
    """The notary's uniqueness rule over its committed states, one unit of work per request."""

    def __init__(self, states: CommittedStates, unit: UnitOfWork, clock: Clock) -> None:
        self.states = states
        self.unit = unit
        self.clock = clock

    def is_committed(self, tx_id: SecureHash) -> bool:
        return self.states.is_committed(tx_id)

    def consumer_of(self, ref: StateRef) -> SecureHash | None:
        return self.states.consumer_of(ref)

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
        now = self.clock.now()
        # A conflict raises inside the unit, so its log row goes with the rollback, as before.
        with self.unit.unit_of_work():
            self.states.log_request(tx_id, requester, now)
            if self.states.is_committed(tx_id):
                return
            found = conflicts(tx_id, inputs, references, self.states.consumers_of({*inputs, *references}))
            if found:
                raise NotaryConflictError(str(tx_id), found)
            self.states.commit(tx_id, inputs, now)

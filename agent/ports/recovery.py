"""Ledger Recovery's own tables: the missing transactions it found, its results, and its cursors.

- node_recovery_missing: the intermediate table. A run writes what a peer's records show we lack
  (with what is needed to rebuild our records) before it fetches anything; a row stays PENDING until
  the transaction is recovered or found unrecoverable, so an interrupted run's rows are picked up by
  the next one instead of being looked for again.
- node_recovery_results: a RecoveryResult per transaction and run, kept for analysis; a transaction
  with a synchronised result here was recovered, not traded anew.
- node_recovery_cursors: per (peer, record type, time window), the key of the last record walked.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agent.ports.distribution import RecordCursor

PENDING, RECOVERED, UNRECOVERABLE = "PENDING", "RECOVERED", "UNRECOVERABLE"
LEDGERSYNC = "LEDGERSYNC"  # the record type of a row LedgerSync found: no distribution record of it


@dataclass(frozen=True)
class MissingTransaction:
    """A record of a peer's that we lack (and maybe its transaction too)."""

    tx_id: str
    peer: str  # the peer's X.500 name
    record_type: (
        str  # SENDER (the peer's sender record naming us) or RECEIVER (the peer's receiver record from us)
    )
    role: str  # our TransactionRole in it: INITIATOR, PEER or OBSERVER
    timestamp: datetime
    timestamp_discriminator: int
    states_to_record: int  # what we record it with
    distribution_list: bytes  # the encrypted list: the peer's (SENDER) or ours (RECEIVER)
    flow_id: str = ""
    status: str = PENDING
    failure_cause: str | None = None
    attempts: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class RecoveryResultRow:
    """Corda's RecoveryResult, with the run and the time it was written."""

    flow_id: str
    tx_id: str
    peer: str
    role: str
    synchronised: bool
    synchronised_initiated: bool
    failure_cause: str | None
    at: datetime


@dataclass(frozen=True)
class PeerRecoveryProgress:
    """One peer's rows of node_recovery_missing, summed for monitoring (one aggregate query)."""

    peer: str
    counts: dict[str, int]  # status (PENDING, RECOVERED, UNRECOVERABLE) -> rows
    changed_since: dict[str, int]  # status -> rows whose updated_at is at or after `since`
    last_change: datetime | None  # the latest updated_at: a row found, recovered or given up


@dataclass(frozen=True)
class LaneKey:
    """Where a cursor belongs: one peer, one record type, one time window (epoch ms, open = None)."""

    peer: str
    record_type: str
    from_ms: int | None
    until_ms: int | None


class RecoveryLog(Protocol):
    """Reads and writes of the three tables; writes join the caller's unit of work."""

    def add_missing(self, rows: Sequence[MissingTransaction]) -> int:
        """Insert what is not there yet (key: tx id, peer, record type); the rows inserted."""
        ...

    def pending(
        self,
        *,
        peer: str | None = None,
        limit: int = 1000,
        ledgersync: bool | None = None,
        until: tuple[datetime, int] | None = None,
    ) -> list[MissingTransaction]:
        """PENDING rows, oldest record first (timestamp, discriminator); ledgersync True or False for
        only, or none of, the rows LedgerSync found (record type LEDGERSYNC); until: only rows whose
        (timestamp, discriminator) is at or before it."""
        ...

    def missing(
        self, *, status: str | None = None, tx_ids: Collection[str] = (), limit: int | None = None
    ) -> list[MissingTransaction]:
        """Rows by status and transaction, in record order."""
        ...

    def pending_states_to_record(self, tx_ids: Collection[str]) -> dict[str, set[int]]:
        """For those of tx_ids with PENDING rows, the states_to_record their rows name (-1: none given)."""
        ...

    def mark(
        self, tx_id: str, peer: str, record_type: str, status: str, failure_cause: str | None, at: datetime
    ) -> None:
        """Move one row on (attempts + 1 when it stays PENDING or becomes UNRECOVERABLE)."""
        ...

    def requeue(self, peers: Collection[str], *, updated_before: datetime | None = None) -> int:
        """UNRECOVERABLE rows of these peers (last tried before updated_before, when given) back to
        PENDING, to be asked for again; how many."""
        ...

    def mark_many(self, marks: Sequence[tuple[str, str, str, str, str | None]], at: datetime) -> None:
        """mark for each (tx_id, peer, record_type, status, failure_cause), in a few statements."""
        ...

    def count_missing(self) -> dict[str, dict[str, int]]:
        """peer -> status -> rows."""
        ...

    def progress_since(self, since: datetime) -> dict[str, PeerRecoveryProgress]:
        """peer -> its rows by status, those changed at or after since, and its latest change."""
        ...

    def add_results(self, rows: Sequence[RecoveryResultRow]) -> None: ...

    def results(self, flow_id: str | None = None, *, limit: int | None = None) -> list[RecoveryResultRow]:
        """A run's results (every run's when None), in the order written."""
        ...

    def recovered(self, tx_ids: Collection[str]) -> set[str]:
        """Of these, the transactions a run synchronised."""
        ...

    def cursor(self, lane: LaneKey) -> RecordCursor | None: ...

    def save_cursor(self, lane: LaneKey, cursor: RecordCursor, at: datetime) -> None: ...

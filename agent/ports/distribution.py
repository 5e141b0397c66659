"""Recovery distribution records: by transaction, and by peer and time window for Ledger Recovery.

Recording a transaction writes them (TransactionStore.record_transaction); this port reads them.
Paged reads come in (timestamp, timestamp_discriminator, transaction id) order, the peer's id last
so that the order is total (a sender's records for one transaction share the first three), and
resume after a cursor: records written meanwhile before the cursor are not seen again, later ones are.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name

R = TypeVar("R", SenderDistribution, ReceiverDistribution)


@dataclass(frozen=True)
class TimeWindow:
    """[from_time, until_time): an open end when None; consecutive windows never share a record."""

    from_time: datetime | None = None
    until_time: datetime | None = None


ALL_TIME = TimeWindow()


@dataclass(frozen=True, order=True)
class RecordCursor:
    """The key of the last record of a page: the next page starts after it."""

    timestamp: datetime
    timestamp_discriminator: int
    transaction_id: str  # upper-case hex, as stored
    peer_party_id: str


@dataclass(frozen=True)
class RecordPage(Generic[R]):
    """One page of records, in key order; next is None when no record follows."""

    records: list[R] = field(default_factory=list)
    next: RecordCursor | None = None


class DistributionRecords(Protocol):
    """Reads of node_sender_distr_recs and node_receiver_distr_recs."""

    def sender_records(self, tx_id: SecureHash) -> list[SenderDistribution]:
        """The records of a transaction we sent, one per receiving peer."""
        ...

    def receiver_records(self, tx_id: SecureHash) -> list[ReceiverDistribution]:
        """The records of a transaction we received, one per sender."""
        ...

    def sender_records_of(self, tx_ids: Collection[SecureHash]) -> dict[SecureHash, list[SenderDistribution]]:
        """sender_records for many transactions in a few queries: those with none are left out."""
        ...

    def ids_with_records(self, peer: X500Name, tx_ids: Collection[SecureHash]) -> set[SecureHash]:
        """Of these transactions, those we sent to peer or received from it (any record naming it)."""
        ...

    def record_keys(
        self, record_type: str, peer: X500Name, tx_ids: Collection[str]
    ) -> set[tuple[str, datetime, int]]:
        """Of our records with that peer (SENDER: sent to it; RECEIVER: received from it) for these
        transactions, the keys (transaction id, timestamp, discriminator) that exist."""
        ...

    def transactions_without_records(self, *, after: str | None = None, limit: int = 1000) -> list[str]:
        """Ids (upper-case hex, in order, after `after`) of our transactions with no distribution
        record at all: no finality sent them to a peer nor brought them from one."""
        ...

    def sender_records_page(
        self,
        *,
        peers: Collection[X500Name] = (),
        window: TimeWindow = ALL_TIME,
        after: RecordCursor | None = None,
        page_size: int | None = None,
    ) -> RecordPage[SenderDistribution]:
        """Records sent to these peers (any peer when empty) within the window, after the cursor."""
        ...

    def receiver_records_page(
        self,
        *,
        peers: Collection[X500Name] = (),
        window: TimeWindow = ALL_TIME,
        after: RecordCursor | None = None,
        page_size: int | None = None,
    ) -> RecordPage[ReceiverDistribution]:
        """Records received from these senders (any when empty) within the window, after the cursor."""
        ...

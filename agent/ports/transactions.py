"""Recording, finalising and reading the node's transactions (node_transactions)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import SignedTransaction, StateRef, WireTransaction
from agent.ledger.vault import StatesToRecord, TransactionStatus

TransactionListener = Callable[[SignedTransaction, TransactionStatus], None]


@dataclass(frozen=True)
class StoredTransaction:
    """A transaction row: the transaction, its status, when it was recorded, and by which flow."""

    stx: SignedTransaction
    status: TransactionStatus
    timestamp: datetime
    state_machine_run_id: str | None


@dataclass(frozen=True)
class RawTransaction:
    """A transaction row's two columns and its status: a peer serves it without parsing it."""

    status: TransactionStatus
    wire: bytes
    signatures: bytes

    def stx(self) -> SignedTransaction:
        return SignedTransaction.from_parts(self.wire, self.signatures)

    def serialized(self) -> bytes:
        """SignedTransaction.serialize() of the row, without parsing the transaction."""
        return SignedTransaction.serialize_parts(self.wire, self.signatures)


@dataclass(frozen=True)
class Recording:
    """One transaction to record, as record_transaction's arguments: for record_transactions."""

    stx: SignedTransaction
    status: TransactionStatus = TransactionStatus.VERIFIED
    states_to_record: StatesToRecord = StatesToRecord.ONLY_RELEVANT
    sender_records: Sequence[SenderDistribution] = ()
    receiver_record: ReceiverDistribution | None = None


@dataclass(frozen=True)
class StatusTimes:
    """When the rows in one status were recorded (or last changed status): how many, the oldest, and
    per cut-off asked for, how many at or after it."""

    count: int
    oldest: datetime | None
    since: tuple[int, ...] = ()


class TransactionReader(Protocol):
    """Reads of node_transactions (only VERIFIED rows count as the ledger), and news of each change."""

    def add_listener(self, listener: TransactionListener) -> None:
        """Called after each commit that records a transaction or changes its status."""
        ...

    def get_stored(self, tx_id: SecureHash) -> StoredTransaction | None:
        """The row in whatever status it is."""
        ...

    def get_transaction(self, tx_id: SecureHash) -> SignedTransaction | None:
        """A VERIFIED transaction; like Corda's getTransaction, other statuses are hidden."""
        ...

    def require_transaction(self, tx_id: SecureHash) -> SignedTransaction:
        """A VERIFIED transaction, or TransactionNotFoundError."""
        ...

    def transaction_status(self, tx_id: SecureHash) -> TransactionStatus | None:
        """The row's status, None when there is no row."""
        ...

    def transaction_statuses(self, tx_ids: Collection[SecureHash]) -> dict[SecureHash, TransactionStatus]:
        """The status of each of these that has a row, in a few queries (Ledger Recovery's batches)."""
        ...

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        """The resolver verification uses: only VERIFIED transactions count as back-chain."""
        ...

    def raw_transactions(self, tx_ids: Collection[SecureHash]) -> dict[SecureHash, RawTransaction]:
        """The rows found of these, in whatever status, as stored (parsed only when asked): a few queries."""
        ...

    def producing_transactions(self, txhashes: Collection[SecureHash]) -> dict[SecureHash, WireTransaction]:
        """producing_transaction for many in a few queries: the VERIFIED ones found."""
        ...

    def count_transactions(self, status: TransactionStatus | None = None) -> int:
        """Rows in that status (all when None)."""
        ...

    def status_times(self, status: TransactionStatus, since: Sequence[datetime] = ()) -> StatusTimes:
        """One aggregate query: the rows in status, the oldest timestamp, and per cut-off in since the
        rows whose timestamp is at or after it (the finality ages monitoring reads at each scrape)."""
        ...

    def iter_transaction_ids(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[SecureHash]:
        """Every id in id order, one page (one query) at a time."""
        ...

    def transaction_id_pages(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[list[str]]:
        """Pages of hex ids in id order, each one keyset query."""
        ...

    def iter_transactions(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[StoredTransaction]:
        """Every row in id order, a page at a time."""
        ...

    def in_flight_inputs(self) -> set[StateRef]:
        """The inputs of our IN_FLIGHT transactions: spent unless their finality is undone (soft locks)."""
        ...


class TransactionStore(TransactionReader, Protocol):
    """Recording (idempotent, VERIFIED never overwritten), undoing IN_FLIGHT, and the reads."""

    def record_transaction(
        self,
        stx: SignedTransaction,
        *,
        status: TransactionStatus = TransactionStatus.VERIFIED,
        states_to_record: StatesToRecord = StatesToRecord.ONLY_RELEVANT,
        state_machine_run_id: str | None = None,
        sender_records: Iterable[SenderDistribution] = (),
        receiver_record: ReceiverDistribution | None = None,
    ) -> bool:
        """Record (or finalise) with its vault updates and distribution records in one transaction.

        False when it was already recorded in that status. VERIFIED over IN_FLIGHT or UNVERIFIED
        merges the signatures and updates the vault; nothing overwrites a VERIFIED row.
        """
        ...

    def record_transactions(self, recordings: Sequence[Recording]) -> list[bool]:
        """record_transaction for each, parents first, in one database transaction; what it returns
        for each. Those new to the store are written a table at a time (Ledger Recovery's batches)."""
        ...

    def record_distribution(
        self, sender_records: Sequence[SenderDistribution], receiver_records: Sequence[ReceiverDistribution]
    ) -> None:
        """The distribution records of transactions the store holds, without touching the transactions
        or the vault (what record_transaction writes for a transaction recorded already): Ledger
        Recovery rebuilding the records a restore lost, without reading the transactions back."""
        ...

    def remove_in_flight(self, tx_id: SecureHash) -> bool:
        """Undo the first phase after a notary conflict: the IN_FLIGHT row and its distribution rows."""
        ...

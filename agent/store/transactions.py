"""node_transactions: recording (with the vault and distribution records), finalising, paged reads.

Recording a transaction is one database transaction: the transaction row, its vault updates and its
distribution records are written together or not at all. Recording the same transaction again is a
no-op, never an error (a Corda failure mode, corda/corda#3188 and #4447). Reads are paged by key, so a
ledger of millions of transactions is never loaded whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from functools import lru_cache

import peewee

from agent.clock import Clock
from agent.errors import TransactionNotFoundError
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import SignedTransaction, StateRef, WireTransaction, decode_signatures
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.ports.paging import check_page_size
from agent.ports.transactions import (
    RawTransaction,
    Recording,
    StatusTimes,
    StoredTransaction,
    TransactionListener,
)
from agent.store.bulk import insert_rows, select_in
from agent.store.database import write_transaction
from agent.store.distribution import DistributionRepository
from agent.store.models import NodeTransaction, Schema, UtcDateTimeField
from agent.store.unit_of_work import PeeweeUnitOfWork
from agent.store.vault import VaultRepository


# 1,024, not 8,192: entries made all along a long recovery and kept until evicted are scattered among
# the batches' short-lived objects, and the heap pages they pin kept a 100,000-transaction recovery
# at 185 MB RSS (145 MB at 1,024, no slower: bench/recover.py, BENCHMARKS.md).
@lru_cache(maxsize=1024)
def _wire(raw: bytes) -> WireTransaction:
    # Only verified rows come through here, and those never change: safe to share decoded copies.
    return WireTransaction.deserialize(raw)


def _upgrades(current: TransactionStatus, wanted: TransactionStatus) -> bool:
    """VERIFIED is final; IN_FLIGHT only moves to VERIFIED; UNVERIFIED moves to either."""
    if current is wanted or current is TransactionStatus.VERIFIED:
        return False
    return wanted is TransactionStatus.VERIFIED or current is TransactionStatus.UNVERIFIED


def _stored(row: NodeTransaction) -> StoredTransaction:
    return StoredTransaction(
        stx=SignedTransaction.from_parts(bytes(row.transaction_value), bytes(row.signatures)),
        status=TransactionStatus(row.status),
        timestamp=row.timestamp,
        state_machine_run_id=row.state_machine_run_id,
    )


class TransactionRepository:
    """The transactions of one store (implements agent.ports.transactions.TransactionStore)."""

    def __init__(
        self,
        schema: Schema,
        unit: PeeweeUnitOfWork,
        vault: VaultRepository,
        distribution: DistributionRepository,
        clock: Clock,
        page_size: int,
    ) -> None:
        self.schema = schema
        self.database = schema.database
        self.unit = unit
        self.vault = vault
        self.distribution = distribution
        self.clock = clock
        self.page_size = page_size

    def add_listener(self, listener: TransactionListener) -> None:
        self.unit.add_listener(listener)

    # -- recording -----------------------------------------------------------------------------------

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
        """Record (or finalise) a transaction; False when it was already recorded in that status.

        VERIFIED over an IN_FLIGHT or UNVERIFIED row finalises it: the signatures are merged and
        the vault is updated. Nothing overwrites a VERIFIED row.
        """
        nt = self.schema.node_transactions
        tx_id = str(stx.id)
        now = self.clock.now()
        with write_transaction(self.database):
            row = nt.select(nt.status, nt.signatures).where(nt.tx_id == tx_id).first()
            changed = False
            if row is None:
                inserted = (
                    nt.insert(
                        tx_id=tx_id,
                        state_machine_run_id=state_machine_run_id,
                        transaction_value=stx.tx.serialized,
                        signatures=stx.serialize_signatures(),
                        status=status.value,
                        timestamp=now,
                    )
                    .on_conflict(action="NOTHING")
                    .as_rowcount()
                    .execute()
                )
                changed = inserted == 1
            elif _upgrades(TransactionStatus(row.status), status):
                merged = SignedTransaction(stx.tx, decode_signatures(bytes(row.signatures)))
                merged = merged.with_signatures(*stx.sigs)
                # Conditional on the status read: a racing writer that finalised first wins.
                updated = (
                    nt.update(status=status.value, signatures=merged.serialize_signatures(), timestamp=now)
                    .where((nt.tx_id == tx_id) & (nt.status == row.status))
                    .execute()
                )
                changed = updated == 1
            if changed and status is TransactionStatus.VERIFIED:
                self.vault.record_outputs(stx.tx, states_to_record, now)
            self.distribution.write(sender_records, receiver_record)
        if changed:
            self.unit.notify(stx, status)
        return changed

    def record_transactions(self, recordings: Sequence[Recording]) -> list[bool]:
        """A transaction the store has no row of is written with the others, a table at a time; so are
        the records of one it holds (or that came earlier in the batch) in a status this one would not
        change. Only a status change (finalising an IN_FLIGHT row) goes through record_transaction,
        in its place in the order, so that parents still come first."""
        changed = [False] * len(recordings)
        new: list[int] = []
        with write_transaction(self.database):
            status = self.transaction_statuses([r.stx.id for r in recordings])
            run: list[tuple[Recording, bool]] = []  # (recording, new to the store)
            for i, recording in enumerate(recordings):
                current = status.get(recording.stx.id)
                if current is None:
                    status[recording.stx.id] = recording.status
                    run.append((recording, True))
                    new.append(i)
                elif not _upgrades(current, recording.status):
                    run.append((recording, False))  # only its records, as record_transaction would
                else:
                    self._write_run(run)
                    run = []
                    changed[i] = self.record_transaction(
                        recording.stx,
                        status=recording.status,
                        states_to_record=recording.states_to_record,
                        sender_records=recording.sender_records,
                        receiver_record=recording.receiver_record,
                    )
                    status[recording.stx.id] = recording.status
            self._write_run(run)
        for j in new:
            changed[j] = True
            self.unit.notify(recordings[j].stx, recordings[j].status)
        return changed

    def _write_run(self, run: Sequence[tuple[Recording, bool]]) -> None:
        """The rows and vault updates of the new ones, and everyone's records: a statement per table."""
        if not run:
            return
        now = self.clock.now()
        when = UtcDateTimeField().db_value(now)
        fresh = [r for r, is_new in run if is_new]
        insert_rows(
            self.database,
            self.schema.node_transactions,
            ("tx_id", "transaction_value", "signatures", "status", "timestamp"),
            [
                (str(r.stx.id), r.stx.tx.serialized, r.stx.serialize_signatures(), r.status.value, when)
                for r in fresh
            ],
        )
        self.vault.record_outputs_many(
            [(r.stx.tx, r.states_to_record) for r in fresh if r.status is TransactionStatus.VERIFIED], now
        )
        self.distribution.write_many(
            [s for r, _ in run for s in r.sender_records],
            [r.receiver_record for r, _ in run if r.receiver_record is not None],
        )

    def record_distribution(
        self, sender_records: Sequence[SenderDistribution], receiver_records: Sequence[ReceiverDistribution]
    ) -> None:
        with write_transaction(self.database):
            self.distribution.write_many(sender_records, receiver_records)

    def remove_in_flight(self, tx_id: SecureHash) -> bool:
        """Undo the first phase after a notary conflict: the IN_FLIGHT row and its distribution rows."""
        nt = self.schema.node_transactions
        with write_transaction(self.database):
            deleted = (
                nt.delete()
                .where((nt.tx_id == str(tx_id)) & (nt.status == TransactionStatus.IN_FLIGHT.value))
                .execute()
            )
            if deleted:
                self.distribution.delete(tx_id)
        return bool(deleted)

    def in_flight_inputs(self) -> set[StateRef]:
        """The inputs of our IN_FLIGHT transactions: spent unless their finality is undone (soft locks)."""
        nt = self.schema.node_transactions
        rows = nt.select(nt.transaction_value).where(nt.status == TransactionStatus.IN_FLIGHT.value)
        spent: set[StateRef] = set()
        for row in rows.iterator():
            spent.update(WireTransaction.deserialize(bytes(row.transaction_value)).inputs)
        return spent

    # -- reading -------------------------------------------------------------------------------------

    def get_stored(self, tx_id: SecureHash) -> StoredTransaction | None:
        nt = self.schema.node_transactions
        row = nt.get_or_none(nt.tx_id == str(tx_id))
        return None if row is None else _stored(row)

    def get_transaction(self, tx_id: SecureHash) -> SignedTransaction | None:
        stored = self.get_stored(tx_id)
        if stored is None or stored.status is not TransactionStatus.VERIFIED:
            return None
        return stored.stx

    def require_transaction(self, tx_id: SecureHash) -> SignedTransaction:
        stx = self.get_transaction(tx_id)
        if stx is None:
            raise TransactionNotFoundError(str(tx_id))
        return stx

    def transaction_status(self, tx_id: SecureHash) -> TransactionStatus | None:
        nt = self.schema.node_transactions
        row = nt.select(nt.status).where(nt.tx_id == str(tx_id)).first()
        return None if row is None else TransactionStatus(row.status)

    def transaction_statuses(self, tx_ids: Collection[SecureHash]) -> dict[SecureHash, TransactionStatus]:
        nt = self.schema.node_transactions
        wanted = {str(h): h for h in tx_ids}
        ids = sorted(wanted)
        found: dict[SecureHash, TransactionStatus] = {}
        for tx_id, status in select_in(self.database, nt, ("tx_id", "status"), "tx_id", ids):
            found[wanted[str(tx_id)]] = TransactionStatus(status)
        return found

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        nt = self.schema.node_transactions
        row = (
            nt.select(nt.transaction_value)
            .where((nt.tx_id == str(txhash)) & (nt.status == TransactionStatus.VERIFIED.value))
            .first()
        )
        return None if row is None else _wire(bytes(row.transaction_value))

    def raw_transactions(self, tx_ids: Collection[SecureHash]) -> dict[SecureHash, RawTransaction]:
        nt = self.schema.node_transactions
        wanted = {str(h): h for h in tx_ids}
        ids = sorted(wanted)
        found: dict[SecureHash, RawTransaction] = {}
        columns = ("tx_id", "status", "transaction_value", "signatures")
        for tx_id, status, wire, signatures in select_in(self.database, nt, columns, "tx_id", ids):
            found[wanted[tx_id]] = RawTransaction(TransactionStatus(status), bytes(wire), bytes(signatures))
        return found

    def producing_transactions(self, txhashes: Collection[SecureHash]) -> dict[SecureHash, WireTransaction]:
        nt = self.schema.node_transactions
        wanted = {str(h): h for h in txhashes}
        ids = sorted(wanted)
        found: dict[SecureHash, WireTransaction] = {}
        rows = select_in(
            self.database,
            nt,
            ("tx_id", "transaction_value"),
            "tx_id",
            ids,
            '"status" = ?',
            (TransactionStatus.VERIFIED.value,),
        )
        for tx_id, raw in rows:
            found[wanted[tx_id]] = _wire(bytes(raw))
        return found

    def count_transactions(self, status: TransactionStatus | None = None) -> int:
        nt = self.schema.node_transactions
        query = nt.select()
        if status is not None:
            query = query.where(nt.status == status.value)
        return int(query.count())

    def status_times(self, status: TransactionStatus, since: Sequence[datetime] = ()) -> StatusTimes:
        nt = self.schema.node_transactions
        columns: list[peewee.Node] = [
            peewee.fn.COUNT(nt.tx_id),
            peewee.fn.MIN(nt.timestamp).python_value(nt.timestamp.python_value),
        ]
        columns += [peewee.fn.SUM(peewee.Case(None, [(nt.timestamp >= cut, 1)], 0)) for cut in since]
        row = nt.select(*columns).where(nt.status == status.value).tuples().first()
        count, oldest, *counts = row if row is not None else (0, None, *([None] * len(since)))
        assert oldest is None or isinstance(oldest, datetime)
        return StatusTimes(int(count or 0), oldest, tuple(int(c or 0) for c in counts))

    def iter_transaction_ids(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[SecureHash]:
        for page in self.transaction_id_pages(status=status, page_size=page_size):
            yield from (SecureHash(bytes.fromhex(h)) for h in page)

    def transaction_id_pages(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[list[str]]:
        """Pages of hex ids by keyset pagination: each page is one indexed range query."""
        size = check_page_size(self.page_size if page_size is None else page_size)
        nt = self.schema.node_transactions
        last = ""
        while True:
            query = nt.select(nt.tx_id).where(nt.tx_id > last)
            if status is not None:
                query = query.where(nt.status == status.value)
            # The driver's cursor directly: peewee's row wrapping costs three times the query here.
            page: list[str] = [
                r[0] for r in self.database.execute(query.order_by(nt.tx_id).limit(size)).fetchall()
            ]
            if not page:
                return
            yield page
            if len(page) < size:
                return
            last = page[-1]

    def iter_transactions(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[StoredTransaction]:
        size = check_page_size(self.page_size if page_size is None else page_size)
        nt = self.schema.node_transactions
        last = ""
        while True:
            query = nt.select().where(nt.tx_id > last)
            if status is not None:
                query = query.where(nt.status == status.value)
            rows = list(query.order_by(nt.tx_id).limit(size))
            yield from (_stored(row) for row in rows)
            if len(rows) < size:
                return
            last = rows[-1].tx_id

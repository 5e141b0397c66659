"""The node's ledger store: transactions, vault, distribution records, AES keys and checkpoints.

Recording a transaction is one database transaction: the transaction row, its vault updates and its
distribution records are written together or not at all. Recording the same transaction again is a
no-op, never an error (a Corda failure mode, corda/corda#3188 and #4447). Reads are paged by key, so a
ledger of millions of transactions is never loaded whole.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import peewee

from agent.clock import Clock, SystemClock
from agent.errors import ConfigurationError, StoreError, TransactionNotFoundError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.keys import PublicKey
from agent.ledger.transactions import (
    SignedTransaction,
    StateRef,
    TransactionState,
    WireTransaction,
    decode_signatures,
    decode_state,
    encode_state,
)
from agent.ledger.vault import (
    RelevancyStatus,
    StateStatus,
    StatesToRecord,
    TransactionStatus,
    outputs_to_record,
)
from agent.store.database import describe, is_sqlite, open_database, write_transaction
from agent.store.db_errors import opening
from agent.store.migrations import migrate
from agent.store.models import Checkpoint as CheckpointRow
from agent.store.models import NodeTransaction, Schema, bind_schema

MIN_PAGE_SIZE, MAX_PAGE_SIZE = 1, 10_000_000


@dataclass(frozen=True)
class StoredTransaction:
    """A transaction row: the transaction, its status, when it was recorded, and by which flow."""

    stx: SignedTransaction
    status: TransactionStatus
    timestamp: datetime
    state_machine_run_id: str | None


@dataclass(frozen=True)
class VaultRecord:
    ref: StateRef
    state: TransactionState
    notary_name: str | None
    state_status: StateStatus
    relevancy_status: RelevancyStatus
    recorded_timestamp: datetime
    consumed_timestamp: datetime | None
    consuming_tx_id: SecureHash | None


@lru_cache(maxsize=8192)
def _wire(raw: bytes) -> WireTransaction:
    # Only verified rows come through here, and those never change: safe to share decoded copies.
    return WireTransaction.deserialize(raw)


def _upgrades(current: TransactionStatus, wanted: TransactionStatus) -> bool:
    """VERIFIED is final; IN_FLIGHT only moves to VERIFIED; UNVERIFIED moves to either."""
    if current is wanted or current is TransactionStatus.VERIFIED:
        return False
    return wanted is TransactionStatus.VERIFIED or current is TransactionStatus.UNVERIFIED


def _key_hash(key: PublicKey) -> str:
    return hashlib.sha256(key.raw).hexdigest()


def check_page_size(page_size: int, key: str = "pageSize") -> int:
    if (
        isinstance(page_size, bool)
        or not isinstance(page_size, int)
        or not (MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE)
    ):
        raise ConfigurationError(
            key, page_size, f"allowed: an integer from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}"
        )
    return page_size


class LedgerStore:
    """One node's store. Give it a database URL or a peewee Database; it binds its own models."""

    def __init__(
        self,
        database: str | peewee.Database,
        *,
        our_keys: Collection[PublicKey] = (),
        clock: Clock | None = None,
        page_size: int = 1000,
    ) -> None:
        self.database = open_database(database)
        self.schema: Schema = bind_schema(self.database)
        self.our_keys = frozenset(our_keys)
        self.clock = clock or SystemClock()
        self.page_size = check_page_size(page_size)
        self._listeners: list[Callable[[SignedTransaction, TransactionStatus], None]] = []
        self._unit = threading.local()
        # Say where, never how we logged in: describe() leaves the password out.
        with opening(describe(self.database)):
            migrate(self.schema)

    def add_listener(self, listener: Callable[[SignedTransaction, TransactionStatus], None]) -> None:
        """Called after each commit that records a transaction or changes its status (not by bulk_record)."""
        self._listeners.append(listener)

    def _notify(self, stx: SignedTransaction, status: TransactionStatus) -> None:
        pending: list[tuple[SignedTransaction, TransactionStatus]] | None = getattr(
            self._unit, "pending", None
        )
        if pending is not None:
            pending.append((stx, status))  # heard once the unit of work commits, never if it rolls back
            return
        for listener in self._listeners:
            listener(stx, status)

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One database transaction around several writes (a flow step's effects and its checkpoint).

        Writes inside nest as savepoints; listeners hear of recorded transactions after the commit.
        """
        outer = getattr(self._unit, "pending", None) is None
        if outer:
            self._unit.pending = []
        try:
            with write_transaction(self.database):
                yield
        except BaseException:
            if outer:
                self._unit.pending = None
            raise
        if outer:
            events, self._unit.pending = self._unit.pending, None
            for stx, status in events:
                self._notify(stx, status)

    def close(self) -> None:
        if not self.database.is_closed():
            self.database.close()

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
                updated = (
                    nt.update(status=status.value, signatures=merged.serialize_signatures(), timestamp=now)
                    .where((nt.tx_id == tx_id) & (nt.status == row.status))
                    .execute()
                )
                changed = updated == 1
            if changed and status is TransactionStatus.VERIFIED:
                self._update_vault(stx.tx, states_to_record, now)
            self._write_distribution(sender_records, receiver_record)
        if changed:
            self._notify(stx, status)
        return changed

    def _update_vault(self, tx: WireTransaction, states_to_record: StatesToRecord, now: datetime) -> None:
        vs, sp = self.schema.vault_states, self.schema.state_party
        tx_id = str(tx.id)
        chosen = outputs_to_record(tx, self.our_keys, states_to_record)
        notary = str(tx.notary.name) if tx.notary else None
        if chosen:
            vs.insert_many(
                [
                    {
                        "transaction_id": tx_id,
                        "output_index": index,
                        "contract_state_class_name": tx.outputs[index].contract,
                        "contract_state": encode_state(tx.outputs[index]),
                        "notary_name": notary,
                        "state_status": StateStatus.UNCONSUMED,
                        "relevancy_status": relevancy,
                        "recorded_timestamp": now,
                    }
                    for index, relevancy in chosen
                ]
            ).on_conflict(action="NOTHING").execute()
            parties = {
                (index, _key_hash(p.owning_key)): str(p.name)
                for index, _ in chosen
                for p in tx.outputs[index].participants
            }
            sp.insert_many(
                [
                    {"transaction_id": tx_id, "output_index": i, "public_key_hash": h, "x500_name": n}
                    for (i, h), n in parties.items()
                ]
            ).on_conflict(action="NOTHING").execute()
        for ref in tx.inputs:
            vs.update(state_status=StateStatus.CONSUMED, consumed_timestamp=now, consuming_tx_id=tx_id).where(
                (vs.transaction_id == str(ref.txhash))
                & (vs.output_index == ref.index)
                & (vs.state_status == StateStatus.UNCONSUMED)
            ).execute()

    def _ensure_party(self, name: X500Name) -> str:
        self.schema.recovery_party_info.insert(party_id=name.peer_id, party_name=str(name)).on_conflict(
            action="NOTHING"
        ).execute()
        return name.peer_id

    def _write_distribution(
        self, sender_records: Iterable[SenderDistribution], receiver_record: ReceiverDistribution | None
    ) -> None:
        sdr, rdr = self.schema.sender_distr_recs, self.schema.receiver_distr_recs
        for rec in sender_records:
            sdr.insert(
                transaction_id=str(rec.tx_id),
                peer_party_id=self._ensure_party(rec.peer),
                timestamp=rec.timestamp,
                timestamp_discriminator=rec.timestamp_discriminator,
                sender_states_to_record=rec.sender_states_to_record,
                receiver_states_to_record=rec.receiver_states_to_record,
            ).on_conflict(action="NOTHING").execute()
        if receiver_record is not None:
            rec2 = receiver_record
            # saveOrUpdate in Corda: a repeated broadcast refreshes the row instead of failing.
            rdr.insert(
                transaction_id=str(rec2.tx_id),
                peer_party_id=self._ensure_party(rec2.sender),
                timestamp=rec2.timestamp,
                timestamp_discriminator=rec2.timestamp_discriminator,
                distribution_list=rec2.distribution_list,
                receiver_states_to_record=rec2.receiver_states_to_record,
            ).on_conflict(
                conflict_target=[
                    rdr.peer_party_id,
                    rdr.timestamp,
                    rdr.timestamp_discriminator,
                    rdr.transaction_id,
                ],
                preserve=[rdr.distribution_list, rdr.receiver_states_to_record],
            ).execute()

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
                for model in (self.schema.sender_distr_recs, self.schema.receiver_distr_recs):
                    model.delete().where(model.transaction_id == str(tx_id)).execute()
        return bool(deleted)

    def in_flight_inputs(self) -> set[StateRef]:
        """The inputs of our IN_FLIGHT transactions: spent unless their finality is undone (soft locks)."""
        nt = self.schema.node_transactions
        rows = nt.select(nt.transaction_value).where(nt.status == TransactionStatus.IN_FLIGHT.value)
        spent: set[StateRef] = set()
        for row in rows.iterator():
            spent.update(WireTransaction.deserialize(bytes(row.transaction_value)).inputs)
        return spent

    # -- reading transactions ------------------------------------------------------------------------

    def _stored(self, row: NodeTransaction) -> StoredTransaction:
        return StoredTransaction(
            stx=SignedTransaction.from_parts(bytes(row.transaction_value), bytes(row.signatures)),
            status=TransactionStatus(row.status),
            timestamp=row.timestamp,
            state_machine_run_id=row.state_machine_run_id,
        )

    def get_stored(self, tx_id: SecureHash) -> StoredTransaction | None:
        """The row in whatever status it is."""
        nt = self.schema.node_transactions
        row = nt.get_or_none(nt.tx_id == str(tx_id))
        return None if row is None else self._stored(row)

    def get_transaction(self, tx_id: SecureHash) -> SignedTransaction | None:
        """A VERIFIED transaction; like Corda's getTransaction, other statuses are hidden."""
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

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        """The resolver verification uses: only VERIFIED transactions count as back-chain."""
        nt = self.schema.node_transactions
        row = (
            nt.select(nt.transaction_value)
            .where((nt.tx_id == str(txhash)) & (nt.status == TransactionStatus.VERIFIED.value))
            .first()
        )
        return None if row is None else _wire(bytes(row.transaction_value))

    def count_transactions(self, status: TransactionStatus | None = None) -> int:
        nt = self.schema.node_transactions
        query = nt.select()
        if status is not None:
            query = query.where(nt.status == status.value)
        return int(query.count())

    def iter_transaction_ids(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[SecureHash]:
        """Every id in id order, one page (one query) at a time."""
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
            for row in rows:
                yield self._stored(row)
            if len(rows) < size:
                return
            last = rows[-1].tx_id

    # -- the vault -----------------------------------------------------------------------------------

    def iter_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = RelevancyStatus.RELEVANT,
        contract: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[VaultRecord]:
        size = check_page_size(self.page_size if page_size is None else page_size)
        vs = self.schema.vault_states
        after: tuple[str, int] = ("", -1)
        while True:
            query = vs.select().where(peewee.Tuple(vs.transaction_id, vs.output_index) > after)
            if state_status is not None:
                query = query.where(vs.state_status == state_status)
            if relevancy is not None:
                query = query.where(vs.relevancy_status == relevancy)
            if contract is not None:
                query = query.where(vs.contract_state_class_name == contract)
            rows = list(query.order_by(vs.transaction_id, vs.output_index).limit(size))
            for row in rows:
                yield VaultRecord(
                    ref=StateRef(SecureHash.parse(row.transaction_id), row.output_index),
                    state=decode_state(bytes(row.contract_state)),
                    notary_name=row.notary_name,
                    state_status=StateStatus(row.state_status),
                    relevancy_status=RelevancyStatus(row.relevancy_status),
                    recorded_timestamp=row.recorded_timestamp,
                    consumed_timestamp=row.consumed_timestamp,
                    consuming_tx_id=None
                    if row.consuming_tx_id is None
                    else SecureHash.parse(row.consuming_tx_id),
                )
            if len(rows) < size:
                return
            after = (rows[-1].transaction_id, rows[-1].output_index)

    def count_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = None,
    ) -> int:
        vs = self.schema.vault_states
        query = vs.select()
        if state_status is not None:
            query = query.where(vs.state_status == state_status)
        if relevancy is not None:
            query = query.where(vs.relevancy_status == relevancy)
        return int(query.count())

    # -- distribution records ------------------------------------------------------------------------

    def _party_name(self, party_id: str) -> X500Name:
        info = self.schema.recovery_party_info
        row = info.get(info.party_id == party_id)
        return X500Name.parse(row.party_name)

    def sender_records(self, tx_id: SecureHash) -> list[SenderDistribution]:
        sdr = self.schema.sender_distr_recs
        rows = sdr.select().where(sdr.transaction_id == str(tx_id)).order_by(sdr.peer_party_id)
        return [
            SenderDistribution(
                tx_id=tx_id,
                peer=self._party_name(r.peer_party_id),
                timestamp=r.timestamp,
                timestamp_discriminator=r.timestamp_discriminator,
                sender_states_to_record=StatesToRecord(r.sender_states_to_record),
                receiver_states_to_record=StatesToRecord(r.receiver_states_to_record),
            )
            for r in rows
        ]

    def receiver_records(self, tx_id: SecureHash) -> list[ReceiverDistribution]:
        rdr = self.schema.receiver_distr_recs
        rows = rdr.select().where(rdr.transaction_id == str(tx_id)).order_by(rdr.peer_party_id)
        return [
            ReceiverDistribution(
                tx_id=tx_id,
                sender=self._party_name(r.peer_party_id),
                timestamp=r.timestamp,
                timestamp_discriminator=r.timestamp_discriminator,
                distribution_list=bytes(r.distribution_list),
                receiver_states_to_record=StatesToRecord(r.receiver_states_to_record),
            )
            for r in rows
        ]

    # -- AES keys ------------------------------------------------------------------------------------

    def aes_keys(self) -> dict[str, bytes]:
        """Wrapped key material by key id."""
        keys = self.schema.aes_encryption_keys
        return {r.key_id: bytes(r.key_material) for r in keys.select().order_by(keys.key_id)}

    def add_aes_keys(self, wrapped: dict[str, bytes]) -> None:
        keys = self.schema.aes_encryption_keys
        with write_transaction(self.database):
            keys.insert_many([{"key_id": k, "key_material": v} for k, v in wrapped.items()]).on_conflict(
                action="NOTHING"
            ).execute()

    def add_aes_keys_if_none(self, wrapped: dict[str, bytes]) -> bool:
        """Store these keys only if the node has none yet (first start); True when stored."""
        keys = self.schema.aes_encryption_keys
        with write_transaction(self.database):
            if keys.select().exists():
                return False
            keys.insert_many([{"key_id": k, "key_material": v} for k, v in wrapped.items()]).execute()
        return True

    # -- checkpoints ---------------------------------------------------------------------------------

    def save_checkpoint(self, checkpoint: FlowCheckpoint) -> None:
        cp = self.schema.checkpoints
        values = {
            "flow_id": checkpoint.flow_id,
            "flow_name": checkpoint.flow_name,
            "status": int(checkpoint.status),
            "progress_step": checkpoint.progress_step,
            "counterparties": json.dumps([str(n) for n in checkpoint.counterparties]),
            "tx_id": None if checkpoint.tx_id is None else str(checkpoint.tx_id),
            "started_at": checkpoint.started_at,
            "timestamp": checkpoint.updated_at,
            "error": checkpoint.error,
            "checkpoint_value": checkpoint.value,
        }
        with write_transaction(self.database):
            cp.insert(**values).on_conflict(
                conflict_target=[cp.flow_id],
                update={getattr(cp, k): v for k, v in values.items() if k not in ("flow_id", "started_at")},
            ).execute()

    def update_checkpoint(self, checkpoint: FlowCheckpoint, *, value_changed: bool = True) -> None:
        """A flow's progress on its existing row; the state's bytes are written only when they changed."""
        cp = self.schema.checkpoints
        changes: dict[object, object] = {
            cp.status: int(checkpoint.status),
            cp.progress_step: checkpoint.progress_step,
            cp.counterparties: json.dumps([str(n) for n in checkpoint.counterparties]),
            cp.tx_id: None if checkpoint.tx_id is None else str(checkpoint.tx_id),
            cp.timestamp: checkpoint.updated_at,
            cp.error: checkpoint.error,
        }
        if value_changed:
            changes[cp.checkpoint_value] = checkpoint.value
        with write_transaction(self.database):
            updated = cp.update(changes).where(cp.flow_id == checkpoint.flow_id).execute()
        if updated != 1:
            raise StoreError(f"no checkpoint row for flow {checkpoint.flow_id} to update")

    def get_checkpoint(self, flow_id: str) -> FlowCheckpoint | None:
        cp = self.schema.checkpoints
        row = cp.get_or_none(cp.flow_id == flow_id)
        return None if row is None else self._checkpoint(row)

    def count_checkpoints(self) -> dict[FlowStatus, int]:
        """Flows by status (every status present, zero included)."""
        cp = self.schema.checkpoints
        counts = {status: 0 for status in FlowStatus}
        rows: Iterator[tuple[int, int]] = (
            cp.select(cp.status, peewee.fn.COUNT(cp.flow_id)).group_by(cp.status).tuples().iterator()
        )
        for status, count in rows:
            counts[FlowStatus(status)] = int(count)
        return counts

    def iter_checkpoints(
        self,
        status: FlowStatus | None = None,
        *,
        tx_id: SecureHash | None = None,
        flow_name: str | None = None,
    ) -> Iterator[FlowCheckpoint]:
        cp = self.schema.checkpoints
        query = cp.select().order_by(cp.started_at, cp.flow_id)
        if status is not None:
            query = query.where(cp.status == int(status))
        if tx_id is not None:
            query = query.where(cp.tx_id == str(tx_id))
        if flow_name is not None:
            query = query.where(cp.flow_name == flow_name)
        for row in query:
            yield self._checkpoint(row)

    @staticmethod
    def _checkpoint(row: CheckpointRow) -> FlowCheckpoint:
        return FlowCheckpoint(
            flow_id=row.flow_id,
            flow_name=row.flow_name,
            status=FlowStatus(row.status),
            started_at=row.started_at,
            updated_at=row.timestamp,
            progress_step=row.progress_step,
            counterparties=tuple(X500Name.parse(n) for n in json.loads(row.counterparties)),
            tx_id=None if row.tx_id is None else SecureHash.parse(row.tx_id),
            error=row.error,
            value=None if row.checkpoint_value is None else bytes(row.checkpoint_value),
        )

    # -- bulk loading --------------------------------------------------------------------------------

    def bulk_record(
        self,
        transactions: Iterable[SignedTransaction],
        *,
        states_to_record: StatesToRecord = StatesToRecord.ONLY_RELEVANT,
        timestamp: datetime | None = None,
        batch_size: int = 5000,
    ) -> int:
        """Record already-verified VERIFIED transactions in large batches (restores, fixtures).

        Parents must come before children, as in any back-chain order. Each batch is one database
        transaction; the vault ends as record_transaction would leave it.
        """
        from agent.store.bulk import BulkWriter

        writer = BulkWriter(self, states_to_record, timestamp or self.clock.now(), batch_size)
        return writer.write(transactions)

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a bulk load, PostgreSQL reads the heap otherwise)."""
        if is_sqlite(self.database):
            self.database.execute_sql("ANALYZE")
        else:
            for model in self.schema.models():
                self.database.execute_sql(f'ANALYZE "{model._meta.table_name}"')

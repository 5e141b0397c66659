"""node_sender_distr_recs and node_receiver_distr_recs: written with a transaction, read for recovery."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import peewee

from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.vault import StatesToRecord
from agent.ports.distribution import ALL_TIME, R, RecordCursor, RecordPage, TimeWindow
from agent.ports.paging import check_page_size
from agent.store.bulk import insert_rows, select_in
from agent.store.models import ReceiverDistributionRecord, Schema, SenderDistributionRecord, UtcDateTimeField

Row = TypeVar("Row", SenderDistributionRecord, ReceiverDistributionRecord)
_KEY = ("transaction_id", "peer_party_id", "timestamp", "timestamp_discriminator")
_IN_CHUNK = 500  # ids per IN (...): well under SQLite's variable limit


class DistributionRepository:
    """The distribution records of one store (implements agent.ports.distribution.DistributionRecords)."""

    def __init__(self, schema: Schema, page_size: int) -> None:
        self.schema = schema
        self.page_size = page_size

    # -- writing, inside the recording's database transaction ----------------------------------------

    def _ensure_party(self, name: X500Name) -> str:
        self.schema.recovery_party_info.insert(party_id=name.peer_id, party_name=str(name)).on_conflict(
            action="NOTHING"
        ).execute()
        return name.peer_id

    def write(
        self, sender_records: Iterable[SenderDistribution], receiver_record: ReceiverDistribution | None
    ) -> None:
        """Sender records are kept as first written; the receiver record is saveOrUpdate, as in Corda."""
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
            # saveOrUpdate: a repeated broadcast refreshes the row instead of failing.
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

    def write_many(
        self, sender_records: Sequence[SenderDistribution], receiver_records: Sequence[ReceiverDistribution]
    ) -> None:
        """write for many transactions: a statement per table (record_transactions' batches)."""
        db = self.schema.database
        names = {r.peer for r in sender_records} | {r.sender for r in receiver_records}
        insert_rows(
            db,
            self.schema.recovery_party_info,
            ("party_id", "party_name"),
            sorted((n.peer_id, str(n)) for n in names),
        )
        when = UtcDateTimeField().db_value
        insert_rows(
            db,
            self.schema.sender_distr_recs,
            (*_KEY, "sender_states_to_record", "receiver_states_to_record"),
            [
                (
                    str(r.tx_id),
                    r.peer.peer_id,
                    when(r.timestamp),
                    r.timestamp_discriminator,
                    int(r.sender_states_to_record),
                    int(r.receiver_states_to_record),
                )
                for r in sender_records
            ],
        )
        # saveOrUpdate, as write: one row per key (the last), since one statement cannot update a row twice.
        received = {
            (str(r.tx_id), r.sender.peer_id, when(r.timestamp), r.timestamp_discriminator): r
            for r in receiver_records
        }
        insert_rows(
            db,
            self.schema.receiver_distr_recs,
            (*_KEY, "distribution_list", "receiver_states_to_record"),
            [(*k, r.distribution_list, int(r.receiver_states_to_record)) for k, r in received.items()],
            on_conflict="(peer_party_id, timestamp, timestamp_discriminator, transaction_id) DO UPDATE SET "
            "distribution_list = excluded.distribution_list, "
            "receiver_states_to_record = excluded.receiver_states_to_record",
        )

    def delete(self, tx_id: SecureHash) -> None:
        """Every record of the transaction (its finality was undone)."""
        for model in (self.schema.sender_distr_recs, self.schema.receiver_distr_recs):
            model.delete().where(model.transaction_id == str(tx_id)).execute()

    # -- reading -------------------------------------------------------------------------------------

    def _with_names(self, model: type[Row]) -> Any:
        # One join instead of a party lookup per record.
        info = self.schema.recovery_party_info
        return (
            model.select(model, info.party_name)
            .join(info, on=(model.peer_party_id == info.party_id))
            .objects()
        )

    def sender_records(self, tx_id: SecureHash) -> list[SenderDistribution]:
        sdr = self.schema.sender_distr_recs
        rows = self._with_names(sdr).where(sdr.transaction_id == str(tx_id)).order_by(sdr.peer_party_id)
        return [_sender(r, _Names()) for r in rows]

    def receiver_records(self, tx_id: SecureHash) -> list[ReceiverDistribution]:
        rdr = self.schema.receiver_distr_recs
        rows = self._with_names(rdr).where(rdr.transaction_id == str(tx_id)).order_by(rdr.peer_party_id)
        return [_receiver(r, _Names()) for r in rows]

    def sender_records_of(self, tx_ids: Collection[SecureHash]) -> dict[SecureHash, list[SenderDistribution]]:
        sdr = self.schema.sender_distr_recs
        ids = sorted({str(h) for h in tx_ids})
        names = _Names()
        found: dict[SecureHash, list[SenderDistribution]] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            rows = (
                self._with_names(sdr)
                .where(sdr.transaction_id.in_(ids[i : i + _IN_CHUNK]))
                .order_by(sdr.transaction_id, sdr.peer_party_id)
            )
            for r in rows:
                record = _sender(r, names)
                found.setdefault(record.tx_id, []).append(record)
        return found

    def ids_with_records(self, peer: X500Name, tx_ids: Collection[SecureHash]) -> set[SecureHash]:
        wanted = {str(h): h for h in tx_ids}
        ids = sorted(wanted)
        found: set[SecureHash] = set()
        db = self.schema.database
        for model in (self.schema.sender_distr_recs, self.schema.receiver_distr_recs):
            # Selected by id alone and the peer compared here: given both, SQLite (no statistics)
            # walks the primary key's peer prefix, every record of the peer for each chunk.
            rows = select_in(db, model, ("transaction_id", "peer_party_id"), "transaction_id", ids)
            found.update(wanted[tx] for tx, party in rows if party == peer.peer_id)
        return found

    def record_keys(
        self, record_type: str, peer: X500Name, tx_ids: Collection[str]
    ) -> set[tuple[str, datetime, int]]:
        model = self.schema.sender_distr_recs if record_type == "SENDER" else self.schema.receiver_distr_recs
        # By id alone, the peer compared here: see ids_with_records.
        rows = select_in(
            self.schema.database,
            model,
            ("transaction_id", "timestamp", "timestamp_discriminator", "peer_party_id"),
            "transaction_id",
            sorted(set(tx_ids)),
        )
        when = model.timestamp.python_value
        return {(tx, when(at), d) for tx, at, d, party in rows if party == peer.peer_id}

    def transactions_without_records(self, *, after: str | None = None, limit: int = 1000) -> list[str]:
        nt, sdr, rdr = (
            self.schema.node_transactions,
            self.schema.sender_distr_recs,
            self.schema.receiver_distr_recs,
        )
        sent = sdr.select(sdr.transaction_id).where(sdr.transaction_id == nt.tx_id)
        received = rdr.select(rdr.transaction_id).where(rdr.transaction_id == nt.tx_id)
        query = nt.select(nt.tx_id).where(~peewee.fn.EXISTS(sent) & ~peewee.fn.EXISTS(received))
        if after is not None:
            query = query.where(nt.tx_id > after)
        return [str(row.tx_id) for row in query.order_by(nt.tx_id).limit(limit)]

    def sender_records_page(
        self,
        *,
        peers: Collection[X500Name] = (),
        window: TimeWindow = ALL_TIME,
        after: RecordCursor | None = None,
        page_size: int | None = None,
    ) -> RecordPage[SenderDistribution]:
        return self._page(self.schema.sender_distr_recs, _sender, peers, window, after, page_size)

    def receiver_records_page(
        self,
        *,
        peers: Collection[X500Name] = (),
        window: TimeWindow = ALL_TIME,
        after: RecordCursor | None = None,
        page_size: int | None = None,
    ) -> RecordPage[ReceiverDistribution]:
        return self._page(self.schema.receiver_distr_recs, _receiver, peers, window, after, page_size)

    def _page(
        self,
        model: type[Row],
        make: Callable[[Any, _Names], R],
        peers: Collection[X500Name],
        window: TimeWindow,
        after: RecordCursor | None,
        page_size: int | None,
    ) -> RecordPage[R]:
        size = check_page_size(self.page_size if page_size is None else page_size)
        key = (model.timestamp, model.timestamp_discriminator, model.transaction_id, model.peer_party_id)
        query = self._with_names(model)
        if peers:
            query = query.where(model.peer_party_id.in_(sorted({p.peer_id for p in peers})))
        if window.from_time is not None:
            query = query.where(model.timestamp >= window.from_time)
        if window.until_time is not None:
            query = query.where(model.timestamp < window.until_time)
        if after is not None:
            # A row value compares key by key, as the index (migration 5) is ordered; the timestamp
            # is converted by hand since a tuple's values bypass the field's db_value.
            query = query.where(
                peewee.Tuple(*key)
                > (
                    model.timestamp.db_value(after.timestamp),
                    after.timestamp_discriminator,
                    after.transaction_id,
                    after.peer_party_id,
                )
            )
        rows = list(query.order_by(*key).limit(size))
        names = _Names()
        records = [make(r, names) for r in rows]
        if len(rows) < size:
            return RecordPage(records, None)
        last = rows[-1]
        cursor = RecordCursor(
            last.timestamp, last.timestamp_discriminator, last.transaction_id, last.peer_party_id
        )
        return RecordPage(records, cursor)


class _Names:
    """X.500 names parsed once per read: a page names few peers, many times each."""

    def __init__(self) -> None:
        self._parsed: dict[str, X500Name] = {}

    def __call__(self, text: str) -> X500Name:
        name = self._parsed.get(text)
        if name is None:
            name = self._parsed[text] = X500Name.parse(text)
        return name


def _sender(row: Any, names: _Names) -> SenderDistribution:
    return SenderDistribution(
        tx_id=SecureHash.parse(row.transaction_id),
        peer=names(row.party_name),
        timestamp=row.timestamp,
        timestamp_discriminator=row.timestamp_discriminator,
        sender_states_to_record=StatesToRecord(row.sender_states_to_record),
        receiver_states_to_record=StatesToRecord(row.receiver_states_to_record),
    )


def _receiver(row: Any, names: _Names) -> ReceiverDistribution:
    return ReceiverDistribution(
        tx_id=SecureHash.parse(row.transaction_id),
        sender=names(row.party_name),
        timestamp=row.timestamp,
        timestamp_discriminator=row.timestamp_discriminator,
        distribution_list=bytes(row.distribution_list),
        receiver_states_to_record=StatesToRecord(row.receiver_states_to_record),
    )

"""node_recovery_missing, node_recovery_results and node_recovery_cursors (agent.ports.recovery)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, cast

import peewee

from agent.ports.distribution import RecordCursor
from agent.ports.recovery import (
    LEDGERSYNC,
    PENDING,
    UNRECOVERABLE,
    LaneKey,
    MissingTransaction,
    PeerRecoveryProgress,
    RecoveryResultRow,
)
from agent.store.bulk import execute_rows, fetch_rows, insert_rows, select_in
from agent.store.database import write_transaction
from agent.store.models import Schema, UtcDateTimeField

_CHUNK = 500  # ids per IN (...): well under SQLite's variable limit
_OPEN = -1


class RecoveryLogRepository:
    """Implements agent.ports.recovery.RecoveryLog."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    # -- the missing transactions --------------------------------------------------------------------

    def add_missing(self, rows: Sequence[MissingTransaction]) -> int:
        when = UtcDateTimeField().db_value
        with write_transaction(self.schema.database):
            return insert_rows(
                self.schema.database,
                self.schema.recovery_missing,
                _MISSING_COLUMNS,
                [
                    (
                        row.tx_id,
                        row.peer,
                        row.record_type,
                        row.role,
                        when(row.timestamp),
                        row.timestamp_discriminator,
                        row.states_to_record,
                        row.distribution_list,
                        row.flow_id,
                        row.status,
                        row.failure_cause,
                        row.attempts,
                        when(row.updated_at or row.timestamp),
                    )
                    for row in rows
                ],
            )

    def pending(
        self,
        *,
        peer: str | None = None,
        limit: int = 1000,
        ledgersync: bool | None = None,
        until: tuple[datetime, int] | None = None,
    ) -> list[MissingTransaction]:
        # Raw SQL, read as the driver's tuples: a batch's page through peewee's rows cost twice as much.
        where = ['"status" = ?']
        params: list[Any] = [PENDING]
        if ledgersync is True:
            where.append('"record_type" = ?')
            params.append(LEDGERSYNC)
        elif ledgersync is False:
            where.append('"record_type" <> ?')
            params.append(LEDGERSYNC)
        if peer is not None:
            where.append('"peer_name" = ?')
            params.append(peer)
        if until is not None:
            at = UtcDateTimeField().db_value(until[0])
            where.append('("timestamp" < ? OR ("timestamp" = ? AND "timestamp_discriminator" <= ?))')
            params.extend((at, at, until[1]))
        table = self.schema.recovery_missing._meta.table_name
        conditions = " AND ".join(where)
        sql = f'SELECT {_MISSING_SELECT} FROM "{table}" WHERE {conditions} ORDER BY {_MISSING_ORDER} LIMIT ?'
        return [_missing(r) for r in fetch_rows(self.schema.database, sql, [*params, limit])]

    def missing(
        self, *, status: str | None = None, tx_ids: Collection[str] = (), limit: int | None = None
    ) -> list[MissingTransaction]:
        table = self.schema.recovery_missing
        order = (table.timestamp, table.timestamp_discriminator, table.transaction_id, table.peer_name)
        if tx_ids:
            where, params = ('"status" = ?', [status]) if status is not None else ("", [])
            ids = sorted(set(tx_ids))
            rows = select_in(
                self.schema.database, table, _MISSING_COLUMNS, "transaction_id", ids, where, params
            )
            found = sorted((_missing(r) for r in rows), key=_missing_order)
            return found[:limit] if limit is not None else found
        query = table.select(*_columns(table))
        if status is not None:
            query = query.where(table.status == status)
        query = query.order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        page = cast(Iterable[tuple[Any, ...]], query.tuples())  # peewee types it as model rows
        return [_missing(r) for r in page]

    def pending_states_to_record(self, tx_ids: Collection[str]) -> dict[str, set[int]]:
        table = self.schema.recovery_missing
        columns = ("transaction_id", "states_to_record")
        found: dict[str, set[int]] = {}
        ids = sorted(set(tx_ids))
        for tx_id, how in select_in(
            self.schema.database, table, columns, "transaction_id", ids, '"status" = ?', [PENDING]
        ):
            found.setdefault(tx_id, set()).add(how)
        return found

    def mark(
        self, tx_id: str, peer: str, record_type: str, status: str, failure_cause: str | None, at: datetime
    ) -> None:
        table = self.schema.recovery_missing
        counted = status in (PENDING, UNRECOVERABLE)
        with write_transaction(self.schema.database):
            table.update(
                status=status,
                failure_cause=failure_cause,
                updated_at=at,
                attempts=table.attempts + (1 if counted else 0),
            ).where(
                (table.transaction_id == tx_id)
                & (table.peer_name == peer)
                & (table.record_type == record_type)
            ).execute()

    def requeue(self, peers: Collection[str], *, updated_before: datetime | None = None) -> int:
        if not peers:
            return 0
        table = self.schema.recovery_missing
        where = (table.status == UNRECOVERABLE) & table.peer_name.in_(sorted(set(peers)))
        if updated_before is not None:
            where &= table.updated_at < updated_before
        with write_transaction(self.schema.database):
            return int(table.update(status=PENDING).where(where).execute())

    def mark_many(self, marks: Sequence[tuple[str, str, str, str, str | None]], at: datetime) -> None:
        table = self.schema.recovery_missing
        when = UtcDateTimeField().db_value(at)
        with write_transaction(self.schema.database):
            execute_rows(
                self.schema.database,
                f'UPDATE "{table._meta.table_name}" SET status = ?, failure_cause = ?, updated_at = ?, '
                "attempts = attempts + ? WHERE transaction_id = ? AND peer_name = ? AND record_type = ?",
                [
                    (status, cause, when, 1 if status in (PENDING, UNRECOVERABLE) else 0, tx_id, peer, kind)
                    for tx_id, peer, kind, status, cause in marks
                ],
            )

    def count_missing(self) -> dict[str, dict[str, int]]:
        table = self.schema.recovery_missing
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        rows: Iterator[tuple[str, str, int]] = (
            table.select(table.peer_name, table.status, peewee.fn.COUNT(table.transaction_id))
            .group_by(table.peer_name, table.status)
            .tuples()
            .iterator()
        )
        for peer, status, count in rows:
            counts[str(peer)][str(status)] = int(count)
        return dict(counts)

    def progress_since(self, since: datetime) -> dict[str, PeerRecoveryProgress]:
        table = self.schema.recovery_missing
        recent = peewee.fn.SUM(peewee.Case(None, [(table.updated_at >= since, 1)], 0))
        # One pass over the index on (peer_name, status, updated_at), which covers the query.
        rows: Iterator[tuple[str, str, int, Any, Any]] = (
            table.select(
                table.peer_name,
                table.status,
                peewee.fn.COUNT(peewee.SQL("*")),
                recent,
                peewee.fn.MAX(table.updated_at),
            )
            .group_by(table.peer_name, table.status)
            .tuples()
            .iterator()
        )
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        changed: dict[str, dict[str, int]] = defaultdict(dict)
        latest: dict[str, datetime] = {}
        for peer, status, count, since_count, last in rows:
            counts[str(peer)][str(status)] = int(count)
            changed[str(peer)][str(status)] = int(since_count or 0)
            at = table.updated_at.python_value(last)
            if isinstance(at, datetime) and (str(peer) not in latest or at > latest[str(peer)]):
                latest[str(peer)] = at
        return {
            peer: PeerRecoveryProgress(peer, counts[peer], changed[peer], latest.get(peer)) for peer in counts
        }

    # -- results -------------------------------------------------------------------------------------

    def add_results(self, rows: Sequence[RecoveryResultRow]) -> None:
        if not rows:
            return
        when = UtcDateTimeField().db_value
        with write_transaction(self.schema.database):
            insert_rows(
                self.schema.database,
                self.schema.recovery_results,
                (
                    "flow_id",
                    "transaction_id",
                    "peer_name",
                    "transaction_role",
                    "synchronised",
                    "synchronised_initiated",
                    "failure_cause",
                    "timestamp",
                ),
                [
                    (
                        r.flow_id,
                        r.tx_id,
                        r.peer,
                        r.role,
                        r.synchronised,
                        r.synchronised_initiated,
                        r.failure_cause,
                        when(r.at),
                    )
                    for r in rows
                ],
            )

    def results(self, flow_id: str | None = None, *, limit: int | None = None) -> list[RecoveryResultRow]:
        table = self.schema.recovery_results
        query = table.select()
        if flow_id is not None:
            query = query.where(table.flow_id == flow_id)
        query = query.order_by(table.result_id)
        if limit is not None:
            query = query.limit(limit)
        return [
            RecoveryResultRow(
                flow_id=r.flow_id,
                tx_id=r.transaction_id,
                peer=r.peer_name,
                role=r.transaction_role,
                synchronised=bool(r.synchronised),
                synchronised_initiated=bool(r.synchronised_initiated),
                failure_cause=r.failure_cause,
                at=r.timestamp,
            )
            for r in query
        ]

    def recovered(self, tx_ids: Collection[str]) -> set[str]:
        table = self.schema.recovery_results
        ids = sorted(set(tx_ids))
        found: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            rows: Iterator[tuple[str]] = (
                table.select(table.transaction_id)
                .where(table.transaction_id.in_(ids[i : i + _CHUNK]) & table.synchronised)
                .tuples()
                .iterator()
            )
            found.update(str(r[0]) for r in rows)
        return found

    # -- cursors -------------------------------------------------------------------------------------

    def _where(self, lane: LaneKey) -> Any:
        table = self.schema.recovery_cursors
        return (
            (table.peer_name == lane.peer)
            & (table.record_type == lane.record_type)
            & (table.from_ms == _end(lane.from_ms))
            & (table.until_ms == _end(lane.until_ms))
        )

    def cursor(self, lane: LaneKey) -> RecordCursor | None:
        table = self.schema.recovery_cursors
        row = table.select().where(self._where(lane)).first()
        if row is None:
            return None
        return RecordCursor(
            row.cursor_timestamp,
            row.cursor_discriminator,
            row.cursor_transaction_id,
            row.cursor_peer_party_id,
        )

    def save_cursor(self, lane: LaneKey, cursor: RecordCursor, at: datetime) -> None:
        table = self.schema.recovery_cursors
        values = {
            "cursor_timestamp": cursor.timestamp,
            "cursor_discriminator": cursor.timestamp_discriminator,
            "cursor_transaction_id": cursor.transaction_id,
            "cursor_peer_party_id": cursor.peer_party_id,
            "updated_at": at,
        }
        with write_transaction(self.schema.database):
            if not table.update(**values).where(self._where(lane)).execute():
                table.insert(
                    peer_name=lane.peer,
                    record_type=lane.record_type,
                    from_ms=_end(lane.from_ms),
                    until_ms=_end(lane.until_ms),
                    **values,
                ).execute()


def _end(ms: int | None) -> int:
    return _OPEN if ms is None else ms


_MISSING_COLUMNS = (
    "transaction_id",
    "peer_name",
    "record_type",
    "transaction_role",
    "timestamp",
    "timestamp_discriminator",
    "states_to_record",
    "distribution_list",
    "flow_id",
    "status",
    "failure_cause",
    "attempts",
    "updated_at",
)
_MISSING_SELECT = ", ".join(f'"{c}"' for c in _MISSING_COLUMNS)
_MISSING_ORDER = '"timestamp", "timestamp_discriminator", "transaction_id", "peer_name"'
_when = UtcDateTimeField().python_value


def _columns(table: Any) -> list[peewee.Field]:
    return [getattr(table, c) for c in _MISSING_COLUMNS]


def _missing(row: tuple[Any, ...]) -> MissingTransaction:
    """A row of _MISSING_COLUMNS, as the driver gives it (timestamps as text on SQLite)."""
    (
        tx_id,
        peer,
        record_type,
        role,
        at,
        discriminator,
        how,
        listed,
        flow_id,
        status,
        cause,
        attempts,
        updated,
    ) = row
    return MissingTransaction(
        tx_id=tx_id,
        peer=peer,
        record_type=record_type,
        role=role,
        timestamp=_when(at),
        timestamp_discriminator=discriminator,
        states_to_record=how,
        distribution_list=bytes(listed),
        flow_id=flow_id,
        status=status,
        failure_cause=cause,
        attempts=attempts,
        updated_at=_when(updated),
    )


def _missing_order(row: MissingTransaction) -> tuple[datetime, int, str, str]:
    return (row.timestamp, row.timestamp_discriminator, row.tx_id, row.peer)

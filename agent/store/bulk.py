"""Batch writes for restores and benchmark fixtures (the rows record_transaction would write, in
bulk), and reads of many rows by key.

The row-at-a-time path costs a few queries per transaction; a million-transaction ledger needs
executemany over large batches instead. The SQL is the driver's own (one statement per table per
batch), with the table and column names taken from the bound models so the two paths cannot drift.
A read by IN (...) is raw SQL too: peewee builds a node per value, 3 ms of Python for 500 ids, which a
recovery batch paid a few dozen times.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import peewee

from agent.ledger.transactions import SignedTransaction, TransactionState, encode_state
from agent.ledger.vault import StateStatus, StatesToRecord, TransactionStatus, outputs_to_record
from agent.store.database import BULK_CACHE_KIB, is_sqlite, write_transaction
from agent.store.models import Schema, UtcDateTimeField

if TYPE_CHECKING:
    from agent.ledger.keys import PublicKey


def _insert_sql(
    model: type[peewee.Model], columns: Sequence[str], sqlite: bool, on_conflict: str = "DO NOTHING"
) -> str:
    table = model._meta.table_name
    cols = ", ".join(f'"{c}"' for c in columns)
    # ON CONFLICT DO NOTHING, not SQLite's OR IGNORE: only duplicates are skipped, never a NOT NULL
    # violation.
    values = "(" + ", ".join("?" for _ in columns) + ")" if sqlite else "%s"
    return f'INSERT INTO "{table}" ({cols}) VALUES {values} ON CONFLICT {on_conflict}'


def insert_rows(
    database: peewee.Database,
    model: type[peewee.Model],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    on_conflict: str = "DO NOTHING",
) -> int:
    """One INSERT of many rows (the driver's executemany, or pages of VALUES on PostgreSQL), inside
    the caller's database transaction; the rows written. The values are the database's (see
    UtcDateTimeField.db_value)."""
    if not rows:
        return 0
    sqlite = is_sqlite(database)
    sql = _insert_sql(model, columns, sqlite, on_conflict)
    cursor = database.cursor()
    if sqlite:
        cursor.executemany(sql, rows)
        return int(cursor.rowcount)
    from psycopg2.extras import execute_values

    # rowcount would be the last page's only: count what comes back instead.
    return len(execute_values(cursor, sql + " RETURNING 1", rows, page_size=1000, fetch=True))


IN_CHUNK = 500  # ids per IN (...): well under SQLite's variable limit


def select_in(
    database: peewee.Database,
    model: type[peewee.Model],
    columns: Sequence[str],
    key: str,
    ids: Sequence[Any],
    where: str = "",
    params: Sequence[Any] = (),
) -> list[tuple[Any, ...]]:
    """The rows of model whose column key is one of ids (IN_CHUNK a statement), as the driver gives them
    (a timestamp is text on SQLite: see UtcDateTimeField.python_value). where: more conditions, ANDed,
    written with ? for params."""
    table = model._meta.table_name
    cols = ", ".join(f'"{c}"' for c in columns)
    extra = f" AND ({where})" if where else ""
    found: list[tuple[Any, ...]] = []
    for i in range(0, len(ids), IN_CHUNK):
        chunk = list(ids[i : i + IN_CHUNK])
        marks = ", ".join("?" for _ in chunk)
        sql = f'SELECT {cols} FROM "{table}" WHERE "{key}" IN ({marks}){extra}'
        found.extend(fetch_rows(database, sql, [*chunk, *params]))
    return found


def fetch_rows(database: peewee.Database, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The rows of a query written with ? marks, as the driver gives them."""
    if not is_sqlite(database):
        sql = sql.replace("?", "%s")
    return list(database.execute_sql(sql, params).fetchall())


def execute_rows(database: peewee.Database, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """One statement (written with ? marks) for each of rows, inside the caller's transaction."""
    if not rows:
        return
    cursor = database.cursor()
    if is_sqlite(database):
        cursor.executemany(sql, rows)
    else:
        from psycopg2.extras import execute_batch

        # psycopg2's executemany is one round trip per row; execute_batch sends pages.
        execute_batch(cursor, sql.replace("?", "%s"), rows, page_size=1000)


def vault_row(
    tx_id: str, index: int, state: TransactionState, notary: str | None, relevancy: int, when: Any
) -> tuple[Any, ...]:
    """A new vault_states row, in the column order of the bulk inserts (UNCONSUMED); state: an output of
    a WireTransaction (its data checked when the transaction was built)."""
    return (
        tx_id,
        index,
        state.contract,
        encode_state(state, checked=True),
        notary,
        int(StateStatus.UNCONSUMED),
        int(relevancy),
        when,
    )


class BulkWriter:
    def __init__(
        self,
        schema: Schema,
        our_keys: frozenset[PublicKey],
        states_to_record: StatesToRecord,
        timestamp: datetime,
        batch_size: int,
    ) -> None:
        # The schema and keys, not the store: the store imports this module, not the other way round.
        self.database = schema.database
        self.our_keys = our_keys
        self.states_to_record = states_to_record
        self.when = UtcDateTimeField().db_value(timestamp)
        self.batch_size = batch_size
        self.sqlite = is_sqlite(self.database)
        self.tx_sql = _insert_sql(
            schema.node_transactions,
            ["tx_id", "transaction_value", "signatures", "status", "timestamp"],
            self.sqlite,
        )
        self.vault_sql = _insert_sql(
            schema.vault_states,
            [
                "transaction_id",
                "output_index",
                "contract_state_class_name",
                "contract_state",
                "notary_name",
                "state_status",
                "relevancy_status",
                "recorded_timestamp",
            ],
            self.sqlite,
        )
        self.party_sql = _insert_sql(
            schema.state_party,
            ["transaction_id", "output_index", "public_key_hash", "x500_name"],
            self.sqlite,
        )
        mark = "?" if self.sqlite else "%s"
        self.consume_sql = (
            f'UPDATE "{schema.vault_states._meta.table_name}" SET state_status = {mark}, '
            f"consumed_timestamp = {mark}, consuming_tx_id = {mark} "
            f"WHERE transaction_id = {mark} AND output_index = {mark} AND state_status = {mark}"
        )

    def write(self, transactions: Iterable[SignedTransaction]) -> int:
        if self.sqlite:
            # The indexes' pages stay cached across batches (the 1M-transaction bulk-load figures in
            # BENCHMARKS.md were measured with this cache size).
            self.database.execute_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
        count = 0
        batch: list[SignedTransaction] = []
        for stx in transactions:
            batch.append(stx)
            if len(batch) >= self.batch_size:
                count += self._flush(batch)
                batch = []
        if batch:
            count += self._flush(batch)
        return count

    def _flush(self, batch: list[SignedTransaction]) -> int:
        tx_rows: list[tuple[Any, ...]] = []
        vault_rows: list[tuple[Any, ...]] = []
        party_rows: list[tuple[Any, ...]] = []
        consume_rows: list[tuple[Any, ...]] = []
        verified = TransactionStatus.VERIFIED.value
        our_keys = self.our_keys
        for stx in batch:
            tx = stx.tx
            tx_id = str(tx.id)
            tx_rows.append((tx_id, tx.serialized, stx.serialize_signatures(), verified, self.when))
            notary = str(tx.notary.name) if tx.notary else None
            for index, relevancy in outputs_to_record(tx, our_keys, self.states_to_record):
                state = tx.outputs[index]
                vault_rows.append(vault_row(tx_id, index, state, notary, relevancy, self.when))
                for party in state.participants:
                    key_hash = hashlib.sha256(party.owning_key.raw).hexdigest()
                    party_rows.append((tx_id, index, key_hash, str(party.name)))
            for ref in tx.inputs:
                consume_rows.append(
                    (
                        int(StateStatus.CONSUMED),
                        self.when,
                        tx_id,
                        str(ref.txhash),
                        ref.index,
                        int(StateStatus.UNCONSUMED),
                    )
                )
        db = self.database
        with write_transaction(db):
            cursor = db.cursor()
            self._many(cursor, self.tx_sql, tx_rows)
            self._many(cursor, self.vault_sql, vault_rows)
            self._many(cursor, self.party_sql, party_rows)
            if consume_rows and self.sqlite:
                cursor.executemany(self.consume_sql, consume_rows)
            elif consume_rows:
                from psycopg2.extras import execute_batch

                # psycopg2's executemany is one round trip per row; execute_batch sends pages.
                execute_batch(cursor, self.consume_sql, consume_rows, page_size=1000)
        return len(batch)

    def _many(self, cursor: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.sqlite:
            cursor.executemany(sql, rows)
        else:
            from psycopg2.extras import execute_values

            execute_values(cursor, sql, rows, page_size=1000)

"""LedgerSync's reads of whole tables: raw driver rows, a page at a time (see agent.ports.graph_scans).

Moved from agent/ledgersync/{graph_pages,graph_build,consistency}.py unchanged in how they read:
the driver's cursor (no peewee row objects: millions of rows pass through), keyset pages of
node_transactions, fetchmany over one cursor for the distribution records and the vault. Each
generator queries when it is advanced, in that thread and on its connection.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager
from typing import Any

from agent.ledger.keys import PublicKey
from agent.ledger.vault import TransactionStatus
from agent.ports.graph_scans import Blob
from agent.store.database import scanning
from agent.store.models import Schema
from agent.store.transactions import TransactionRepository


class GraphScanRepository:
    """The graph's scans of one store (implements agent.ports.graph_scans.GraphScans)."""

    def __init__(
        self, schema: Schema, transactions: TransactionRepository, our_keys: Collection[PublicKey]
    ) -> None:
        self.schema = schema
        self.database = schema.database
        self.transactions = transactions
        self.our_keys = frozenset(our_keys)

    def _cursor(self, query: Any) -> Any:
        """The driver's cursor for a peewee query."""
        return self.database.execute(query)

    def scanning(self) -> AbstractContextManager[None]:
        return scanning(self.database)

    def count_transactions(self, status: TransactionStatus | None = None) -> int:
        return self.transactions.count_transactions(status)

    def transaction_id_pages(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[list[str]]:
        return self.transactions.transaction_id_pages(status=status, page_size=page_size)

    def verified_blob_pages(self, page_size: int) -> Iterator[list[tuple[str, Blob]]]:
        nt = self.schema.node_transactions
        last = ""
        while True:
            query = (
                nt.select(nt.tx_id, nt.transaction_value)
                .where((nt.tx_id > last) & (nt.status == TransactionStatus.VERIFIED.value))
                .order_by(nt.tx_id)
                .limit(page_size)
            )
            rows: list[tuple[str, Blob]] = self._cursor(query).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield rows
            if len(rows) < page_size:
                return

    def party_names(self) -> Iterator[tuple[str, str]]:
        info = self.schema.recovery_party_info
        yield from self._cursor(info.select(info.party_id, info.party_name))

    def distribution_peer_pages(self, page_size: int) -> Iterator[list[tuple[str, str]]]:
        for model in (self.schema.sender_distr_recs, self.schema.receiver_distr_recs):
            cursor = self._cursor(model.select(model.transaction_id, model.peer_party_id))
            while rows := cursor.fetchmany(page_size):
                yield rows

    def vault_status_pages(self, page_size: int) -> Iterator[list[tuple[str, int, int]]]:
        vs = self.schema.vault_states
        cursor = self._cursor(vs.select(vs.transaction_id, vs.output_index, vs.state_status))
        while rows := cursor.fetchmany(page_size):
            yield rows

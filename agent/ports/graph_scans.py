"""What LedgerSync's graph build and consistency check read: whole tables in raw pages, no row objects.

A million transactions pass through these reads, so rows come as the driver returns them (tuples;
a blob is bytes on SQLite and a memoryview on PostgreSQL) and each page is one query or one
fetchmany. Pages are read in the calling thread on its own connection; `scanning()` keeps that
connection's SQLite page cache small meanwhile, and gives it back after.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

from agent.ledger.keys import PublicKey
from agent.ledger.vault import TransactionStatus

Blob = bytes | memoryview


class GraphScans(Protocol):
    """Paged scans of node_transactions, the distribution records and vault_states."""

    @property
    def our_keys(self) -> frozenset[PublicKey]:
        """The node's keys: transactions they take part in involve us."""
        ...

    def scanning(self) -> AbstractContextManager[None]:
        """Around a read of whole tables in this thread (keeps its page cache small meanwhile)."""
        ...

    def count_transactions(self, status: TransactionStatus | None = None) -> int:
        """Rows in that status (all when None)."""
        ...

    def transaction_id_pages(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[list[str]]:
        """Pages of hex ids in id order, each one keyset query."""
        ...

    def verified_blob_pages(self, page_size: int) -> Iterator[list[tuple[str, Blob]]]:
        """(hex id, transaction_value) of VERIFIED rows in id order, page_size rows a keyset query."""
        ...

    def party_names(self) -> Iterator[tuple[str, str]]:
        """(peer party id, X.500 name) of every party a distribution record names."""
        ...

    def distribution_peer_pages(self, page_size: int) -> Iterator[list[tuple[str, str]]]:
        """(hex transaction id, peer party id) of every sender, then receiver, record."""
        ...

    def vault_status_pages(self, page_size: int) -> Iterator[list[tuple[str, int, int]]]:
        """(hex transaction id, output index, state status) of every vault state."""
        ...

"""The node's store: one database, its schema and migrations, the unit of work, and the repositories.

`LedgerStore` is the peewee adapter's composition: it opens the database (a URL or a peewee
Database), binds the models to it, migrates, and exposes the unit of work (`unit`) and one
repository per port as an attribute (`transactions`, `vault`, `distribution`, `checkpoints` and
`checkpoint_counts`, `keys`, `uniqueness`, `graph_scans`, `reconciliation`,
`reconciliation_requests`), each typed as its port. Callers take the narrowest port (agent.ports)
and are given the repository; the store itself is no port. Bulk loading and `analyze` are the
adapter's own.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

import peewee

from agent.clock import Clock, SystemClock
from agent.ledger.keys import PublicKey
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StatesToRecord
from agent.ports.checkpoints import CheckpointCounts, Checkpoints
from agent.ports.distribution import DistributionRecords
from agent.ports.graph_scans import GraphScans
from agent.ports.hospital import AuditLog, MedicalRecords
from agent.ports.keys import AesKeyStore
from agent.ports.paging import MAX_PAGE_SIZE, MIN_PAGE_SIZE, check_page_size
from agent.ports.reconciliation import ReconciliationStatuses, RequestWindow
from agent.ports.recovery import RecoveryLog
from agent.ports.transactions import StoredTransaction, TransactionStore
from agent.ports.uniqueness import CommittedStates
from agent.ports.unit_of_work import UnitOfWork
from agent.ports.vault import VaultRecord, VaultStore
from agent.store.bulk import BulkWriter
from agent.store.checkpointer import CHECKPOINT_PAGES, WalCheckpointer
from agent.store.checkpoints import CheckpointRepository
from agent.store.database import describe, is_sqlite, open_database, sqlite_path
from agent.store.db_errors import opening
from agent.store.distribution import DistributionRepository
from agent.store.graph_scans import GraphScanRepository
from agent.store.hospital import AuditLogRepository, MedicalRecordRepository
from agent.store.keys import AesKeyRepository
from agent.store.migrations import migrate
from agent.store.models import Schema, bind_schema
from agent.store.reconciliation import ReconciliationStatusRepository, RequestWindowRepository
from agent.store.recovery import RecoveryLogRepository
from agent.store.transactions import TransactionRepository
from agent.store.uniqueness import CommittedStatesRepository
from agent.store.unit_of_work import PeeweeUnitOfWork
from agent.store.vault import VaultRepository

# Re-exported: these lived here before the ports did.
__all__ = [
    "MAX_PAGE_SIZE",
    "MIN_PAGE_SIZE",
    "LedgerStore",
    "StoredTransaction",
    "VaultRecord",
    "check_page_size",
]


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
        # Say where, never how we logged in: describe() leaves the password out.
        with opening(describe(self.database)):
            migrate(self.schema)
        unit = PeeweeUnitOfWork(self.database)
        vault = VaultRepository(self.schema, self.our_keys, self.page_size)
        distribution = DistributionRepository(self.schema, self.page_size)
        transactions = TransactionRepository(
            self.schema, unit, vault, distribution, self.clock, self.page_size
        )
        # Typed as the ports: mypy checks each repository against its Protocol here, and callers
        # given one of these see the port, not the adapter's extras.
        self.unit: UnitOfWork = unit
        self.transactions: TransactionStore = transactions
        self.vault: VaultStore = vault
        self.distribution: DistributionRecords = distribution
        checkpoints = CheckpointRepository(self.schema)
        self.checkpoints: Checkpoints = checkpoints
        self.checkpoint_counts: CheckpointCounts = checkpoints
        self.keys: AesKeyStore = AesKeyRepository(self.schema)
        self.uniqueness: CommittedStates = CommittedStatesRepository(self.schema)
        self.graph_scans: GraphScans = GraphScanRepository(self.schema, transactions, self.our_keys)
        self.reconciliation: ReconciliationStatuses = ReconciliationStatusRepository(self.schema)
        self.reconciliation_requests: RequestWindow = RequestWindowRepository(self.schema)
        self.hospital: MedicalRecords = MedicalRecordRepository(self.schema)
        self.audit: AuditLog = AuditLogRepository(self.schema)
        self.recovery: RecoveryLog = RecoveryLogRepository(self.schema)
        self._checkpointer: WalCheckpointer | None = None

    def start_checkpointing(self) -> None:
        """SQLite on a file: WAL checkpoints from now on on a thread of their own (store/checkpointer.py),
        not in writers' commits; nothing on PostgreSQL or in memory. The agent's runtime calls it."""
        path = sqlite_path(self.database)
        if path is None or (self._checkpointer is not None and self._checkpointer.running):
            return
        self._checkpointer = WalCheckpointer(path)
        # Connections opened from now on (each thread has its own) leave checkpoints to that thread.
        self._sqlite().pragma("wal_autocheckpoint", 0, permanent=True)
        self._checkpointer.start()

    def stop_checkpointing(self) -> None:
        if self._checkpointer is None:
            return
        self._checkpointer.stop()
        self._checkpointer = None
        self._sqlite().pragma("wal_autocheckpoint", CHECKPOINT_PAGES, permanent=True)

    def _sqlite(self) -> peewee.SqliteDatabase:
        assert isinstance(self.database, peewee.SqliteDatabase)  # sqlite_path said so
        return self.database

    def close(self) -> None:
        """Stop the checkpoints' thread, if started, and close this thread's connection."""
        self.stop_checkpointing()
        if not self.database.is_closed():
            self.database.close()

    # -- adapter-only operations ---------------------------------------------------------------------

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
        writer = BulkWriter(
            self.schema, self.our_keys, states_to_record, timestamp or self.clock.now(), batch_size
        )
        return writer.write(transactions)

    def analyze(self) -> None:
        """Refresh the planner's statistics (after a bulk load, PostgreSQL reads the heap otherwise)."""
        if is_sqlite(self.database):
            self.database.execute_sql("ANALYZE")
        else:
            for model in self.schema.models():
                self.database.execute_sql(f'ANALYZE "{model._meta.table_name}"')

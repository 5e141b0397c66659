"""The node's store: one database, its schema and migrations, the unit of work, and the repositories.

`LedgerStore` is the peewee adapter's composition: it opens the database (a URL or a peewee
Database), binds the models to it, migrates, and exposes one repository per port as an attribute
(`transactions`, `vault`, `distribution`, `checkpoints` and `checkpoint_counts`, `keys`,
`uniqueness`, `graph_scans`), each typed as its port.
Callers should take the narrowest port (agent.ports) and be given the repository. The methods
below delegate to the repositories for callers not converted yet; the store itself also satisfies
`CheckpointStore` (the engine's), `GraphScans` and `GraphFeed` (LedgerSync passes it whole).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime

import peewee

from agent.clock import Clock, SystemClock
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.keys import PublicKey
from agent.ledger.transactions import SignedTransaction, StateRef, WireTransaction
from agent.ledger.vault import RelevancyStatus, StateStatus, StatesToRecord, TransactionStatus
from agent.ports.checkpoints import CheckpointCounts, Checkpoints
from agent.ports.distribution import DistributionRecords
from agent.ports.graph_scans import Blob, GraphScans
from agent.ports.hospital import AuditLog, MedicalRecords
from agent.ports.keys import AesKeyStore
from agent.ports.paging import MAX_PAGE_SIZE, MIN_PAGE_SIZE, check_page_size
from agent.ports.reconciliation import ReconciliationStatuses, RequestWindow
from agent.ports.transactions import StoredTransaction, TransactionListener, TransactionStore
from agent.ports.uniqueness import CommittedStates
from agent.ports.vault import VaultRecord, VaultStore
from agent.store.bulk import BulkWriter
from agent.store.checkpoints import CheckpointRepository
from agent.store.database import describe, is_sqlite, open_database
from agent.store.db_errors import opening
from agent.store.distribution import DistributionRepository
from agent.store.graph_scans import GraphScanRepository
from agent.store.hospital import AuditLogRepository, MedicalRecordRepository
from agent.store.keys import AesKeyRepository
from agent.store.migrations import migrate
from agent.store.models import Schema, bind_schema
from agent.store.reconciliation import ReconciliationStatusRepository, RequestWindowRepository
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
        self.unit = PeeweeUnitOfWork(self.database)
        vault = VaultRepository(self.schema, self.our_keys, self.page_size)
        distribution = DistributionRepository(self.schema, self.page_size)
        transactions = TransactionRepository(
            self.schema, self.unit, vault, distribution, self.clock, self.page_size
        )
        # Typed as the ports: mypy checks each repository against its Protocol here, and callers
        # given one of these see the port, not the adapter's extras.
        self.transactions: TransactionStore = transactions
        self.vault: VaultStore = vault
        self.distribution: DistributionRecords = distribution
        self._checkpoints = CheckpointRepository(self.schema)
        self.checkpoints: Checkpoints = self._checkpoints
        self.checkpoint_counts: CheckpointCounts = self._checkpoints
        self.keys: AesKeyStore = AesKeyRepository(self.schema)
        self.uniqueness: CommittedStates = CommittedStatesRepository(self.schema)
        self.graph_scans: GraphScans = GraphScanRepository(self.schema, transactions, self.our_keys)
        self.reconciliation: ReconciliationStatuses = ReconciliationStatusRepository(self.schema)
        self.reconciliation_requests: RequestWindow = RequestWindowRepository(self.schema)
        self.hospital: MedicalRecords = MedicalRecordRepository(self.schema)
        self.audit: AuditLog = AuditLogRepository(self.schema)

    def unit_of_work(self) -> AbstractContextManager[None]:
        """One database transaction around several writes (a flow step's effects and its checkpoint).

        Writes inside nest as savepoints; listeners hear of recorded transactions after the commit.
        """
        return self.unit.unit_of_work()

    def add_listener(self, listener: TransactionListener) -> None:
        """Called after each commit that records a transaction or changes its status (not by bulk_record)."""
        self.unit.add_listener(listener)

    def close(self) -> None:
        """Close this thread's connection."""
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

    # -- delegated: transactions ---------------------------------------------------------------------

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
        return self.transactions.record_transaction(
            stx,
            status=status,
            states_to_record=states_to_record,
            state_machine_run_id=state_machine_run_id,
            sender_records=sender_records,
            receiver_record=receiver_record,
        )

    def remove_in_flight(self, tx_id: SecureHash) -> bool:
        return self.transactions.remove_in_flight(tx_id)

    def in_flight_inputs(self) -> set[StateRef]:
        return self.transactions.in_flight_inputs()

    def get_stored(self, tx_id: SecureHash) -> StoredTransaction | None:
        return self.transactions.get_stored(tx_id)

    def get_transaction(self, tx_id: SecureHash) -> SignedTransaction | None:
        return self.transactions.get_transaction(tx_id)

    def require_transaction(self, tx_id: SecureHash) -> SignedTransaction:
        return self.transactions.require_transaction(tx_id)

    def transaction_status(self, tx_id: SecureHash) -> TransactionStatus | None:
        return self.transactions.transaction_status(tx_id)

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        return self.transactions.producing_transaction(txhash)

    def count_transactions(self, status: TransactionStatus | None = None) -> int:
        return self.transactions.count_transactions(status)

    def iter_transaction_ids(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[SecureHash]:
        return self.transactions.iter_transaction_ids(status=status, page_size=page_size)

    def transaction_id_pages(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[list[str]]:
        return self.transactions.transaction_id_pages(status=status, page_size=page_size)

    def iter_transactions(
        self, *, status: TransactionStatus | None = None, page_size: int | None = None
    ) -> Iterator[StoredTransaction]:
        return self.transactions.iter_transactions(status=status, page_size=page_size)

    # -- delegated: vault ----------------------------------------------------------------------------

    def iter_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = RelevancyStatus.RELEVANT,
        contract: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[VaultRecord]:
        return self.vault.iter_vault_states(
            state_status=state_status, relevancy=relevancy, contract=contract, page_size=page_size
        )

    def count_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = None,
    ) -> int:
        return self.vault.count_vault_states(state_status=state_status, relevancy=relevancy)

    # -- delegated: distribution records -------------------------------------------------------------

    def sender_records(self, tx_id: SecureHash) -> list[SenderDistribution]:
        return self.distribution.sender_records(tx_id)

    def receiver_records(self, tx_id: SecureHash) -> list[ReceiverDistribution]:
        return self.distribution.receiver_records(tx_id)

    # -- delegated: AES keys -------------------------------------------------------------------------

    def aes_keys(self) -> dict[str, bytes]:
        return self.keys.aes_keys()

    def add_aes_keys(self, wrapped: dict[str, bytes]) -> None:
        self.keys.add_aes_keys(wrapped)

    def add_aes_keys_if_none(self, wrapped: dict[str, bytes]) -> bool:
        return self.keys.add_aes_keys_if_none(wrapped)

    # -- delegated: checkpoints ----------------------------------------------------------------------

    def save_checkpoint(self, checkpoint: FlowCheckpoint) -> None:
        self.checkpoints.save_checkpoint(checkpoint)

    def update_checkpoint(self, checkpoint: FlowCheckpoint, *, value_changed: bool = True) -> None:
        self.checkpoints.update_checkpoint(checkpoint, value_changed=value_changed)

    def get_checkpoint(self, flow_id: str) -> FlowCheckpoint | None:
        return self.checkpoints.get_checkpoint(flow_id)

    def count_checkpoints(self) -> dict[FlowStatus, int]:
        return self.checkpoint_counts.count_checkpoints()

    def iter_checkpoints(
        self,
        status: FlowStatus | None = None,
        *,
        tx_id: SecureHash | None = None,
        flow_name: str | None = None,
    ) -> Iterator[FlowCheckpoint]:
        return self.checkpoints.iter_checkpoints(status, tx_id=tx_id, flow_name=flow_name)

    # -- delegated: graph scans (agent/ledgersync/app.py hands the whole store to the graph) --------

    def scanning(self) -> AbstractContextManager[None]:
        return self.graph_scans.scanning()

    def verified_blob_pages(self, page_size: int) -> Iterator[list[tuple[str, Blob]]]:
        return self.graph_scans.verified_blob_pages(page_size)

    def party_names(self) -> Iterator[tuple[str, str]]:
        return self.graph_scans.party_names()

    def distribution_peer_pages(self, page_size: int) -> Iterator[list[tuple[str, str]]]:
        return self.graph_scans.distribution_peer_pages(page_size)

    def vault_status_pages(self, page_size: int) -> Iterator[list[tuple[str, int, int]]]:
        return self.graph_scans.vault_status_pages(page_size)

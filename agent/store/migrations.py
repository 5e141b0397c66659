"""Versioned schema migrations, from the first table on.

Each migration runs in its own database transaction and is recorded in
ledger_agent_schema_migrations, so a node upgraded in steps, or interrupted half way, resumes where it
stopped. A migration once released is never edited: later changes are new migrations (column changes
through playhouse.migrate), written against what the earlier ones left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.errors import DatabaseError, MigrationError
from agent.store.database import write_transaction
from agent.store.models import Schema


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Schema], None]


def _v1_initial(schema: Schema) -> None:
    # The tables of version 1, named: later tables join Schema but never this list.
    # Referenced tables first, for the foreign keys (declared as SQL constraints, which peewee's own
    # ordering does not see).
    tables = [
        schema.recovery_party_info,
        schema.node_transactions,
        schema.vault_states,
        schema.state_party,
        schema.sender_distr_recs,
        schema.receiver_distr_recs,
        schema.aes_encryption_keys,
        schema.checkpoints,
        schema.notary_committed_states,
        schema.notary_committed_txs,
        schema.notary_request_log,
    ]
    for model in tables:
        model.create_table(safe=False)


def _v2_reconciliation_status(schema: Schema) -> None:
    schema.reconciliation_status.create_table(safe=False)


def _v3_reconciliation_jobs(schema: Schema) -> None:
    schema.reconciliation_jobs.create_table(safe=False)


def _v4_reconciliation_requests(schema: Schema) -> None:
    schema.reconciliation_requests.create_table(safe=False)


def _v5_distribution_records_by_time(schema: Schema) -> None:
    # Ledger Recovery reads records by time window across peers, in (timestamp, discriminator, tx id)
    # order; the key (peer first) serves one peer's reads but not those. Plain SQL, not the models'
    # Meta.indexes: migration 1 creates what its tables had then, and must keep doing so.
    for model in (schema.sender_distr_recs, schema.receiver_distr_recs):
        table = model._meta.table_name
        schema.database.execute_sql(
            f'CREATE INDEX "{table}_by_time" ON "{table}" '
            '("timestamp", "timestamp_discriminator", "transaction_id", "peer_party_id")'
        )


def _v6_flow_hospital_and_audit(schema: Schema) -> None:
    schema.hospital_records.create_table(safe=False)
    schema.audit_log.create_table(safe=False)


def _v7_ledger_recovery(schema: Schema) -> None:
    for model in (schema.recovery_missing, schema.recovery_results, schema.recovery_cursors):
        model.create_table(safe=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial node schema", _v1_initial),
    Migration(2, "LedgerSync cr_reconciliation_status", _v2_reconciliation_status),
    Migration(3, "LedgerSync cr_reconciliation_jobs", _v3_reconciliation_jobs),
    Migration(4, "LedgerSync cr_reconciliation_requests", _v4_reconciliation_requests),
    Migration(5, "distribution records by time", _v5_distribution_records_by_time),
    Migration(6, "flow hospital records and the audit log", _v6_flow_hospital_and_audit),
    Migration(7, "Ledger Recovery's missing transactions, results and cursors", _v7_ledger_recovery),
)

LATEST_VERSION = MIGRATIONS[-1].version


def applied_versions(schema: Schema) -> list[int]:
    if not schema.schema_migrations.table_exists():
        return []
    return [
        row.version for row in schema.schema_migrations.select().order_by(schema.schema_migrations.version)
    ]


def migrate(schema: Schema) -> list[int]:
    """Apply every pending migration; returns the versions applied now."""
    db = schema.database
    with write_transaction(db):
        db.create_tables([schema.schema_migrations], safe=True)
    done = set(applied_versions(schema))
    newer = sorted(v for v in done if v > LATEST_VERSION)
    if newer:
        raise MigrationError(
            f"database schema is at version {max(newer)}, newer than this agent's {LATEST_VERSION}; "
            "upgrade the agent or restore a matching backup"
        )
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        try:
            with write_transaction(db):
                migration.apply(schema)
                schema.schema_migrations.create(
                    version=migration.version, name=migration.name, applied_at=datetime.now(UTC)
                )
        except DatabaseError as exc:
            raise MigrationError(f"migration {migration.version} ({migration.name}) failed: {exc}") from exc
        applied.append(migration.version)
    return applied

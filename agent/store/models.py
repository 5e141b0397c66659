"""The node's tables, shaped after a Corda node's so that operators recognise them.

The classes here are templates with no database. `bind_schema(db)` makes subclasses bound to one
database, so two stores in one process (a simulation, the demo) never share a global binding.
Timestamps are stored as UTC without a zone; ids as upper-case hex, as Corda prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, TypeVar

import peewee

TX_ID = 64  # hex SHA-256
PARTY_ID = 144  # Corda's NVARCHAR(144)


class UtcDateTimeField(peewee.DateTimeField):
    """Aware UTC datetimes in, aware UTC datetimes out; stored as naive UTC text or timestamp."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is UTC:  # the common case: the clocks give UTC
                value = value.replace(tzinfo=None)
            elif value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return value.isoformat(sep=" ", timespec="microseconds")
        return value

    def python_value(self, value: Any) -> Any:
        if isinstance(value, str):
            # What db_value writes, parsed in C: peewee's parser tries strptime formats in turn, which
            # was most of the cost of reading a page of recovery rows.
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                value = super().python_value(value)
        else:
            value = super().python_value(value)
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


class _Template(peewee.Model):
    pass


class NodeTransaction(_Template):
    """node_transactions: status U (unverified), V (verified) or F (IN_FLIGHT)."""

    tx_id = peewee.CharField(max_length=TX_ID, primary_key=True)
    state_machine_run_id = peewee.CharField(max_length=36, null=True)
    transaction_value = peewee.BlobField()
    signatures = peewee.BlobField()
    status = peewee.FixedCharField(max_length=1)  # type: ignore[call-overload]
    timestamp = UtcDateTimeField()

    class Meta:
        table_name = "node_transactions"
        indexes = ((("status", "tx_id"), False),)


class VaultState(_Template):
    """vault_states: one row per output the node keeps, with Corda's status ordinals."""

    transaction_id = peewee.CharField(max_length=TX_ID)
    output_index = peewee.IntegerField()
    contract_state_class_name = peewee.CharField(max_length=255)
    contract_state = peewee.BlobField()
    notary_name = peewee.CharField(max_length=255, null=True)
    state_status = peewee.SmallIntegerField()
    relevancy_status = peewee.SmallIntegerField()
    recorded_timestamp = UtcDateTimeField()
    consumed_timestamp = UtcDateTimeField(null=True)
    consuming_tx_id = peewee.CharField(max_length=TX_ID, null=True)

    class Meta:
        table_name = "vault_states"
        primary_key = peewee.CompositeKey("transaction_id", "output_index")
        indexes = (
            (("state_status", "relevancy_status", "transaction_id", "output_index"), False),
            (("contract_state_class_name",), False),
        )


class StateParty(_Template):
    """state_party: the participants of each vault state."""

    transaction_id = peewee.CharField(max_length=TX_ID)
    output_index = peewee.IntegerField()
    public_key_hash = peewee.CharField(max_length=64)
    x500_name = peewee.CharField(max_length=255)

    class Meta:
        table_name = "state_party"
        primary_key = peewee.CompositeKey("transaction_id", "output_index", "public_key_hash")
        indexes = ((("x500_name",), False),)


class RecoveryPartyInfo(_Template):
    """node_recovery_party_info: peer id (hex SHA-256 of the X.500 name) to name."""

    party_id = peewee.CharField(max_length=PARTY_ID, primary_key=True)
    party_name = peewee.CharField(max_length=255)

    class Meta:
        table_name = "node_recovery_party_info"


class _DistributionRecord(_Template):
    """The columns and key both distribution-record tables share (Corda's PersistentKey)."""

    transaction_id = peewee.CharField(max_length=TX_ID)
    peer_party_id = peewee.CharField(max_length=PARTY_ID)
    timestamp = UtcDateTimeField()
    timestamp_discriminator = peewee.IntegerField()
    receiver_states_to_record = peewee.SmallIntegerField()

    class Meta:
        primary_key = peewee.CompositeKey(
            "peer_party_id", "timestamp", "timestamp_discriminator", "transaction_id"
        )
        indexes = ((("transaction_id", "timestamp", "timestamp_discriminator"), False),)
        constraints = [
            peewee.SQL("FOREIGN KEY (peer_party_id) REFERENCES node_recovery_party_info (party_id)")
        ]


class SenderDistributionRecord(_DistributionRecord):
    """node_sender_distr_recs: one row per receiving peer of a transaction we sent."""

    sender_states_to_record = peewee.SmallIntegerField()

    class Meta:
        table_name = "node_sender_distr_recs"
        primary_key = _DistributionRecord._meta.primary_key


class ReceiverDistributionRecord(_DistributionRecord):
    """node_receiver_distr_recs: the sender's encrypted distribution list, kept for recovery."""

    distribution_list = peewee.BlobField()

    class Meta:
        table_name = "node_receiver_distr_recs"
        primary_key = _DistributionRecord._meta.primary_key


class AesEncryptionKey(_Template):
    """node_aes_encryption_keys: AES keys, wrapped; key_id is a UUID's text."""

    key_id = peewee.CharField(max_length=36, primary_key=True)
    key_material = peewee.BlobField()

    class Meta:
        table_name = "node_aes_encryption_keys"


class Checkpoint(_Template):
    """node_checkpoints: every flow the node runs, where it stands, and what it was doing."""

    flow_id = peewee.CharField(max_length=36, primary_key=True)
    flow_name = peewee.CharField(max_length=255)
    status = peewee.SmallIntegerField()
    progress_step = peewee.CharField(max_length=255, null=True)
    counterparties = peewee.TextField(default="[]")
    tx_id = peewee.CharField(max_length=TX_ID, null=True)
    started_at = UtcDateTimeField()
    timestamp = UtcDateTimeField()
    error = peewee.TextField(null=True)
    checkpoint_value = peewee.BlobField(null=True)

    class Meta:
        table_name = "node_checkpoints"
        indexes = ((("status",), False), (("tx_id",), False))


class NotaryCommittedState(_Template):
    """node_notary_committed_states: a consumed state ref ("TXID:index") and what consumed it."""

    state_ref = peewee.CharField(max_length=TX_ID + 11, primary_key=True)
    consuming_transaction_id = peewee.CharField(max_length=TX_ID)

    class Meta:
        table_name = "node_notary_committed_states"
        indexes = ((("consuming_transaction_id",), False),)


class NotaryCommittedTransaction(_Template):
    """node_notary_committed_txs: every transaction the notary signed."""

    transaction_id = peewee.CharField(max_length=TX_ID, primary_key=True)
    committed_at = UtcDateTimeField()

    class Meta:
        table_name = "node_notary_committed_txs"


class NotaryRequestLog(_Template):
    """node_notary_request_log: who asked the notary to commit what, and when."""

    id = peewee.AutoField()
    consuming_transaction_id = peewee.CharField(max_length=TX_ID)
    requesting_party_name = peewee.CharField(max_length=255, null=True)
    request_timestamp = UtcDateTimeField()

    class Meta:
        table_name = "node_notary_request_log"


class ReconciliationStatusRow(_Template):
    """cr_reconciliation_status: LedgerSync's status per (party, direction), the reference's columns.

    Times are epoch milliseconds (BIGINT); the result is the set of missing ids as concatenated
    32-byte ids (an empty BLOB for the empty set); an absent error is the empty string, as printed.
    """

    party_name = peewee.CharField(max_length=255)
    is_requester = peewee.BooleanField()
    state_machine_id = peewee.CharField(max_length=36, null=True)
    last_successful_reconciliation_time_started = peewee.BigIntegerField(null=True)
    last_successful_reconciliation_time_finished = peewee.BigIntegerField(null=True)
    last_successful_reconciliation_status = peewee.CharField(max_length=32, null=True)
    last_successful_reconciliation_result = peewee.BlobField(default=b"")
    last_reconciliation_time_started = peewee.BigIntegerField(null=True)
    last_reconciliation_time_finished = peewee.BigIntegerField(null=True)
    last_reconciliation_status = peewee.CharField(max_length=32)
    last_reconciliation_error = peewee.TextField(default="")

    class Meta:
        table_name = "cr_reconciliation_status"
        primary_key = peewee.CompositeKey("party_name", "is_requester")


class ReconciliationJob(_Template):
    """cr_reconciliation_jobs: reconciliations this node has queued or is running, one per party.

    state is QUEUED or RUNNING; queued_at_ms is epoch milliseconds (jobs run oldest first); the row
    is deleted when the reconciliation ends, so what is left after a crash is re-run at start.
    """

    party_name = peewee.CharField(max_length=255, primary_key=True)
    both_directions = peewee.BooleanField(default=False)
    state = peewee.CharField(max_length=16)
    queued_at_ms = peewee.BigIntegerField()
    state_machine_id = peewee.CharField(max_length=36, null=True)

    class Meta:
        table_name = "cr_reconciliation_jobs"
        indexes = ((("state", "queued_at_ms"), False),)


class ReconciliationRequest(_Template):
    """cr_reconciliation_requests: when each party's reconciliation requests reached us (epoch ms).

    The responder's sliding-window rate limit counts these rows, so the limit holds across restarts
    (Corda keeps it in memory); rows older than the window are deleted as requests arrive.
    """

    party_name = peewee.CharField(max_length=255)
    requested_at_ms = peewee.BigIntegerField()

    class Meta:
        table_name = "cr_reconciliation_requests"
        indexes = ((("party_name", "requested_at_ms"), False),)


class HospitalRecord(_Template):
    """node_flow_hospital: one row per consultation of the flow hospital (a flow's error, the staff's
    diagnosis, what was done); a flow's rows are its retry history."""

    record_id = peewee.AutoField()
    flow_id = peewee.CharField(max_length=36, index=True)
    flow_name = peewee.CharField(max_length=255)
    timestamp = UtcDateTimeField()
    progress_step = peewee.CharField(max_length=255, null=True)
    error_type = peewee.CharField(max_length=255, null=True)
    error_message = peewee.TextField(null=True)
    staff = peewee.CharField(max_length=255, null=True)
    diagnosis = peewee.CharField(max_length=32, null=True)
    outcome = peewee.CharField(max_length=32)
    delay_s = peewee.FloatField(null=True)
    attempt = peewee.IntegerField(default=0)

    class Meta:
        table_name = "node_flow_hospital"


class AuditLogEntry(_Template):
    """node_audit_log: every operator action on flows: who, when, what, why, the outcome."""

    entry_id = peewee.AutoField()
    timestamp = UtcDateTimeField(index=True)
    username = peewee.CharField(max_length=255)
    role = peewee.CharField(max_length=32)
    action = peewee.CharField(max_length=255)
    reason = peewee.TextField(null=True)
    target = peewee.TextField()
    outcome = peewee.TextField()
    surface = peewee.CharField(max_length=32, default="")

    class Meta:
        table_name = "node_audit_log"


class RecoveryMissingTransaction(_Template):
    """node_recovery_missing: what Ledger Recovery found missing, before and after it fetched it."""

    transaction_id = peewee.CharField(max_length=TX_ID)
    peer_name = peewee.CharField(max_length=255)
    record_type = peewee.CharField(max_length=16)
    transaction_role = peewee.CharField(max_length=16)
    timestamp = UtcDateTimeField()
    timestamp_discriminator = peewee.IntegerField()
    states_to_record = peewee.SmallIntegerField()
    distribution_list = peewee.BlobField()
    flow_id = peewee.CharField(max_length=36)
    status = peewee.CharField(max_length=16, default="PENDING")
    failure_cause = peewee.TextField(null=True)
    attempts = peewee.IntegerField(default=0)
    updated_at = UtcDateTimeField()

    class Meta:
        table_name = "node_recovery_missing"
        primary_key = peewee.CompositeKey("transaction_id", "peer_name", "record_type")
        indexes = (
            (("status", "timestamp", "timestamp_discriminator"), False),  # the next PENDING batch
            (("peer_name", "status", "updated_at"), False),  # each scrape's counts, from the index alone
        )


class RecoveryResultRecord(_Template):
    """node_recovery_results: Corda's RecoveryResult per transaction and run, kept for analysis."""

    result_id = peewee.AutoField()
    flow_id = peewee.CharField(max_length=36, index=True)
    transaction_id = peewee.CharField(max_length=TX_ID, index=True)
    peer_name = peewee.CharField(max_length=255)
    transaction_role = peewee.CharField(max_length=16)
    synchronised = peewee.BooleanField()
    synchronised_initiated = peewee.BooleanField(default=False)
    failure_cause = peewee.TextField(null=True)
    timestamp = UtcDateTimeField()

    class Meta:
        table_name = "node_recovery_results"


class RecoveryCursorRecord(_Template):
    """node_recovery_cursors: per (peer, record type, time window), the last record walked."""

    peer_name = peewee.CharField(max_length=255)
    record_type = peewee.CharField(max_length=16)
    from_ms = peewee.BigIntegerField()  # -1: an open end
    until_ms = peewee.BigIntegerField()
    cursor_timestamp = UtcDateTimeField()
    cursor_discriminator = peewee.IntegerField()
    cursor_transaction_id = peewee.CharField(max_length=TX_ID)
    cursor_peer_party_id = peewee.CharField(max_length=PARTY_ID)
    updated_at = UtcDateTimeField()

    class Meta:
        table_name = "node_recovery_cursors"
        primary_key = peewee.CompositeKey("peer_name", "record_type", "from_ms", "until_ms")


class SchemaMigration(_Template):
    """ledger_agent_schema_migrations: the migrations applied, by version."""

    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=255)
    applied_at = UtcDateTimeField()

    class Meta:
        table_name = "ledger_agent_schema_migrations"


M = TypeVar("M", bound=peewee.Model)


@dataclass(frozen=True)
class Schema:
    """The models of one database."""

    database: peewee.Database
    node_transactions: type[NodeTransaction]
    vault_states: type[VaultState]
    state_party: type[StateParty]
    recovery_party_info: type[RecoveryPartyInfo]
    sender_distr_recs: type[SenderDistributionRecord]
    receiver_distr_recs: type[ReceiverDistributionRecord]
    aes_encryption_keys: type[AesEncryptionKey]
    checkpoints: type[Checkpoint]
    notary_committed_states: type[NotaryCommittedState]
    notary_committed_txs: type[NotaryCommittedTransaction]
    notary_request_log: type[NotaryRequestLog]
    schema_migrations: type[SchemaMigration]
    reconciliation_status: type[ReconciliationStatusRow]
    reconciliation_jobs: type[ReconciliationJob]
    reconciliation_requests: type[ReconciliationRequest]
    hospital_records: type[HospitalRecord]
    audit_log: type[AuditLogEntry]
    recovery_missing: type[RecoveryMissingTransaction]
    recovery_results: type[RecoveryResultRecord]
    recovery_cursors: type[RecoveryCursorRecord]

    def models(self) -> list[type[peewee.Model]]:
        return [getattr(self, f.name) for f in fields(self) if f.name != "database"]


def _bound(template: type[M], database: peewee.Database) -> type[M]:
    options: dict[str, Any] = {"database": database, "table_name": template._meta.table_name}
    if isinstance(template._meta.primary_key, peewee.CompositeKey):
        # A composite key is not inherited by subclasses; a single-field one is, with its field.
        options["primary_key"] = template._meta.primary_key
    meta = type("Meta", (), options)
    return type(template.__name__, (template,), {"Meta": meta, "__module__": __name__})


def bind_schema(database: peewee.Database) -> Schema:
    """Fresh model classes bound to this database alone."""
    return Schema(
        database=database,
        node_transactions=_bound(NodeTransaction, database),
        vault_states=_bound(VaultState, database),
        state_party=_bound(StateParty, database),
        recovery_party_info=_bound(RecoveryPartyInfo, database),
        sender_distr_recs=_bound(SenderDistributionRecord, database),
        receiver_distr_recs=_bound(ReceiverDistributionRecord, database),
        aes_encryption_keys=_bound(AesEncryptionKey, database),
        checkpoints=_bound(Checkpoint, database),
        notary_committed_states=_bound(NotaryCommittedState, database),
        notary_committed_txs=_bound(NotaryCommittedTransaction, database),
        notary_request_log=_bound(NotaryRequestLog, database),
        schema_migrations=_bound(SchemaMigration, database),
        reconciliation_status=_bound(ReconciliationStatusRow, database),
        reconciliation_jobs=_bound(ReconciliationJob, database),
        reconciliation_requests=_bound(ReconciliationRequest, database),
        hospital_records=_bound(HospitalRecord, database),
        audit_log=_bound(AuditLogEntry, database),
        recovery_missing=_bound(RecoveryMissingTransaction, database),
        recovery_results=_bound(RecoveryResultRecord, database),
        recovery_cursors=_bound(RecoveryCursorRecord, database),
    )

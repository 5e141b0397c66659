"""node_flow_hospital (the hospital's medical records) and node_audit_log (operators' actions)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime

from agent.hospital.records import AuditEntry, MedicalRecord
from agent.store.database import write_transaction
from agent.store.models import HospitalRecord, Schema

_CHUNK = 500  # ids per IN (...): well under SQLite's variable limit


class MedicalRecordRepository:
    """Implements agent.ports.hospital.MedicalRecords."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def add_record(self, record: MedicalRecord) -> None:
        with write_transaction(self.schema.database):
            self.schema.hospital_records.insert(
                flow_id=record.flow_id,
                flow_name=record.flow_name,
                timestamp=record.at,
                progress_step=record.step,
                error_type=record.error_type,
                error_message=record.error_message,
                staff=record.staff,
                diagnosis=record.diagnosis,
                outcome=record.outcome,
                delay_s=record.delay_s,
                attempt=record.attempt,
            ).execute()

    def records(self, flow_ids: Iterable[str] | None = None) -> list[MedicalRecord]:
        table = self.schema.hospital_records
        order = (table.flow_id, table.record_id)
        if flow_ids is None:
            return [_record(r) for r in table.select().order_by(*order)]
        ids = sorted(set(flow_ids))
        found: list[MedicalRecord] = []
        for i in range(0, len(ids), _CHUNK):
            query = table.select().where(table.flow_id.in_(ids[i : i + _CHUNK])).order_by(*order)
            found.extend(_record(r) for r in query)
        found.sort(key=lambda r: r.flow_id)  # stable: each flow's rows stay oldest first
        return found

    def flows_with_records(self) -> list[str]:
        table = self.schema.hospital_records
        rows: Iterator[tuple[str]] = table.select(table.flow_id).distinct().tuples().iterator()
        return [str(row[0]) for row in rows]

    def remove_records(self, flow_id: str) -> int:
        table = self.schema.hospital_records
        with write_transaction(self.schema.database):
            return int(table.delete().where(table.flow_id == flow_id).execute())


def _record(row: HospitalRecord) -> MedicalRecord:
    return MedicalRecord(
        flow_id=row.flow_id,
        flow_name=row.flow_name,
        at=row.timestamp,
        step=row.progress_step,
        error_type=row.error_type,
        error_message=row.error_message,
        staff=row.staff,
        diagnosis=row.diagnosis,
        outcome=row.outcome,
        delay_s=row.delay_s,
        attempt=row.attempt,
    )


class AuditLogRepository:
    """Implements agent.ports.hospital.AuditLog: append-only."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def append(self, entry: AuditEntry) -> int:
        with write_transaction(self.schema.database):
            return int(
                self.schema.audit_log.insert(
                    timestamp=entry.at,
                    username=entry.user,
                    role=entry.role,
                    action=entry.action,
                    reason=entry.reason,
                    target=entry.target,
                    outcome=entry.outcome,
                    surface=entry.surface,
                ).execute()
            )

    def entries(
        self,
        *,
        since: datetime | None = None,
        user: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        table = self.schema.audit_log
        # By time: an entry is stamped when its call was asked, so a bulk job's "started" precedes its
        # "finished" even when the job ended (and wrote) before the call that started it recorded.
        query = table.select().order_by(table.timestamp.desc(), table.entry_id.desc()).limit(limit)
        if since is not None:
            query = query.where(table.timestamp >= since)
        if user is not None:
            query = query.where(table.username == user)
        if action is not None:
            query = query.where(table.action == action)
        return [
            AuditEntry(
                at=row.timestamp,
                user=row.username,
                role=row.role,
                action=row.action,
                reason=row.reason,
                target=row.target,
                outcome=row.outcome,
                surface=row.surface,
                entry_id=row.entry_id,
            )
            for row in query
        ]

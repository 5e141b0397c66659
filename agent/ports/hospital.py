"""The flow hospital's medical records (node_flow_hospital) and the operators' audit log
(node_audit_log)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from agent.hospital.records import AuditEntry, MedicalRecord


class MedicalRecords(Protocol):
    def add_record(self, record: MedicalRecord) -> None:
        """Append one consultation."""
        ...

    def records(self, flow_ids: Iterable[str] | None = None) -> list[MedicalRecord]:
        """The records of these flows (every flow's when None), by flow then oldest first."""
        ...

    def flows_with_records(self) -> list[str]:
        """Every flow id that has a record."""
        ...

    def remove_records(self, flow_id: str) -> int:
        """Drop a flow's records (it was killed, or completed); how many went."""
        ...


class AuditLog(Protocol):
    def append(self, entry: AuditEntry) -> int:
        """Append one entry; its id."""
        ...

    def entries(
        self,
        *,
        since: datetime | None = None,
        user: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Entries matching every filter given, newest first (by their time, then as appended), at most
        limit."""
        ...

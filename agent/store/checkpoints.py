"""node_checkpoints: every flow the node runs, where it stands, and what it was doing."""

from __future__ import annotations

import json
from collections.abc import Iterator

import peewee

from agent.errors import StoreError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.store.database import write_transaction
from agent.store.models import Checkpoint as CheckpointRow
from agent.store.models import Schema


class CheckpointRepository:
    """The checkpoints of one store (implements agent.ports.checkpoints.Checkpoints)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def save_checkpoint(self, checkpoint: FlowCheckpoint) -> None:
        cp = self.schema.checkpoints
        values = {
            "flow_id": checkpoint.flow_id,
            "flow_name": checkpoint.flow_name,
            "status": int(checkpoint.status),
            "progress_step": checkpoint.progress_step,
            "counterparties": json.dumps([str(n) for n in checkpoint.counterparties]),
            "tx_id": None if checkpoint.tx_id is None else str(checkpoint.tx_id),
            "started_at": checkpoint.started_at,
            "timestamp": checkpoint.updated_at,
            "error": checkpoint.error,
            "checkpoint_value": checkpoint.value,
        }
        with write_transaction(self.schema.database):
            cp.insert(**values).on_conflict(
                conflict_target=[cp.flow_id],
                update={getattr(cp, k): v for k, v in values.items() if k not in ("flow_id", "started_at")},
            ).execute()

    def update_checkpoint(self, checkpoint: FlowCheckpoint, *, value_changed: bool = True) -> None:
        """A flow's progress on its existing row; the state's bytes are written only when they changed."""
        cp = self.schema.checkpoints
        changes: dict[object, object] = {
            cp.status: int(checkpoint.status),
            cp.progress_step: checkpoint.progress_step,
            cp.counterparties: json.dumps([str(n) for n in checkpoint.counterparties]),
            cp.tx_id: None if checkpoint.tx_id is None else str(checkpoint.tx_id),
            cp.timestamp: checkpoint.updated_at,
            cp.error: checkpoint.error,
        }
        if value_changed:
            changes[cp.checkpoint_value] = checkpoint.value
        with write_transaction(self.schema.database):
            updated = cp.update(changes).where(cp.flow_id == checkpoint.flow_id).execute()
        if updated != 1:
            raise StoreError(f"no checkpoint row for flow {checkpoint.flow_id} to update")

    def get_checkpoint(self, flow_id: str) -> FlowCheckpoint | None:
        cp = self.schema.checkpoints
        row = cp.get_or_none(cp.flow_id == flow_id)
        return None if row is None else _checkpoint(row)

    def count_checkpoints(self) -> dict[FlowStatus, int]:
        cp = self.schema.checkpoints
        counts = {status: 0 for status in FlowStatus}
        rows: Iterator[tuple[int, int]] = (
            cp.select(cp.status, peewee.fn.COUNT(cp.flow_id)).group_by(cp.status).tuples().iterator()
        )
        for status, count in rows:
            counts[FlowStatus(status)] = int(count)
        return counts

    def iter_checkpoints(
        self,
        status: FlowStatus | None = None,
        *,
        tx_id: SecureHash | None = None,
        flow_name: str | None = None,
    ) -> Iterator[FlowCheckpoint]:
        cp = self.schema.checkpoints
        query = cp.select().order_by(cp.started_at, cp.flow_id)
        if status is not None:
            query = query.where(cp.status == int(status))
        if tx_id is not None:
            query = query.where(cp.tx_id == str(tx_id))
        if flow_name is not None:
            query = query.where(cp.flow_name == flow_name)
        for row in query:
            yield _checkpoint(row)


def _checkpoint(row: CheckpointRow) -> FlowCheckpoint:
    return FlowCheckpoint(
        flow_id=row.flow_id,
        flow_name=row.flow_name,
        status=FlowStatus(row.status),
        started_at=row.started_at,
        updated_at=row.timestamp,
        progress_step=row.progress_step,
        counterparties=tuple(X500Name.parse(n) for n in json.loads(row.counterparties)),
        tx_id=None if row.tx_id is None else SecureHash.parse(row.tx_id),
        error=row.error,
        value=None if row.checkpoint_value is None else bytes(row.checkpoint_value),
    )

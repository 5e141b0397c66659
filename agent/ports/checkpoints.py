"""The flows' checkpoints (node_checkpoints), as the flow engine needs them, and their counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.hashing import SecureHash


class Checkpoints(Protocol):
    """One row per flow: saved whole, updated as it steps, listed by status, transaction or name."""

    def save_checkpoint(self, checkpoint: FlowCheckpoint) -> None:
        """Insert, or replace everything but started_at (an upsert by flow id)."""
        ...

    def update_checkpoint(self, checkpoint: FlowCheckpoint, *, value_changed: bool = True) -> None:
        """A flow's progress on its existing row (StoreError if none); the bytes only when changed."""
        ...

    def get_checkpoint(self, flow_id: str) -> FlowCheckpoint | None:
        """The flow's checkpoint, None when unknown."""
        ...

    def iter_checkpoints(
        self,
        status: FlowStatus | None = None,
        *,
        tx_id: SecureHash | None = None,
        flow_name: str | None = None,
    ) -> Iterator[FlowCheckpoint]:
        """Checkpoints matching every filter given, oldest started first."""
        ...


class CheckpointCounts(Protocol):
    """Flows by status, for the management beans."""

    def count_checkpoints(self) -> dict[FlowStatus, int]:
        """Every status present, zero included."""
        ...

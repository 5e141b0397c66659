"""What a node remembers of each flow, so that after a restart it knows where every flow stopped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name


class FlowStatus(IntEnum):
    """Stored as Corda's Checkpoint.FlowStatus ordinal."""

    RUNNABLE = 0
    FAILED = 1
    COMPLETED = 2
    HOSPITALIZED = 3
    KILLED = 4
    PAUSED = 5


@dataclass(frozen=True)
class FlowCheckpoint:
    flow_id: str
    flow_name: str
    status: FlowStatus
    started_at: datetime
    updated_at: datetime
    progress_step: str | None = None
    counterparties: tuple[X500Name, ...] = ()
    tx_id: SecureHash | None = None
    error: str | None = None
    value: bytes | None = field(default=None, repr=False)

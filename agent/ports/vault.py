"""The vault's states (vault_states), read in pages; recording a transaction writes them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import StateRef, TransactionState
from agent.ledger.vault import RelevancyStatus, StateStatus


@dataclass(frozen=True)
class VaultRecord:
    """One vault_states row, decoded."""

    ref: StateRef
    state: TransactionState
    notary_name: str | None
    state_status: StateStatus
    relevancy_status: RelevancyStatus
    recorded_timestamp: datetime
    consumed_timestamp: datetime | None
    consuming_tx_id: SecureHash | None


class VaultStore(Protocol):
    """Paged reads of the vault (by state ref order) and its counts."""

    def iter_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = RelevancyStatus.RELEVANT,
        contract: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[VaultRecord]:
        """States in (transaction id, output index) order; None for a filter means any."""
        ...

    def count_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = None,
    ) -> int:
        """States with that status and relevancy (any when None)."""
        ...

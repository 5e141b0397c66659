"""LedgerSync's tables: the reconciliation statuses (cr_reconciliation_status) and the responder's
sliding window of admitted requests (cr_reconciliation_requests)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue


class ReconciliationStatuses(Protocol):
    """One row per (party, direction), written by the reference's rules (agent/store/reconciliation.py)."""

    def started(
        self, party: X500Name | str, is_requester: bool, state_machine_id: str, at_ms: int
    ) -> ReconciliationStatus:
        """IN_PROGRESS; a row is made if there was none; last_successful_* kept."""
        ...

    def succeeded(
        self, party: X500Name | str, is_requester: bool, at_ms: int, missing_ids: Iterable[SecureHash]
    ) -> ReconciliationStatus:
        """DIFFERENCES_FOUND with the missing ids, or DIFFERENCES_NOT_FOUND; StoreError if never started."""
        ...

    def failed(
        self, party: X500Name | str, is_requester: bool, at_ms: int, error: str
    ) -> ReconciliationStatus:
        """FAILED with the error; the last success kept; StoreError if never started."""
        ...

    def stopped(self, party: X500Name | str, is_requester: bool, at_ms: int) -> ReconciliationStatus:
        """STOPPED; StoreError if never started."""
        ...

    def refresh(self, is_present: Callable[[SecureHash], bool]) -> int:
        """Drop the ids now recorded (is_present) from every result; how many were dropped."""
        ...

    def take_legacy_jobs(self) -> list[tuple[str, bool, int]]:
        """The old job queue's rows (party, both directions, queued at ms), removed as read."""
        ...

    def get(self, party: X500Name | str, is_requester: bool) -> ReconciliationStatus | None: ...

    def query(
        self,
        party: X500Name | str | None = None,
        last_reconciliation_status: ReconciliationStatusValue | None = None,
        is_requester: bool = True,
    ) -> list[ReconciliationStatus]:
        """GetReconciliationStatusesFlow's filter, ordered by party name."""
        ...

    def summaries(self) -> list[dict[str, Any]]:
        """Per requester row, what monitoring needs (no model object per row)."""
        ...

    def number_in_progress(self) -> int: ...

    def number_failed(self) -> int: ...

    def number_with_differences(self) -> int: ...

    def number_without_differences(self) -> int: ...

    def failed_parties(self) -> list[str]: ...

    def parties_with_difference(self) -> list[str]: ...


class RequestWindow(Protocol):
    """The responder's admitted requests per party, kept across restarts."""

    def admit_within(self, party_name: str, now_ms: int, since_ms: int, allowed: int) -> int | None:
        """Forget requests at or before since_ms; then, if fewer than allowed remain, record one at
        now_ms and return None; else record nothing and return how many there are (one transaction)."""
        ...

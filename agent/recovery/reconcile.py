"""LedgerSync as Ledger Recovery's first step (`ledger-agent recover`): reconcile, then recover.

Distribution records only name what two-phase finality sent; LedgerSync finds every transaction a
peer holds that involves us, records or not (written before records existed, back-chain copies).
The recovery flow schedules a reconciliation with each of its peers, waits for them, and adds what
they found to its missing transactions (record type LEDGERSYNC), fetched after the records' ones.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from agent.errors import ReconciliationAlreadyScheduledException
from agent.ledger.identity import X500Name
from agent.ledgersync.app import LedgerSync
from agent.operator_api.status import ReconciliationStatusValue


@dataclass(frozen=True)
class Reconciled:
    """A reconciliation's outcome: its status, the ids the peer has that we lack, its error."""

    status: str
    missing: tuple[str, ...]
    error: str


class Reconciler(Protocol):
    def schedule(self, peer: X500Name) -> None:
        """Start a reconciliation with peer (one already under way will do)."""
        ...

    def outcome(self, peer: X500Name, since_ms: int) -> Reconciled | None:
        """The outcome of a reconciliation with peer that finished at or after since_ms; None until then."""
        ...


class LedgerSyncReconciler:
    def __init__(self, ledgersync: LedgerSync) -> None:
        self.ledgersync = ledgersync

    def schedule(self, peer: X500Name) -> None:
        with contextlib.suppress(ReconciliationAlreadyScheduledException):  # its outcome will do
            self.ledgersync.schedule_reconciliation([peer])

    def outcome(self, peer: X500Name, since_ms: int) -> Reconciled | None:
        if self.ledgersync.is_reconciliation_scheduled_for_party(peer):
            return None
        status = self.ledgersync.get_reconciliation_status_for_party(peer, True)
        # One that finished before we asked is stale: we wait for ours (or the one under way then).
        if status is None or (status.last_reconciliation_time_finished or 0) < since_ms:
            return None
        value = status.last_reconciliation_status
        if value is ReconciliationStatusValue.IN_PROGRESS:
            return None
        found = (
            tuple(str(h) for h in status.last_successful_reconciliation_result)
            if value is ReconciliationStatusValue.DIFFERENCES_FOUND
            else ()
        )
        return Reconciled(value.value, found, status.last_reconciliation_error)

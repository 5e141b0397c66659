"""The reference's ReconciliationStatus as the management endpoint reports it, and as the shell prints it.

Printing: strings in double quotes with JSON escapes (an error may hold quotes or new lines), null
for absent values, ids in upper-case hex. `pretty()` gives the reference's re-formatted layout
(with the comma after stateMachineRunId that the reference's examples lose). How the agent keeps
these rows is agent.store.reconciliation's business (the port: agent.ports.reconciliation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

from agent.ledger.hashing import SecureHash


class ReconciliationStatusValue(Enum):
    IN_PROGRESS = "IN_PROGRESS"
    DIFFERENCES_FOUND = "DIFFERENCES_FOUND"
    DIFFERENCES_NOT_FOUND = "DIFFERENCES_NOT_FOUND"
    FAILED = "FAILED"
    STOPPED = "STOPPED"


@dataclass(frozen=True, kw_only=True)
class ReconciliationStatus:
    """The reference's ReconciliationStatus; times are epoch milliseconds."""

    party_name: str
    is_requester: bool
    state_machine_run_id: str | None
    last_successful_reconciliation_time_started: int | None
    last_successful_reconciliation_time_finished: int | None
    last_successful_reconciliation_status: ReconciliationStatusValue | None
    last_successful_reconciliation_result: tuple[SecureHash, ...]
    last_reconciliation_time_started: int | None
    last_reconciliation_time_finished: int | None
    last_reconciliation_status: ReconciliationStatusValue
    last_reconciliation_error: str

    def _fields(self, result: str) -> list[str]:
        """name=value for each field in the reference's order; `result` is the list, already laid out."""
        named = [
            ("partyName", _quoted(self.party_name)),
            ("isRequester", "true" if self.is_requester else "false"),
            ("stateMachineRunId", _quoted(self.state_machine_run_id)),
            (
                "lastSuccessfulReconciliationTimeStarted",
                _plain(self.last_successful_reconciliation_time_started),
            ),
            (
                "lastSuccessfulReconciliationTimeFinished",
                _plain(self.last_successful_reconciliation_time_finished),
            ),
            ("lastSuccessfulReconciliationStatus", _plain(self.last_successful_reconciliation_status)),
            ("lastSuccessfulReconciliationResult", result),
            ("lastReconciliationTimeStarted", _plain(self.last_reconciliation_time_started)),
            ("lastReconciliationTimeFinished", _plain(self.last_reconciliation_time_finished)),
            ("lastReconciliationStatus", _plain(self.last_reconciliation_status)),
            ("lastReconciliationError", _quoted(self.last_reconciliation_error)),
        ]
        return [f"{name}={value}" for name, value in named]

    def as_dict(self) -> dict[str, Any]:
        """Plain data with the reference's field names (ids in upper-case hex, statuses by name)."""

        def value(v: ReconciliationStatusValue | None) -> str | None:
            return None if v is None else v.value

        return {
            "partyName": self.party_name,
            "isRequester": self.is_requester,
            "stateMachineRunId": self.state_machine_run_id,
            "lastSuccessfulReconciliationTimeStarted": self.last_successful_reconciliation_time_started,
            "lastSuccessfulReconciliationTimeFinished": self.last_successful_reconciliation_time_finished,
            "lastSuccessfulReconciliationStatus": value(self.last_successful_reconciliation_status),
            "lastSuccessfulReconciliationResult": [
                str(i) for i in self.last_successful_reconciliation_result
            ],
            "lastReconciliationTimeStarted": self.last_reconciliation_time_started,
            "lastReconciliationTimeFinished": self.last_reconciliation_time_finished,
            "lastReconciliationStatus": value(self.last_reconciliation_status),
            "lastReconciliationError": self.last_reconciliation_error,
        }

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> ReconciliationStatus:
        """The inverse of as_dict: a status as a client reads it from the management endpoint."""

        def status(v: str | None) -> ReconciliationStatusValue | None:
            return None if v is None else ReconciliationStatusValue(v)

        last = status(value["lastReconciliationStatus"])
        assert last is not None
        return cls(
            party_name=value["partyName"],
            is_requester=value["isRequester"],
            state_machine_run_id=value["stateMachineRunId"],
            last_successful_reconciliation_time_started=value["lastSuccessfulReconciliationTimeStarted"],
            last_successful_reconciliation_time_finished=value["lastSuccessfulReconciliationTimeFinished"],
            last_successful_reconciliation_status=status(value["lastSuccessfulReconciliationStatus"]),
            last_successful_reconciliation_result=tuple(
                SecureHash.parse(i) for i in value["lastSuccessfulReconciliationResult"]
            ),
            last_reconciliation_time_started=value["lastReconciliationTimeStarted"],
            last_reconciliation_time_finished=value["lastReconciliationTimeFinished"],
            last_reconciliation_status=last,
            last_reconciliation_error=value["lastReconciliationError"],
        )

    def __str__(self) -> str:
        ids = ", ".join(str(h) for h in self.last_successful_reconciliation_result)
        return f"ReconciliationStatus({', '.join(self._fields(f'[{ids}]'))})"

    def pretty(self) -> str:
        """The re-formatted, one field a line layout of the reference's examples."""
        ids = ",\n".join(f"        {h}" for h in self.last_successful_reconciliation_result)
        lines = (f"    {field}" for field in self._fields(f"[\n{ids}\n    ]"))
        return "ReconciliationStatus(\n" + ",\n".join(lines) + "\n)"


def _quoted(value: str | None) -> str:
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _plain(value: int | ReconciliationStatusValue | None) -> str:
    if value is None:
        return "null"
    return value.value if isinstance(value, ReconciliationStatusValue) else str(value)

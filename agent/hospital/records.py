"""What the hospital writes down: one medical record per error of a flow, and one audit entry per
operator action on flows. Plain data; the store keeps them (agent.ports.hospital)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Outcomes of a consultation, as records and listings print them.
RETRY = "RETRY"  # discharged: the step runs again from the checkpoint after delay_s
OBSERVATION = "OBSERVATION"  # kept HOSPITALIZED
FAILED = "FAILED"  # nobody's specialty: the error propagated
KILLED = "KILLED"  # a node.conf rule killed it
RECOVERED = "RECOVERED"  # the flow committed a step after its errors: discharged for good
OUTCOMES = (RETRY, OBSERVATION, FAILED, KILLED, RECOVERED)


@dataclass(frozen=True)
class MedicalRecord:
    """One consultation: a flow's error at a step, who diagnosed what, and what the engine did."""

    flow_id: str
    flow_name: str
    at: datetime
    step: str | None
    error_type: str | None
    error_message: str | None
    staff: str | None
    diagnosis: str | None
    outcome: str
    delay_s: float | None = None
    attempt: int = 0  # the n-th error since the flow's last checkpoint (1 for the first)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "step": self.step,
            "errorType": self.error_type,
            "error": self.error_message,
            "staff": self.staff,
            "diagnosis": self.diagnosis,
            "outcome": self.outcome,
            "retryInSeconds": self.delay_s,
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class AuditEntry:
    """An operator's action: who, when, what, on which flows, why, and how it went."""

    at: datetime
    user: str
    role: str
    action: str  # the catalogue's command name: killFlow, retryFlow, pauseAllHospitalized, ...
    reason: str | None
    target: str  # a flow id, a filter as JSON, or a bulk job's id
    outcome: str  # "ok", "refused: ...", a count, a job id
    surface: str = ""  # rest, jsonrpc, jolokia, shell
    entry_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.entry_id,
            "at": self.at.isoformat(),
            "user": self.user,
            "role": self.role,
            "action": self.action,
            "reason": self.reason,
            "target": self.target,
            "outcome": self.outcome,
            "surface": self.surface,
        }

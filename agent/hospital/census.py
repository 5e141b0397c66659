"""The hospital's census: its patients counted by checkpoint status, diagnosis and staff, for monitoring.

One pass over the patients (FlowHospital.patients, the node_flow_hospital records of the flows under
care) gives, per group, how many there are, how long the longest-staying one has been in (since its
first error at its current checkpoint) and the most errors any of them has had there. The labels
are bounded (statuses, diagnoses, staff names and node.conf rules), never flow ids; what the metrics,
the FlowHospital bean and `ledger-agent check` read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.hospital.hospital import PatientView

UNKNOWN = "-"  # a patient without a consultation on record (its record could not be written)


@dataclass(frozen=True)
class PatientGroup:
    """The patients with one checkpoint status, last diagnosis and staff member (or rules[i])."""

    status: str
    diagnosis: str
    staff: str
    patients: int
    oldest_age_s: float
    most_attempts: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "diagnosis": self.diagnosis,
            "staff": self.staff,
            "patients": self.patients,
            "oldestAgeSeconds": round(self.oldest_age_s, 3),
            "mostAttempts": self.most_attempts,
        }


def census(patients: Iterable[PatientView], now: datetime) -> list[PatientGroup]:
    """The patients grouped by (status, diagnosis, staff), in that order."""
    groups: dict[tuple[str, str, str], tuple[int, float, int]] = {}
    for patient in patients:
        key = (patient.checkpoint.status.name, patient.diagnosis or UNKNOWN, patient.staff or UNKNOWN)
        count, oldest, most = groups.get(key, (0, 0.0, 0))
        groups[key] = (count + 1, max(oldest, patient.age_s(now)), max(most, patient.attempts))
    return [PatientGroup(*key, *figures) for key, figures in sorted(groups.items())]


def oldest_age_s(groups: Iterable[PatientGroup]) -> float:
    """The longest stay of any patient, 0 without patients."""
    return max((g.oldest_age_s for g in groups), default=0.0)

"""The hospital's census: patients grouped by status, diagnosis and staff, with the oldest's age and
the most attempts of each group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.hospital.census import UNKNOWN, PatientGroup, census, oldest_age_s
from agent.hospital.hospital import PatientView
from agent.hospital.records import OBSERVATION, RECOVERED, RETRY, MedicalRecord

NOW = datetime(2026, 1, 2, 12, tzinfo=UTC)


def patient(
    flow_id: str, status: FlowStatus, *errors: tuple[int, str, str, str], recovered_at: int | None = None
) -> PatientView:
    """A flow with records: (seconds ago, staff, diagnosis, outcome) each, and a recovery between."""
    checkpoint = FlowCheckpoint(flow_id, "FinalityFlow", status, NOW - timedelta(hours=1), NOW)
    records = [
        MedicalRecord(
            flow_id, "FinalityFlow", NOW - timedelta(seconds=ago), "S", "E", "e", staff, diagnosis, outcome
        )
        for ago, staff, diagnosis, outcome in errors
    ]
    if recovered_at is not None:
        recovery = MedicalRecord(
            flow_id,
            "FinalityFlow",
            NOW - timedelta(seconds=recovered_at),
            "S",
            None,
            None,
            None,
            None,
            RECOVERED,
        )
        records.insert(1, recovery)
    return PatientView(checkpoint, tuple(records))


def test_patients_are_grouped_with_the_oldest_age_and_the_most_attempts() -> None:
    retry = ("UnreachablePeerNurse", "DISCHARGE", RETRY)
    patients = [
        patient("a", FlowStatus.RUNNABLE, (600, *retry), (300, *retry), (10, *retry)),
        # Its first error was before a recovery: its stay at this checkpoint began 100 s ago.
        patient("b", FlowStatus.RUNNABLE, (900, *retry), (100, *retry), recovered_at=800),
        patient("c", FlowStatus.HOSPITALIZED, (50, "rules[0]", "OVERNIGHT_OBSERVATION", OBSERVATION)),
        patient("d", FlowStatus.PAUSED),  # no consultation on record
    ]
    groups = census(patients, NOW)
    assert groups == [
        PatientGroup("HOSPITALIZED", "OVERNIGHT_OBSERVATION", "rules[0]", 1, 50.0, 1),
        PatientGroup("PAUSED", UNKNOWN, UNKNOWN, 1, 0.0, 0),
        PatientGroup("RUNNABLE", "DISCHARGE", "UnreachablePeerNurse", 2, 600.0, 3),
    ]
    assert groups[2].as_dict() == {
        "status": "RUNNABLE",
        "diagnosis": "DISCHARGE",
        "staff": "UnreachablePeerNurse",
        "patients": 2,
        "oldestAgeSeconds": 600.0,
        "mostAttempts": 3,
    }
    assert oldest_age_s(groups) == 600.0
    assert census([], NOW) == [] and oldest_age_s([]) == 0.0

"""What monitoring reads of the flow hospital: the FlowHospital bean's attributes for /metrics
(mbeans.prometheus) and `ledger-agent check`.

    Patients                  how many flows are under the hospital's care
    OldestPatientAgeSeconds   the longest stay at one checkpoint (0 without patients)
    PatientGroups             per (status, diagnosis, staff): patients, oldestAgeSeconds, mostAttempts
    Admissions                per (staff, diagnosis): count, since the agent started
    Retries                   per staff member or retry rule: count, since the agent started (0 included)

Each read of a patient attribute lists the patients once (node_flow_hospital, agent.hospital.census);
the counts are copies of the hospital's in-memory counters. The bean itself, with the catalogue's
hospital commands, is agent.management.beans's.
"""

from __future__ import annotations

from typing import Any

from agent.hospital.census import census, oldest_age_s
from agent.hospital.hospital import FlowHospital
from mbeans.model import JavaType, MBean


def add_monitoring_attributes(bean: MBean, hospital: FlowHospital) -> MBean:
    """bean, with the attributes above read from hospital."""

    def groups() -> list[dict[str, Any]]:
        return [g.as_dict() for g in census(hospital.patients(), hospital.clock.now())]

    def admissions() -> list[dict[str, Any]]:
        counted, _ = hospital.counts()
        return [{"staff": s, "diagnosis": d, "count": n} for (s, d), n in sorted(counted.items())]

    bean.attribute(
        "Patients",
        JavaType.INT,
        "Flows under the hospital's care: kept for observation, or waiting for a retry of the step "
        "that failed",
        lambda: len(hospital.patients()),
    )
    bean.attribute(
        "OldestPatientAgeSeconds",
        JavaType.DOUBLE,
        "Seconds since the longest-staying patient's first error at its current checkpoint; 0 without patients",
        lambda: round(oldest_age_s(census(hospital.patients(), hospital.clock.now())), 3),
    )
    bean.attribute(
        "PatientGroups",
        JavaType.LIST,
        "Patients by checkpoint status, diagnosis and staff (or node.conf rule): patients, "
        "oldestAgeSeconds, mostAttempts (errors at the current checkpoint)",
        groups,
    )
    bean.attribute(
        "Admissions",
        JavaType.LIST,
        "Errors diagnosed since the agent started, by staff (or rule) and diagnosis: staff, diagnosis, count",
        admissions,
    )
    bean.attribute(
        "Retries",
        JavaType.MAP,
        "Retries ordered since the agent started, by staff member or retry rule (0 for those that have not)",
        lambda: hospital.counts()[1],
    )
    return bean

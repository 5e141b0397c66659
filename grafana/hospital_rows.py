"""The "Flow hospital" rows: patients by diagnosis and staff, the oldest patient's age, the most
attempts at one checkpoint, and admissions and retries per minute (docs/hospital.md, "Monitoring the
hospital"). The node view shows one agent's; the network view every selected agent's, by node.

The patient gauges have no sample without patients: the stats fall back to 0 (`or on() vector(0)`)
rather than "No data"; the series simply show nothing.
"""

from __future__ import annotations

from typing import Protocol

from grafana.panels import NODE_LEGEND, Row, ages, problems, series, stat
from mbeans import metrics as m

TITLE = "Flow hospital"


class Selector(Protocol):
    """A view's `on`: the metric on the selected node(s), with extra label matchers."""

    def __call__(self, metric: m.Metric, labels: str = "") -> str: ...


def _per_minute(total: str, by: str) -> str:
    return f"60 * sum by ({by}) (rate({total}[$__rate_interval]))"


def node_row(on: Selector) -> Row:
    patients, age = on(m.HOSPITAL_PATIENTS), on(m.HOSPITAL_OLDEST_PATIENT_AGE)
    attempts = on(m.HOSPITAL_PATIENT_ATTEMPTS_MAX)
    retried = on(m.HOSPITAL_PATIENTS, 'status="RUNNABLE", diagnosis="DISCHARGE"')
    return Row(
        TITLE,
        [
            (
                stat(
                    "Patients",
                    problems("orange"),
                    f"sum({patients}) or on() vector(0)",
                    description="Flows kept for observation or waiting for a retry of the step that failed",
                ),
                6,
                4,
            ),
            (
                stat(
                    "Oldest patient",
                    ages(300, 1800),
                    f"max({age}) or on() vector(0)",
                    unit="s",
                    description="Since the longest-staying patient's first error at its current checkpoint",
                ),
                6,
                4,
            ),
            (
                stat(
                    "Most attempts at one checkpoint",
                    problems("orange", 3),
                    f"max({attempts}) or on() vector(0)",
                    description=m.HOSPITAL_PATIENT_ATTEMPTS_MAX.help,
                ),
                6,
                4,
            ),
            (
                stat(
                    "Being retried",
                    problems("yellow"),
                    f"sum({retried}) or on() vector(0)",
                    description="RUNNABLE patients waiting for a retry (DISCHARGE); FlowRetryLoop watches how long",
                ),
                6,
                4,
            ),
            (
                series(
                    "Patients, by diagnosis and staff",
                    (f"sum by (diagnosis, staff) ({patients})", "{{staff}}: {{diagnosis}}"),
                    description=m.HOSPITAL_PATIENTS.help,
                ),
                12,
                8,
            ),
            (
                series(
                    "Oldest patient, by staff",
                    (f"max by (staff) ({age})", "{{staff}}"),
                    unit="s",
                    description=m.HOSPITAL_OLDEST_PATIENT_AGE.help,
                ),
                12,
                8,
            ),
            (
                series(
                    "Admissions per minute, by staff and diagnosis",
                    (_per_minute(on(m.HOSPITAL_ADMISSIONS), "staff, diagnosis"), "{{staff}}: {{diagnosis}}"),
                    unit="opm",
                    description=m.HOSPITAL_ADMISSIONS.help,
                ),
                12,
                8,
            ),
            (
                series(
                    "Retries per minute, by staff",
                    (_per_minute(on(m.HOSPITAL_RETRIES), "staff"), "{{staff}}"),
                    unit="opm",
                    description=m.HOSPITAL_RETRIES.help,
                ),
                12,
                8,
            ),
        ],
    )


def network_row(on: Selector) -> Row:
    return Row(
        TITLE,
        [
            (
                series(
                    "Patients, by node",
                    (f"sum by (instance) ({on(m.HOSPITAL_PATIENTS)})", NODE_LEGEND),
                    description=m.HOSPITAL_PATIENTS.help,
                ),
                8,
                8,
            ),
            (
                series(
                    "Oldest patient, by node",
                    (f"max by (instance) ({on(m.HOSPITAL_OLDEST_PATIENT_AGE)})", NODE_LEGEND),
                    unit="s",
                    description=m.HOSPITAL_OLDEST_PATIENT_AGE.help,
                ),
                8,
                8,
            ),
            (
                series(
                    "Retries per minute, by node and staff",
                    (
                        _per_minute(on(m.HOSPITAL_RETRIES), "instance, staff"),
                        NODE_LEGEND + " {{staff}}",
                    ),
                    unit="opm",
                    description=m.HOSPITAL_RETRIES.help,
                ),
                8,
                8,
            ),
        ],
    )

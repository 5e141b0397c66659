"""How the operator tools print what the agent answers for humans: aligned tables, ages, a job's
progress. Plain functions of the JSON the agent sends (`--json` prints that JSON instead), shared by
`ledger-agent` and the shell."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from agent.operator_api.recovery import recovery_job_ok, recovery_job_text

RECOVERY_JOB = "FinalityRecoveryJobFlow"  # the kind of a finality recovery job in the listing of jobs
Column = tuple[str, Callable[[dict[str, Any]], Any]]  # a header, and how a row's cell is read


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], *, empty: str = "") -> str:
    """rows as an aligned table under its headers (two spaces between columns), or empty if none."""
    if not rows:
        return empty
    cells = [[_cell(read(row)) for _, read in columns] for row in rows]
    headers = [header for header, _ in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *cells]
    )


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\n", " ")


def key(name: str) -> Column:
    """A column that shows a field as it is, headed by its JSON name."""
    return name, lambda row: row.get(name)


def age(seconds: float | None) -> str:
    """12s, 3m05s, 2h10m, 4d03h."""
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def parse_age(text: str) -> float:
    """Seconds from `90`, `90s`, `10m`, `2h` or `1d` (what --min-age takes); ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    scale = units.get(text[-1:], 0)
    value = float(text[:-1]) * scale if scale else float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(text)
    return value


PATIENT_COLUMNS: tuple[Column, ...] = (
    key("flowId"),
    key("flowName"),
    key("status"),
    key("step"),
    key("staff"),
    key("errorType"),
    key("attempts"),
    ("inHospital", lambda p: age(p.get("secondsInHospital"))),
    key("waitingFor"),
)


def patients_table(patients: Sequence[dict[str, Any]]) -> str:
    """listPatients's answer: one flow a line, longest in first."""
    return table(patients, PATIENT_COLUMNS, empty="No flows in the hospital")


HISTORY_COLUMNS: tuple[Column, ...] = (
    key("at"),
    key("step"),
    key("outcome"),
    key("staff"),
    key("diagnosis"),
    key("errorType"),
    ("retryIn", lambda r: None if r.get("retryInSeconds") is None else f"{r['retryInSeconds']}s"),
    key("error"),
)


def patient_text(patient: dict[str, Any]) -> str:
    """flowHistory's answer: the flow, then its history oldest first."""
    lines = [
        f"flowId       {patient['flowId']}",
        f"flowName     {patient['flowName']}",
        f"status       {patient['status']} at {patient.get('step')}",
    ]
    if patient.get("diagnosis"):
        lines.append(
            f"diagnosis    {patient['diagnosis']} by {patient.get('staff')}: "
            f"{patient.get('errorType')}: {patient.get('error')}"
        )
        lines.append(
            f"in hospital  {age(patient.get('secondsInHospital'))}, {patient.get('attempts')} attempt(s)"
        )
    if patient.get("waitingFor"):
        lines.append(f"waitingFor   {patient['waitingFor']}")
    if patient.get("txId"):
        lines.append(f"txId         {patient['txId']}")
    history = patient.get("history") or []
    lines.append("")
    lines.append(table(history, HISTORY_COLUMNS) if history else "No history: the hospital never saw it")
    return "\n".join(lines)


def dry_run_text(answer: dict[str, Any]) -> str:
    """bulkAction's dry run: how many, what would happen, a sample."""
    lines = [
        f"Dry run: {answer['action']} on {answer['total']} flow(s) matching "
        f"{json.dumps(answer.get('filter') or {})}: {answer['wouldAct']} would change, "
        f"{answer['wouldSkip']} would be skipped"
    ]
    plans = answer.get("plans") or {}
    for plan, count in sorted(plans.items(), key=lambda p: -p[1]):
        lines.append(f"  {count:>6}  {plan}")
    sample = answer.get("sample") or []
    if sample:
        lines.append(f"Sample ({len(sample)} of {answer['total']}):")
        columns = (key("flowId"), key("flowName"), key("status"), key("step"), key("staff"), key("plan"))
        lines.append(table(sample, columns))
    return "\n".join(lines)


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing yet"


def progress_line(job: dict[str, Any]) -> str:
    """One line of a job's progress: `job <id> RUNNABLE: 40/120 processed (40 retried)`."""
    waiting = (
        f", waiting for {job['waitingFor']}" if job.get("waitingFor") and not job.get("finished") else ""
    )
    return (
        f"job {job['jobId']} {job['status']}: {job['processed']}/{job['total']} processed "
        f"({counts_text(job.get('counts') or {})}){waiting}"
    )


def job_started_text(job: dict[str, Any]) -> str:
    return (
        f"Started bulk job {job['jobId']}: {job['action']} {job['total']} flow(s) "
        f"(batches of {job.get('batchSize')}), reason: {job.get('reason')}"
    )


RESULT_COLUMNS: tuple[Column, ...] = (key("flowId"), key("outcome"), key("from"), key("to"), key("detail"))


def job_text(job: dict[str, Any]) -> str:
    """bulkJob's answer: the job, then a result per flow (recoveryJob's: a line per transaction)."""
    if job.get("kind") == RECOVERY_JOB:
        return recovery_job_text(job)
    lines = [
        progress_line(job),
        f"  {job.get('name')}: {job.get('action')} {json.dumps(job.get('filter') or {})} by "
        f"{job.get('user')} ({job.get('surface')}) at {job.get('createdAt')}: {job.get('reason')}",
    ]
    results = job.get("results")
    if results:
        lines.append(table(results, RESULT_COLUMNS))
    return "\n".join(lines)


JOB_COLUMNS: tuple[Column, ...] = (
    key("jobId"),
    ("kind", lambda j: j.get("kind") or "BulkFlowActionFlow"),  # an agent before kinds: bulk jobs only
    key("name"),
    key("action"),
    key("status"),
    ("progress", lambda j: f"{j['processed']}/{j['total']}"),
    ("outcomes", lambda j: counts_text(j.get("counts") or {})),
    key("user"),
    key("createdAt"),
    key("finishedAt"),
    key("reason"),
)


def job_ok(job: dict[str, Any]) -> bool:
    """Whether a finished job completed with nothing failed (nor, for a recovery job, timed out)."""
    if job.get("kind") == RECOVERY_JOB:
        return job.get("status") == "COMPLETED" and recovery_job_ok(job)
    return job.get("status") == "COMPLETED" and not (job.get("counts") or {}).get("failed", 0)


def jobs_table(jobs: Sequence[dict[str, Any]]) -> str:
    """The listing of every job: bulk actions and finality recovery jobs."""
    return table(jobs, JOB_COLUMNS, empty="No jobs")


AUDIT_COLUMNS: tuple[Column, ...] = (
    key("at"),
    key("user"),
    key("role"),
    key("surface"),
    key("action"),
    key("target"),
    key("outcome"),
    key("reason"),
)


def audit_table(entries: Sequence[dict[str, Any]]) -> str:
    """auditLog's answer, newest first."""
    return table(entries, AUDIT_COLUMNS, empty="The audit log is empty")

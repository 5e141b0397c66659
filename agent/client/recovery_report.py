"""How `ledger-agent recover` prints Ledger Recovery for humans: a dry run's plan per peer, a progress
bar, the totals and the failures. Plain functions of the JSON the agent sends (`--json` prints that)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.client.tables import age, table

BAR_WIDTH = 30
PENDING = "PENDING"  # node_recovery_missing's status of a transaction not yet fetched


def human_bytes(n: int | None) -> str:
    """1023 B, 1.5 KiB, 20.0 MiB, 3.2 GiB."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop returns


def plan_text(summary: Mapping[str, Any]) -> str:
    """A dry run's answer: per peer what is missing, what it can supply, its size, and what cannot be
    recovered with why; then the totals and the estimated time."""
    plan = summary.get("plan") or {}
    peers = plan.get("peers") or {}
    rows = [{"peer": peer, **figures} for peer, figures in peers.items()]
    lines = [f"Dry run of LedgerRecoveryFlow [{summary.get('flowId')}]: nothing was recovered"]
    lines.append(
        table(
            rows,
            [
                ("PEER", lambda r: r["peer"]),
                ("MISSING", lambda r: r.get("missing")),
                ("AVAILABLE", lambda r: r.get("available")),
                ("SIZE", lambda r: human_bytes(r.get("bytes"))),
                ("CANNOT RECOVER", lambda r: len(r.get("cannotRecover") or [])),
            ],
            empty="No peer has a transaction this node lacks.",
        )
    )
    refused = [(peer, tx, why) for peer, f in peers.items() for tx, why in (f.get("cannotRecover") or [])]
    if refused:
        lines.append("Cannot be recovered:")
        lines += [f"  {tx} from {peer}: {why}" for peer, tx, why in refused]
    if plan:
        lines.append(
            f"Total: {plan.get('transactions', 0)} transaction(s), {human_bytes(plan.get('bytes', 0))}, "
            f"about {age(plan.get('estimatedSeconds', 0))} to recover"
        )
    if summary.get("ledgerSync"):
        lines.append(f"LedgerSync first: {_ledgersync_text(summary['ledgerSync'])}")
    if summary.get("totalErrors"):
        lines.append(f"Errors: {summary['totalErrors']}")
    lines.append("Nothing changed. To recover, run the same command with --apply.")
    return "\n".join(lines)


def _ledgersync_text(outcomes: Any) -> str:
    """peer -> [status, transactions missing here] as `PartyB: DIFFERENCES_NOT_FOUND, 0 missing; ...`."""
    if not isinstance(outcomes, Mapping):
        return str(outcomes)
    parts = []
    for peer, outcome in sorted(outcomes.items()):
        if isinstance(outcome, list | tuple) and len(outcome) == 2:
            parts.append(f"{peer}: {outcome[0]}, {outcome[1]} missing")
        else:
            parts.append(f"{peer}: {outcome}")
    return "; ".join(parts)


def progress_figures(progress: Mapping[str, Mapping[str, int]]) -> tuple[int, int, dict[str, int]]:
    """(transactions dealt with, transactions found missing, per status) over every peer."""
    by_status: dict[str, int] = {}
    for statuses in progress.values():
        for status, count in statuses.items():
            by_status[status] = by_status.get(status, 0) + count
    total = sum(by_status.values())
    return total - by_status.get(PENDING, 0), total, by_status


def progress_bar(progress: Mapping[str, Mapping[str, int]], step: str | None = None) -> str:
    """[##########....................] 10/30 transactions (PENDING 20, RECOVERED 10) at RECOVERED_1"""
    done, total, by_status = progress_figures(progress)
    filled = BAR_WIDTH if total == 0 and step == "DONE" else (BAR_WIDTH * done // total if total else 0)
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(by_status.items()))
    text = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total} transactions"
    if statuses:
        text += f" ({statuses})"
    return text + (f" at {step}" if step else "")


def failures(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in results if r.get("failureCause")]


def results_text(flow_id: str, results: list[dict[str, Any]]) -> str:
    """A run's results, one line per transaction."""
    if not results:
        return f"LedgerRecoveryFlow [{flow_id}]: no results"
    return table(
        results,
        [
            ("TRANSACTION", lambda r: r.get("transactionId")),
            ("PEER", lambda r: r.get("recoveryPeer")),
            ("ROLE", lambda r: r.get("transactionRole")),
            ("SYNCHRONISED", lambda r: r.get("synchronised")),
            ("FAILURE", lambda r: r.get("failureCause")),
        ],
    )


def totals_text(summary: Mapping[str, Any]) -> str:
    """An applied run's totals, then its failures (the results with a failureCause)."""
    details = [
        f"{summary[key]} {what}"
        for key, what in (
            ("totalRecoveredRecords", "record(s)"),
            ("totalRecoveredInFlightTransactions", "in flight"),
        )
        if summary.get(key) is not None
    ]
    lines = [
        f"LedgerRecoveryFlow [{summary.get('flowId')}]: Recovered {summary.get('totalRecoveredTransactions')} "
        f"transaction(s){' (' + ', '.join(details) + ')' if details else ''}, {summary.get('totalErrors')} error(s)"
    ]
    failed = failures(summary.get("results") or [])
    if failed:
        lines.append("Failures:")
        lines += [f"  {r['transactionId']} from {r['recoveryPeer']}: {r['failureCause']}" for r in failed]
    if summary.get("resultsTruncated"):
        lines.append(f"(results truncated: ledger-agent recover --results {summary.get('flowId')})")
    return "\n".join(lines)

"""How finality recovery's answers print, as the reference's shell prints them (pure: the shell, the CLI
and the REST API's `text` share it).

    Recovered finality flow [821884be-8e9f-486d-8228-70d97e215218]
    Failed to recover finality flow 821884be-8e9f-486d-8228-70d97e215218
    Recovered finality flow(s)
    Results: [[4cbfa031-90de-4564-a375-30141a18bbba]=true]
    FlowTransactionInfo(stateMachineRunId=[e0d781be-...], txId=19BE...2F, status=IN_FLIGHT,
        timestamp=2023-03-29T11:16:29.477Z, initiator=O=Alice Corp, L=Madrid, C=ES, peers=[O=Bob Plc, ...])
    ---
    - stateMachineRunId:
        uuid: "e0d781be-..."
      txId: "19BE...2F"
      ...
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# The tools' finality commands (`flow <command>`, `flowStatus <query>`, Corda's shell names): the
# catalogue's operation, and the parameter its argument is (a list for ids and txnIds).
RECOVERIES = {
    "recoverFinality": ("recoverFinalityFlow", "id"),
    "recoverFinalityFlows": ("recoverFinalityFlows", "ids"),
    "recoverFinalityByTxnId": ("recoverFinalityFlowByTxnId", "txnId"),
    "recoverFinalityByTxnIds": ("recoverFinalityFlowByTxnIds", "txnIds"),
    "recoverAllFinality": ("recoverAllFinalityFlows", None),
    "recoverFinalityMatching": ("recoverFinalityFlowsMatching", None),
}
QUERIES = {
    "queryFinalityById": ("getFlowTransaction", "flowId"),
    "queryFinalityByTxnId": ("getFlowTransactionByTxnId", "txnId"),
}


def recovered_text(target: str, recovered: bool, *, flow_id: str | None = None) -> str:
    """One recovery's line: the flow's id when recovered (by transaction id too, when it is known)."""
    if recovered:
        return f"Recovered finality flow [{flow_id or target}]"
    return f"Failed to recover finality flow {target}"


def results_text(results: Mapping[str, bool]) -> str:
    """A map of recoveries, as `flow recoverAllFinality` prints it."""
    listed = ", ".join(f"[{key}]={'true' if done else 'false'}" for key, done in results.items())
    return f"Recovered finality flow(s)\nResults: [{listed}]"


def dry_run_arguments(given: Mapping[str, Any], key: str | None) -> dict[str, Any]:
    """A recovery command's arguments as recoverFinalityDryRun's: its one id (key) as a list of one, its
    criteria and forceRecover as they are; the reason left out (a dry run changes nothing)."""
    arguments = {k: v for k, v in given.items() if k not in ("reason", "timeout", "id", "txnId")}
    if key == "id":
        arguments["ids"] = [given["id"]]
    elif key == "txnId":
        arguments["txnIds"] = [given["txnId"]]
    return arguments


def recovery_dry_run_text(plans: list[Mapping[str, Any]]) -> str:
    """A recovery's dry run, one transaction a line, then a count of what would be done."""
    if not plans:
        return "Dry run: no finality flow to recover. Nothing changed."
    lines = [f"Dry run of finality recovery: {len(plans)} transaction(s). Nothing changed."]
    for plan in plans:
        lines.append(
            f"  {plan['txId']} flow {plan.get('flowId') or '-'}: {plan['action']} "
            f"(notarisation {plan['notarisation']}, side {plan.get('side') or '-'}): {plan['reason']}"
        )
    counts: dict[str, int] = {}
    for plan in plans:
        counts[plan["action"]] = counts.get(plan["action"], 0) + 1
    lines.append("Would: " + ", ".join(f"{action} {n}" for action, n in sorted(counts.items())))
    return "\n".join(lines)


def recovery_job_text(job: Mapping[str, Any]) -> str:
    """A finality recovery job: its status and progress, then a line per transaction done."""
    lines = [f"Finality recovery job {job['jobId']}: {job['status']}, {job['processed']} of {job['total']}"]
    for row in job.get("results", []):
        detail = f": {row['detail']}" if row["detail"] else ""
        lines.append(f"  {row['txId']} [{row['key']}] {row['outcome']}{detail}")
    return "\n".join(lines)


def recovery_job_ok(job: Mapping[str, Any]) -> bool:
    """Whether every transaction a job has done was recovered or needed nothing."""
    return all(r["outcome"] in ("recovered", "notNeeded") for r in job.get("results", []))


def _instant(text: str) -> str:
    """An ISO-8601 time as Java's Instant prints it (UTC, milliseconds, Z)."""
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def flow_transaction_text(info: Mapping[str, Any] | None) -> str:
    """A FlowTransactionInfo (as JSON) as Kotlin's data class prints it; null for none."""
    if info is None:
        return "null"
    peers = info.get("peers")
    return (
        f"FlowTransactionInfo(stateMachineRunId=[{info.get('stateMachineRunId')}], txId={info['txId']}, "
        f"status={info['status']}, timestamp={_instant(info['timestamp'])}, "
        f"initiator={info.get('initiator') or 'null'}, "
        f"peers={'null' if peers is None else '[' + ', '.join(peers) + ']'})"
    )


def _quoted(value: str | None) -> str:
    """A YAML double-quoted scalar (a JSON string is one), or null."""
    return "null" if value is None else json.dumps(value, ensure_ascii=False)


def _principal(name: str, indent: str) -> list[str]:
    """An X.500 name as Jackson writes CordaX500Name: its x500Principal's RFC 2253 name (no spaces after
    the commas; the name's values never hold a comma, so splitting on them is exact)."""
    rfc2253 = ",".join(part.strip() for part in name.split(","))
    return [f"{indent}x500Principal:", f"{indent}  name: {_quoted(rfc2253)}"]


def flow_transaction_yaml(info: Mapping[str, Any]) -> str:
    """The YAML block the reference's shell prints after FlowTransactionInfo's line, with the reference's
    fields: a list of one, peers a list of names (null on a receiver), every string double-quoted."""
    run_id = info.get("stateMachineRunId")
    lines = ["---"]
    if run_id is None:
        lines.append("- stateMachineRunId: null")
    else:
        lines += ["- stateMachineRunId:", f"    uuid: {_quoted(run_id)}"]
    lines += [f"  txId: {_quoted(info['txId'])}", f"  status: {_quoted(info['status'])}"]
    initiator = info.get("initiator")
    if initiator is None:
        lines.append("  initiator: null")
    else:
        lines += ["  initiator:", *_principal(initiator, "    ")]
    peers = info.get("peers")
    if peers is None:
        lines.append("  peers: null")
    elif not peers:
        lines.append("  peers: []")
    else:
        lines.append("  peers:")
        for peer in peers:
            first, *more = _principal(peer, "    ")
            lines += ["  - " + first.lstrip(), *more]
    return "\n".join(lines)


def flow_transaction_report(info: Mapping[str, Any] | None) -> str:
    """What `flowStatus queryFinalityById|ByTxnId` prints: FlowTransactionInfo's line, then its YAML
    block; null alone for none."""
    if info is None:
        return flow_transaction_text(None)
    return flow_transaction_text(info) + "\n" + flow_transaction_yaml(info)

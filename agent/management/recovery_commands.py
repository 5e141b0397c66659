"""Finality recovery's catalogue commands on one node (FlowRPCOps and NodeFlowStatusRpcOps): each on
runtime.recovery (agent.finality.recovery). Arguments arrive checked and converted by
agent.management.commands; results are JSON: a bool, a map of id -> bool, or a FlowTransactionInfo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, overload

from agent.errors import FlowRecoveryException
from agent.finality.dry_run import RecoveryPlan
from agent.finality.queries import FlowRecoveryQuery, FlowTimeWindow, FlowTransactionInfo
from agent.finality.recovery import FinalityRecoveryService
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name

WITH_ACTOR = frozenset({"recoverFinalityJob"})  # the job records who started it


class RecoveryQueryError(FlowRecoveryException):
    """A FlowRecoveryQuery without any criterion: the caller's mistake (a bad argument)."""


def info_json(info: FlowTransactionInfo | None) -> dict[str, Any] | None:
    """A FlowTransactionInfo with the reference's field names; peers sorted, null on a receiver."""
    if info is None:
        return None
    return {
        "stateMachineRunId": info.state_machine_run_id,
        "txId": str(info.tx_id),
        "status": info.status.name,
        "timestamp": info.timestamp.isoformat(),
        "initiator": None if info.initiator is None else str(info.initiator),
        "peers": None if info.peers is None else sorted(str(p) for p in info.peers),
    }


def plan_json(plan: RecoveryPlan) -> dict[str, Any]:
    """One transaction of a dry run: what recovering it would do, and why."""
    return {
        "txId": str(plan.tx_id),
        "flowId": None if plan.key == str(plan.tx_id) else plan.key,
        "status": None if plan.status is None else plan.status.name,
        "role": plan.role,
        "notarisation": plan.notarisation.name,
        "side": None if plan.side is None else plan.side.name,
        "action": plan.action.name,
        "reason": plan.reason,
        "running": list(plan.running),
    }


def _plain(results: Mapping[Any, bool]) -> dict[str, bool]:
    return {str(key): bool(done) for key, done in results.items()}


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)  # the reference's "2023-12-04T10:15:30.00": taken as UTC


Initiators = X500Name | Sequence[X500Name] | None


@overload
def recovery_query(
    start: datetime | None,
    until: datetime | None,
    initiated_by: Initiators,
    counter_parties: Sequence[X500Name] | None,
    *,
    required: Literal[True] = ...,
) -> FlowRecoveryQuery: ...


@overload
def recovery_query(
    start: datetime | None,
    until: datetime | None,
    initiated_by: Initiators,
    counter_parties: Sequence[X500Name] | None,
    *,
    required: Literal[False],
) -> FlowRecoveryQuery | None: ...


def recovery_query(
    start: datetime | None,
    until: datetime | None,
    initiated_by: Initiators,
    counter_parties: Sequence[X500Name] | None,
    *,
    required: bool = True,
) -> FlowRecoveryQuery | None:
    """Corda's FlowRecoveryQuery from an operation's four criteria. Without any: RecoveryQueryError when
    required (recoverFinalityFlowsMatching), else None (a dry run's or a job's whole selection)."""
    if not required and start is None and until is None and initiated_by is None and counter_parties is None:
        return None
    start, until = _utc(start), _utc(until)
    try:
        return FlowRecoveryQuery(
            timeframe=None if start is None and until is None else FlowTimeWindow(start, until),
            initiated_by=initiated_by,
            counter_parties=counter_parties,
        )
    except FlowRecoveryException as exc:
        raise RecoveryQueryError(str(exc)) from exc


def recovery_commands(recovery: FinalityRecoveryService) -> dict[str, Callable[..., Any]]:
    """The implementations, taking the converted arguments in the order of the commands' params (the
    reason last: the gate's, for the audit log)."""

    def one(flow_id: str, force: bool, timeout: float, reason: str | None) -> bool:
        return recovery.recover_finality_flow(flow_id, force, timeout=timeout)

    def many(ids: list[str], force: bool, timeout: float, reason: str | None) -> dict[str, bool]:
        return _plain(recovery.recover_finality_flows(ids, force, timeout=timeout))

    def every(force: bool, timeout: float, reason: str | None) -> dict[str, bool]:
        return _plain(recovery.recover_all_finality_flows(force, timeout=timeout))

    def by_txn_id(tx_id: SecureHash, force: bool, timeout: float, reason: str | None) -> bool:
        return recovery.recover_finality_flow_by_txn_id(tx_id, force, timeout=timeout)

    def by_txn_ids(
        tx_ids: list[SecureHash], force: bool, timeout: float, reason: str | None
    ) -> dict[str, bool]:
        return _plain(recovery.recover_finality_flow_by_txn_ids(tx_ids, force, timeout=timeout))

    def matching(
        start: datetime | None,
        until: datetime | None,
        initiated_by: X500Name | list[X500Name] | None,
        counter_parties: list[X500Name] | None,
        force: bool,
        timeout: float,
        reason: str | None,
    ) -> dict[str, bool]:
        query = recovery_query(start, until, initiated_by, counter_parties)
        return _plain(recovery.recover_finality_flows_matching(query, force, timeout=timeout))

    def dry_run(
        ids: list[str] | None,
        tx_ids: list[SecureHash] | None,
        start: datetime | None,
        until: datetime | None,
        initiated_by: X500Name | list[X500Name] | None,
        counter_parties: list[X500Name] | None,
        force: bool,
        check_notary: bool,
    ) -> list[dict[str, Any]]:
        query = recovery_query(start, until, initiated_by, counter_parties, required=False)
        plans = recovery.dry_run(
            ids=ids, tx_ids=tx_ids, query=query, check_notary=check_notary, running=force
        )
        return [plan_json(p) for p in plans]

    def job(
        ids: list[str] | None,
        tx_ids: list[SecureHash] | None,
        start: datetime | None,
        until: datetime | None,
        initiated_by: X500Name | list[X500Name] | None,
        counter_parties: list[X500Name] | None,
        force: bool,
        timeout: float,
        reason: str | None,
        actor: Any,
    ) -> dict[str, Any]:
        query = recovery_query(start, until, initiated_by, counter_parties, required=False)
        return recovery.start_job(
            ids=ids,
            tx_ids=tx_ids,
            query=query,
            force=force,
            timeout=timeout,
            reason=reason,
            user=actor.user,
            role=actor.role,
            surface=actor.surface,
        )

    return {
        "recoverFinalityDryRun": dry_run,
        "recoverFinalityJob": job,
        "recoveryJob": recovery.jobs.job,
        "listRecoveryJobs": recovery.jobs.jobs,
        "recoverFinalityFlow": one,
        "recoverFinalityFlows": many,
        "recoverAllFinalityFlows": every,
        "recoverFinalityFlowByTxnId": by_txn_id,
        "recoverFinalityFlowByTxnIds": by_txn_ids,
        "recoverFinalityFlowsMatching": matching,
        "getFlowTransaction": lambda flow_id: info_json(recovery.get_flow_transaction(flow_id)),
        "getFlowTransactionByTxnId": lambda tx_id: info_json(recovery.get_flow_transaction_by_txn_id(tx_id)),
    }

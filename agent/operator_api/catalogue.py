"""The catalogue of operator commands: every flow an operator starts and every verb on running flows.

One declaration that every adapter reads: `/api` (agent.management.app), JSON-RPC and Jolokia (the
beans of agent.management.beans, whose operations are built from these entries), and the shell
(agent.client.shell). Each command has its Corda name, its named parameters and their kinds, its role
(`act`: the operator role; otherwise read-only), what it returns, and the bean operation that does
it (`bean`.`operation`, which is also its JSON-RPC method). What a command runs on a node is
agent.management.commands's; this module is pure, so the operator tools import it without the server.

    LedgerSync's flows (the reference's)   ScheduleReconciliationFlow ... IsRespondingToReconciliation...
    the token flows                        IssueTokensFlow, PayTokensFlow, ExitTokensFlow
    the engine's verbs                     listFlows, killFlow, pauseFlow, resumeFlow
    the flow hospital's (docs/hospital.md) retryFlow, listPatients, flowHistory, pauseAll,
                                           pauseAllHospitalized, retryAllPaused,
                                           retryAllPausedHospitalized, bulkAction, bulkJob,
                                           listBulkJobs, auditLog
    finality recovery (docs/finality-       recoverFinalityFlow, recoverFinalityFlows,
    recovery.md), Corda's FlowRPCOps and    recoverAllFinalityFlows, recoverFinalityFlowByTxnId,
    NodeFlowStatusRpcOps                    recoverFinalityFlowByTxnIds, recoverFinalityFlowsMatching,
                                           recoverFinalityDryRun, recoverFinalityJob,
                                           recoveryJob, listRecoveryJobs; getFlowTransaction, getFlowTransactionByTxnId
    Ledger Recovery (docs/ledger-           LedgerRecoveryFlow, recover (reconcile first, then recover;
    recovery.md), bean LedgerRecovery       a dry run unless dryRun is false), ledgerRecoveryResults,
                                           ledgerRecoveryProgress, heldByNoPeer

Every command that acts (`act`) needs the operator role and goes to the audit log, refused or not;
each takes a `reason`, required for the bulk ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agent.operator_api.kinds import (
    BULK_ACTIONS,
    DEFAULT_AUDIT_LIMIT,
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLOW_WAIT_S,
    DIAGNOSES,
    FILTER_KEYS,
    FLOW_STATUSES,
    KINDS,
    MAX_FLOW_WAIT_S,
    METHOD_LIST,
    METHOD_RIBLT,
    METHODS,
    Command,
    Kind,
    Param,
    Result,
)

# The parts commands are made of (agent.operator_api.kinds), re-exported: the adapters read them here.
__all__ = [
    "BULK_ACTIONS",
    "COMMANDS",
    "DIAGNOSES",
    "FILTER_KEYS",
    "FLOW_STATUSES",
    "KINDS",
    "MAX_FLOW_WAIT_S",
    "METHODS",
    "METHOD_LIST",
    "METHOD_RIBLT",
    "Command",
    "Kind",
    "Param",
    "Result",
    "flows",
    "verbs",
]

LEDGER_SYNC, TOKENS, FLOWS_BEAN, FLOW_HOSPITAL = "LedgerSync", "Tokens", "Flows", "FlowHospital"
# Corda's extension RPC interfaces that have finality recovery (the reference's names).
FLOW_RPC_OPS, FLOW_STATUS_RPC_OPS = "FlowRPCOps", "NodeFlowStatusRpcOps"
LEDGER_RECOVERY = "LedgerRecovery"  # Ledger Recovery's bean (issue 15)

_PARTY = Param("party", "party", description="The party's X.500 name")
_IS_REQUESTER = Param(
    "isRequester",
    "bool",
    required=False,
    default=True,
    description="This node's reconciliations (true) or other parties' with it (false)",
)
_BOTH_DIRECTIONS = Param(
    "bothDirections", "bool", required=False, default=False, description="Both sides learn what they lack"
)
_OBSERVERS = Param(
    "observers",
    "observers",
    required=False,
    default=(),
    description="Parties that also record the transaction",
)
_TIMEOUT = Param(
    "timeout",
    "seconds",
    required=False,
    default=DEFAULT_FLOW_WAIT_S,
    description="How long to wait for the flow; one still running then goes on (its id says where)",
)
_CURRENCY = Param("currency", "currency", description="The tokens' currency, e.g. GBP")
_FLOW_ID = Param("id", "flowId", description="The flow's id (a reconciliation's stateMachineRunId)")
_REASON = Param("reason", "reason", required=False, description="Why (optional; the audit log keeps it)")
_BULK_REASON = Param(
    "reason", "reason", description="Why (required for a bulk action; the audit log keeps it)"
)
_FILTER = Param(
    "filter",
    "flowFilter",
    required=False,
    description="Every filter given must match: status, diagnosis, staff, errorType, flowName, peer, "
    "step, minAgeSeconds (in the hospital), minAttempts (errors since the last checkpoint)",
)
_BATCH_SIZE = Param(
    "batchSize",
    "batchSize",
    required=False,
    default=DEFAULT_BATCH_SIZE,
    description="Flows per batch; the job records its progress after each",
)
_BATCH_INTERVAL = Param(
    "batchIntervalSeconds",
    "seconds",
    required=False,
    default=0.0,
    description="A pause between two batches, so a bulk retry does not storm the notary or the peers",
)


def _flow(
    name: str, bean: str, params: tuple[Param, ...], result: Result, description: str, **kw: Any
) -> Command:
    return Command(name, Kind.FLOW, bean, name.removesuffix("Flow"), params, result, description, **kw)


def _verb(
    name: str,
    params: tuple[Param, ...],
    result: Result,
    description: str,
    bean: str = FLOWS_BEAN,
    **kw: Any,
) -> Command:
    return Command(name, Kind.VERB, bean, name, params, result, description, **kw)


_FORCE_RECOVER = Param(
    "forceRecover",
    "bool",
    required=False,
    default=False,
    description="Also recover flows that are RUNNABLE, PAUSED or HOSPITALIZED (they are stopped first)",
)
_RECOVERY_TIMEOUT = Param(
    "timeout",
    "seconds",
    required=False,
    default=DEFAULT_FLOW_WAIT_S,
    description="How long to wait for each recovery; one still running then goes on (its flow id says where)",
)
_TX_ID = Param("txnId", "txId", description="The transaction's id (64 hex digits)")
_QUERY_PARAMS = (  # a FlowRecoveryQuery's criteria
    Param("flowStartFromTime", "instant", required=False, description="Flows started at or after"),
    Param("flowStartUntilTime", "instant", required=False, description="Flows started at or before"),
    Param("initiatedBy", "initiators", required=False, description="Initiated by this party (or these)"),
    Param("counterParties", "parties", required=False, description="With any of these counterparties"),
)


def _recovery(name: str, params: tuple[Param, ...], result: Result, description: str) -> Command:
    """One of FlowRPCOps's recovery operations: the operator role, forceRecover, a timeout, a reason."""
    names = tuple(p.name for p in params)
    return _verb(
        name,
        (*params, _FORCE_RECOVER, _RECOVERY_TIMEOUT, _REASON),
        result,
        description,
        FLOW_RPC_OPS,
        act=True,
        overloads=(names, (*names, "forceRecover")),
    )


_RECOVERY_COMMANDS = (
    _recovery(
        "recoverFinalityFlow",
        (Param("id", "flowId", description="The failed finality flow's id (stateMachineRunId)"),),
        Result.BOOL,
        "Recover a failed finality flow by id: true if recovered, false if it needs no recovery",
    ),
    _recovery(
        "recoverFinalityFlows",
        (Param("ids", "flowIds", description="The failed finality flows' ids"),),
        Result.RECOVERED,
        "Recover failed finality flows by id: a map of flow id to whether it was recovered",
    ),
    _recovery(
        "recoverAllFinalityFlows",
        (),
        Result.RECOVERED,
        "Recover every failed finality flow (FAILED, or its transaction IN_FLIGHT): a map of flow id to "
        "whether it was recovered",
    ),
    _recovery(
        "recoverFinalityFlowByTxnId",
        (_TX_ID,),
        Result.BOOL,
        "Recover a failed finality flow by transaction id (at the initiator also its failed peers): true if "
        "recovered, false if it needs no recovery",
    ),
    _recovery(
        "recoverFinalityFlowByTxnIds",
        (Param("txnIds", "txIds", description="The transactions' ids"),),
        Result.RECOVERED,
        "Recover failed finality flows by transaction id: a map of transaction id to whether it was recovered",
    ),
    _recovery(
        "recoverFinalityFlowsMatching",
        _QUERY_PARAMS,
        Result.RECOVERED,
        "Recover the failed finality flows matching a FlowRecoveryQuery (at least one criterion): a map of "
        "flow id to whether it was recovered",
    ),
    _verb(
        "recoverFinalityDryRun",
        (
            Param("ids", "flowIds", required=False, description="Only these finality flows (by id)"),
            Param("txnIds", "txIds", required=False, description="Only these transactions (by id)"),
            *_QUERY_PARAMS,
            Param(
                "forceRecover",
                "bool",
                required=False,
                default=False,
                description="Also those whose finality still runs here (as a recovery with forceRecover)",
            ),
            Param(
                "checkNotary",
                "bool",
                required=False,
                default=True,
                description="Ask the notary (the notarisation check, which consumes nothing) where only "
                "it can tell; false answers UNKNOWN there",
            ),
        ),
        Result.RECOVERY_PLANS,
        "What a recovery would do, changing nothing: per transaction its txId, flowId, notarisation "
        "(NOTARISED, NOT_NOTARISED, CONSUMED_ELSEWHERE, UNKNOWN), side (INITIATOR_HERE, PEER_HERE, "
        "INITIATOR_ELSEWHERE), action (FINALISE, UNDO, REDISTRIBUTE, NOTHING) and reason; without ids, "
        "txnIds or a criterion, every transaction recoverAllFinalityFlows would take",
        FLOW_RPC_OPS,
    ),
    _verb(
        "recoverFinalityJob",
        (
            Param("ids", "flowIds", required=False, description="Only these finality flows (by id)"),
            Param("txnIds", "txIds", required=False, description="Only these transactions (by id)"),
            *_QUERY_PARAMS,
            _FORCE_RECOVER,
            _RECOVERY_TIMEOUT,
            _REASON,
        ),
        Result.JOB,
        "Recover what recoverFinalityDryRun selects in a job on the node, one transaction at a time, "
        "each result kept; survives a restart. The job at once (its jobId); follow it with recoveryJob",
        FLOW_RPC_OPS,
        act=True,
    ),
    _verb(
        "recoveryJob",
        (Param("id", "flowId", description="The job's id"),),
        Result.JOB,
        "A finality recovery job: its progress and a result per transaction; null if there is no such job",
        FLOW_RPC_OPS,
    ),
    _verb("listRecoveryJobs", (), Result.JOBS, "Every finality recovery job, oldest first", FLOW_RPC_OPS),
    _verb(
        "getFlowTransaction",
        (Param("flowId", "flowId", description="The finality flow's id (stateMachineRunId)"),),
        Result.FLOW_TRANSACTION,
        "FlowTransactionInfo of a finality flow (stateMachineRunId, txId, status, timestamp, initiator, "
        "peers; peers null on a receiver), or null",
        FLOW_STATUS_RPC_OPS,
    ),
    _verb(
        "getFlowTransactionByTxnId",
        (_TX_ID,),
        Result.FLOW_TRANSACTION,
        "FlowTransactionInfo of a transaction's finality flow, or null",
        FLOW_STATUS_RPC_OPS,
    ),
)


def _optional(name: str, kind: str, description: str) -> Param:
    """A LedgerRecoveryFlow parameter: absent (null) leaves it to the flow's own default."""
    return Param(name, kind, required=False, description=description)


# LedgerRecoveryFlow's parameters: both of Corda's shapes (the first API's flat names, and 4.11's
# LedgerRecoveryParameters as one `parameters` map), and ours (forceRecoverFlowIds, reconcileFirst).
# Null takes the flow's default; agent.recovery.parameters checks each field and names the one at fault.
_LEDGER_RECOVERY_PARAMS = (
    _optional("recoveryPeers", "recoveryPeers", "The peers to recover from (X.500 names)"),
    _optional(
        "timeWindow",
        "timeWindow",
        "{fromTime, untilTime}: the transactions recorded in it (default: node.conf's "
        "transactionRecoveryPeriod back from now)",
    ),
    _optional("useAllNetworkNodes", "flag", "Recover from every node of the network map (not notaries)"),
    _optional(
        "transactionRole",
        "transactionRole",
        "Which of our transactions: ALL (default), INITIATOR, PEER, OBSERVER, PEER_AND_OBSERVER",
    ),
    _optional("dryRun", "flag", "Only find what is missing and say it; record nothing"),
    _optional(
        "optimisticInitiatorRecovery",
        "flag",
        "Also push the transactions we initiated to the peers that lack them",
    ),
    _optional(
        "useTimeWindowNarrowing", "flag", "Narrow the window by comparing record counts (default true)"
    ),
    _optional("recoveryBatchSize", "recoveryBatchSize", "Records per exchange with a peer (default 1000)"),
    _optional("alsoFinalize", "flag", "Also finalise recovered transactions left IN_FLIGHT"),
    _optional("verboseLogging", "flag", "Log each transaction recovered"),
    _optional("forceRecoverFlowIds", "flowIds", "Recover also while these finality flows still run"),
    _optional(
        "reconcileFirst", "flag", "Run LedgerSync with each peer first: its differences join the missing"
    ),
    _optional(
        "parameters",
        "recoveryParameters",
        "Corda 4.11's LedgerRecoveryParameters as one map (instead of the names above)",
    ),
    _TIMEOUT,
    _REASON,
)

_LEDGER_RECOVERY_COMMANDS = (
    _flow(
        "LedgerRecoveryFlow",
        LEDGER_RECOVERY,
        _LEDGER_RECOVERY_PARAMS,
        Result.LEDGER_RECOVERY,
        "LedgerRecoveryFlow: find the transactions this node lacks from its peers' distribution records, "
        "and fetch them (with their back-chains) from those peers; totalRecoveredRecords, "
        "totalRecoveredTransactions, totalErrors, the results per transaction (and a dry run's plan)",
        act=True,
        overloads=(("parameters",), ("recoveryPeers", "timeWindow", "dryRun")),
    ),
    _verb(
        "recover",
        _LEDGER_RECOVERY_PARAMS,
        Result.LEDGER_RECOVERY,
        "`ledger-agent recover`: LedgerRecoveryFlow with LedgerSync first (reconcileFirst), a dry run "
        "unless dryRun is false, and the whole history when there is no timeWindow and no "
        "transactionRecoveryPeriod; a dry run's plan says per peer what is missing and what cannot be had",
        LEDGER_RECOVERY,
        act=True,
        overloads=(("recoveryPeers",), ("recoveryPeers", "dryRun")),
    ),
    _verb(
        "ledgerRecoveryResults",
        (Param("id", "flowId", description="The LedgerRecoveryFlow's id"),),
        Result.RECOVERY_RESULTS,
        "The results of a LedgerRecoveryFlow, one per transaction: transactionId, recoveryPeer, "
        "transactionRole, synchronised, synchronisedInitiated, failureCause",
        LEDGER_RECOVERY,
    ),
    _verb(
        "ledgerRecoveryProgress",
        (),
        Result.RECOVERY_PROGRESS,
        "The transactions found missing, per peer and status (PENDING, RECOVERED, UNRECOVERABLE, ...)",
        LEDGER_RECOVERY,
    ),
    _verb(
        "heldByNoPeer",
        (),
        Result.RECOVERY_RESULTS,
        "Our transactions no peer holds (no distribution record, no other party in them): what nothing "
        "could recover were this store lost; back them up, or give such issuances an observer",
        LEDGER_RECOVERY,
    ),
)


def _bulk_verb(name: str, description: str) -> Command:
    """One of Corda Enterprise's bulk verbs: a bulk job at once (no dry run), its filter fixed."""
    return _verb(name, (_BULK_REASON,), Result.JOB, description, FLOW_HOSPITAL, act=True)


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        _flow(
            "ScheduleReconciliationFlow",
            LEDGER_SYNC,
            (
                Param("parties", "parties", description="X.500 names of the parties to reconcile with"),
                _BOTH_DIRECTIONS,
            ),
            Result.UNIT,
            "ScheduleReconciliationFlow: queue a reconciliation with each party",
            act=True,
            unit=True,
            overloads=(("parties",),),
        ),
        _flow(
            "ReconcileWithPartyFlow",
            LEDGER_SYNC,
            (
                _PARTY,
                _BOTH_DIRECTIONS,
                Param(
                    "method",
                    "method",
                    required=False,
                    default=METHOD_RIBLT,
                    description="riblt (coded symbols) or list (the peer's whole set: the naive way)",
                ),
            ),
            Result.SESSION,
            "Reconcile now, outside the scheduler and the status table; the session's figures",
            act=True,
        ),
        _flow(
            "GetReconciliationStatusesFlow",
            LEDGER_SYNC,
            (
                Param("party", "party", required=False, description="Only this party (null for all)"),
                Param(
                    "lastReconciliationStatus",
                    "status",
                    required=False,
                    description="Only this status (null for all)",
                ),
                _IS_REQUESTER,
            ),
            Result.STATUSES,
            "GetReconciliationStatusesFlow: the statuses, filtered",
            overloads=(("isRequester",),),
        ),
        _flow(
            "GetReconciliationStatusForPartyFlow",
            LEDGER_SYNC,
            (_PARTY, _IS_REQUESTER),
            Result.STATUS,
            "GetReconciliationStatusForPartyFlow: the status, or null",
        ),
        _flow(
            "RefreshReconciliationStatusesFlow",
            LEDGER_SYNC,
            (),
            Result.INT,
            "RefreshReconciliationStatusesFlow: drop ids now recorded here; how many were dropped",
            act=True,
            unit=True,
        ),
        _flow(
            "StopReconciliationForPartyFlow",
            LEDGER_SYNC,
            (_PARTY,),
            Result.UNIT,
            "StopReconciliationForPartyFlow: cancel, drop and mark STOPPED, both directions",
            act=True,
            unit=True,
        ),
        _flow(
            "IsReconciliationScheduledForPartyFlow",
            LEDGER_SYNC,
            (_PARTY,),
            Result.BOOL,
            "IsReconciliationScheduledForPartyFlow",
        ),
        _flow(
            "IsRespondingToReconciliationForPartyFlow",
            LEDGER_SYNC,
            (_PARTY,),
            Result.BOOL,
            "IsRespondingToReconciliationForPartyFlow",
        ),
        _flow(
            "IssueTokensFlow",
            TOKENS,
            (
                Param("holdings", "holdings", description="Who gets how much: [{owner, amount}]"),
                _CURRENCY,
                _OBSERVERS,
                _TIMEOUT,
            ),
            Result.TX_ID,
            "Issue tokens to their owners, through two-phase finality; the transaction's id",
            act=True,
        ),
        _flow(
            "PayTokensFlow",
            TOKENS,
            (
                Param("to", "party", description="The payee's X.500 name"),
                Param("amount", "amount", description="How much"),
                _CURRENCY,
                Param("issuer", "party", description="Whose tokens (the issuer's X.500 name)"),
                _OBSERVERS,
                _TIMEOUT,
            ),
            Result.TX_ID,
            "Pay tokens this node holds to a party, through two-phase finality; the transaction's id",
            act=True,
        ),
        _flow(
            "ExitTokensFlow",
            TOKENS,
            (Param("amount", "amount", description="How much"), _CURRENCY, _TIMEOUT),
            Result.TX_ID,
            "Exit (redeem) tokens this node issued to itself; the transaction's id",
            act=True,
        ),
        _verb(
            "listFlows",
            (
                Param("status", "flowStatus", required=False, description="Only flows in this status"),
                Param(
                    "flowName",
                    "text",
                    required=False,
                    description="Only flows of this name, e.g. FinalityFlow",
                ),
                Param(
                    "step", "text", required=False, description="Only flows at this step, e.g. AFTER_NOTARISE"
                ),
                Param(
                    "counterparty", "party", required=False, description="Only flows with this counterparty"
                ),
                Param("txId", "txId", required=False, description="Only flows of this transaction"),
                Param(
                    "olderThan",
                    "seconds",
                    required=False,
                    description="Only flows started this many seconds ago or more",
                ),
            ),
            Result.FLOWS,
            "The node's flows (checkpoints), oldest first, matching every filter given",
            overloads=((),),
        ),
        _verb(
            "killFlow",
            (_FLOW_ID, _REASON),
            Result.BOOL,
            "Kill a running flow; true if one was running (Corda's killFlow)",
            act=True,
            overloads=(("id",),),
        ),
        _verb(
            "pauseFlow",
            (_FLOW_ID, _REASON),
            Result.BOOL,
            "Pause a RUNNABLE or HOSPITALIZED flow between two steps; true if it was running",
            act=True,
            overloads=(("id",),),
        ),
        _verb(
            "resumeFlow",
            (_FLOW_ID, _REASON),
            Result.BOOL,
            "Resume a PAUSED flow from its checkpoint; true if it was paused",
            act=True,
            overloads=(("id",),),
        ),
        _verb(
            "retryFlow",
            (_FLOW_ID, _REASON),
            Result.BOOL,
            "Retry a HOSPITALIZED or PAUSED flow now from its checkpoint, with a fresh retry budget "
            "(Corda Enterprise's flow retry); true if it was either",
            FLOW_HOSPITAL,
            act=True,
            overloads=(("id",),),
        ),
        _verb(
            "listPatients",
            (
                _FILTER,
                Param(
                    "includeFailed",
                    "bool",
                    required=False,
                    default=False,
                    description="Also the FAILED flows with a history (status FAILED implies it)",
                ),
            ),
            Result.PATIENTS,
            "The flow hospital's patients (HOSPITALIZED, and RUNNABLE or PAUSED ones under its care), "
            "longest in first, each with its retry history",
            FLOW_HOSPITAL,
            overloads=((), ("filter",)),
        ),
        _verb(
            "flowHistory",
            (_FLOW_ID,),
            Result.PATIENT,
            "One flow (any status) with its retry history; null if there is no such flow",
            FLOW_HOSPITAL,
        ),
        _bulk_verb("pauseAll", "Pause every RUNNABLE and HOSPITALIZED flow (a bulk job); the job"),
        _bulk_verb("pauseAllHospitalized", "Pause every HOSPITALIZED flow (a bulk job); the job"),
        _bulk_verb("retryAllPaused", "Retry every PAUSED flow (a bulk job); the job"),
        _bulk_verb(
            "retryAllPausedHospitalized",
            "Retry every PAUSED flow that the hospital was keeping (a bulk job); the job",
        ),
        _verb(
            "bulkAction",
            (
                Param("action", "bulkAction", description="retry, pause or kill: what to do to each flow"),
                Param(
                    "filter",
                    "flowFilter",
                    description="Which flows: every filter given must match ({} is every flow); "
                    "status, diagnosis, staff, errorType, flowName, peer, step, minAgeSeconds, minAttempts",
                ),
                _BULK_REASON,
                Param(
                    "dryRun",
                    "bool",
                    required=False,
                    default=True,
                    description="true (the default): only say what would happen; false: start the job",
                ),
                _BATCH_SIZE,
                _BATCH_INTERVAL,
            ),
            Result.BULK,
            "A bulk action by filter: the dry run (how many, a sample, what would happen to each), or "
            "with dryRun false a job on the node with its own id, progress and a result per flow",
            FLOW_HOSPITAL,
            act=True,
            overloads=(("action", "filter", "reason"), ("action", "filter", "reason", "dryRun")),
        ),
        _verb(
            "bulkJob",
            (Param("id", "flowId", description="The job's id"),),
            Result.JOB,
            "A bulk job: its progress and a result per flow; null if there is no such job",
            FLOW_HOSPITAL,
        ),
        _verb(
            "listBulkJobs",
            (),
            Result.JOBS,
            "Every job (bulk actions and finality recovery, each with its kind), oldest first, with its progress",
            FLOW_HOSPITAL,
        ),
        _verb(
            "auditLog",
            (
                Param("user", "text", required=False, description="Only this user's actions"),
                Param("action", "text", required=False, description="Only this command, e.g. retryFlow"),
                Param(
                    "limit",
                    "limit",
                    required=False,
                    default=DEFAULT_AUDIT_LIMIT,
                    description="At most this many entries",
                ),
            ),
            Result.AUDIT,
            "The audit log: every operator action and refusal (user, role, time, action, reason, "
            "target, outcome, surface), newest first",
            FLOW_HOSPITAL,
            overloads=((),),
        ),
        *_RECOVERY_COMMANDS,
        *_LEDGER_RECOVERY_COMMANDS,
    )
}
"""Every operator command: the flows in the order `flow list` shows them, then the verbs."""


def flows() -> Iterator[Command]:
    return (c for c in COMMANDS.values() if c.kind is Kind.FLOW)


def verbs() -> Iterator[Command]:
    return (c for c in COMMANDS.values() if c.kind is Kind.VERB)

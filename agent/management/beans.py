"""The agent's own beans: the node, its flows, its tokens, the ledger graph and LedgerSync (names in
../shared/reference/ledger-sync.md). Every adapter (JSON-RPC, Jolokia, Prometheus, `ledger-agent
check`) reads and calls the services only through these; the beans' names are mbeans.names's.

    ledgeragent:type=Node        Identity, Role, Transactions, TransactionsByStatus, UnconsumedStates
    ledgeragent:type=Flows       FlowsByStatus, NumberOf...Flows; the catalogue's verbs: listFlows,
                                 killFlow, pauseFlow, resumeFlow
    ledgeragent:type=Tokens      Holdings; the catalogue's token flows: IssueTokens, PayTokens, ExitTokens
    ledgeragent:type=LedgerGraph IsInitialized, IsSelfConsistent, Errors, ErrorCount, Size
    ledgeragent:type=LedgerSync  the reference's JMX attributes and ReconciliationStatus(party), and
                                 the catalogue's LedgerSync flows as operations (ScheduleReconciliation, ...);
                                 its limits, writable (MaxNumberOf..., beans_settings.py)
    ledgeragent:type=Logging     Level, LibraryLevel, writable (beans_settings.py)
    ledgeragent:type=FlowHospital Patients, OldestPatientAgeSeconds, PatientGroups, Admissions, Retries
                                 (what /metrics and `ledger-agent check` read), and the catalogue's
                                 hospital commands: listPatients, flowHistory, retryFlow, pauseAll, ...,
                                 bulkAction, bulkJob, listBulkJobs, auditLog; killFlow, pauseFlow, resumeFlow
    ledgeragent:type=FlowRPCOps  finality recovery, Corda's FlowRPCOps: recoverFinalityFlow, ...Flows,
                                 recoverAllFinalityFlows, ...ByTxnId, ...ByTxnIds, recoverFinalityFlowsMatching
    ledgeragent:type=NodeFlowStatusRpcOps  getFlowTransaction, getFlowTransactionByTxnId (read-only)
    ledgeragent:type=LedgerRecovery  Ledger Recovery: LedgerRecovery (LedgerRecoveryFlow), recover;
                                 ledgerRecoveryResults, ledgerRecoveryProgress, heldByNoPeer (read-only)

Operations of catalogue commands are built from the catalogue (agent.operator_api.catalogue): its
operation name, parameters, impact (ACTION for an operator's command) and return type. They check
their caller themselves (a guard): each runs through the gate of agent.management.audit, which
refuses an ACTION to a read-only user before its arguments are looked at and writes the audit log,
the refusal included. A bad argument is an IllegalArgumentException, as for any bean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent import __version__
from agent.clock import to_epoch_ms
from agent.errors import shown
from agent.flows.checkpoints import FlowStatus
from agent.hospital.hospital import FlowHospital
from agent.ledger.identity import X500Name
from agent.ledger.vault import TransactionStatus
from agent.ledgersync.app import LedgerSync
from agent.management.audit import CommandGate
from agent.management.beans_settings import add_ledgersync_limits, logging_bean
from agent.management.commands import FlowArgumentError, NodeCommand, NodeCommands, result_json
from agent.management.hospital_monitoring import add_monitoring_attributes
from agent.operator_api.catalogue import Param, Result
from agent.operator_api.status import ReconciliationStatus
from agent.ports.checkpoints import CheckpointCounts
from agent.ports.transactions import TransactionReader
from agent.ports.vault import VaultStore
from agent.runtime import AgentRuntime
from mbeans.caller import Caller
from mbeans.errors import IllegalArgumentException
from mbeans.model import Impact, JavaType, MBean
from mbeans.names import (
    FLOW_HOSPITAL,
    FLOW_RPC_OPS,
    FLOWS,
    LEDGER_GRAPH,
    LEDGER_RECOVERY,
    LEDGER_SYNC,
    NODE,
    NODE_FLOW_STATUS_RPC_OPS,
    TOKENS,
)
from mbeans.registry import MBeanRegistry

S, INT, L, B, LIST, MAP = (
    JavaType.STRING,
    JavaType.INT,
    JavaType.LONG,
    JavaType.BOOLEAN,
    JavaType.LIST,
    JavaType.MAP,
)

# The JMX type a bean operation gives each kind of catalogue parameter, and each kind of result.
PARAM_TYPES: dict[str, JavaType] = {
    "party": S,
    "parties": LIST,
    "bool": B,
    "flag": JavaType.BOOLEAN_OBJECT,  # null: the flow's default
    "status": S,
    "method": S,
    "observers": LIST,
    "holdings": LIST,
    "amount": L,
    "currency": S,
    "seconds": JavaType.DOUBLE_OBJECT,  # null: the parameter's default
    "flowId": S,
    "flowStatus": S,
    "text": S,
    "txId": S,
    "reason": S,
    "flowFilter": MAP,
    "bulkAction": S,
    "batchSize": JavaType.INTEGER_OBJECT,  # null: the parameter's default
    "limit": JavaType.INTEGER_OBJECT,
    "flowIds": LIST,
    "txIds": LIST,
    "instant": S,
    "initiators": JavaType.OBJECT,  # one X.500 name or a list of them
    "recoveryPeers": LIST,
    "timeWindow": MAP,
    "transactionRole": S,
    "recoveryBatchSize": JavaType.INTEGER_OBJECT,  # null: the flow's default
    "recoveryParameters": MAP,
}
RESULT_TYPES: dict[Result, JavaType] = {
    Result.UNIT: JavaType.VOID,
    Result.BOOL: B,
    Result.INT: INT,
    Result.STATUS: MAP,
    Result.STATUSES: LIST,
    Result.SESSION: MAP,
    Result.TX_ID: S,
    Result.FLOWS: LIST,
    Result.PATIENTS: LIST,
    Result.PATIENT: MAP,
    Result.BULK: MAP,
    Result.JOB: MAP,
    Result.JOBS: LIST,
    Result.AUDIT: LIST,
    Result.RECOVERED: MAP,
    Result.FLOW_TRANSACTION: MAP,
    Result.RECOVERY_PLANS: LIST,
    Result.LEDGER_RECOVERY: MAP,
    Result.RECOVERY_RESULTS: LIST,
    Result.RECOVERY_PROGRESS: MAP,
}


def party(value: str | None, what: str = "party") -> X500Name:
    if value is None:
        raise IllegalArgumentException(f"{what}: an X.500 name is required")
    try:
        return X500Name.parse(value)
    except Exception as exc:
        raise IllegalArgumentException(f"{what}: {value!r}: {exc}") from exc


def plain(status: ReconciliationStatus | None) -> dict[str, Any] | None:
    return None if status is None else status.as_dict()


def _flows_with(counts: CheckpointCounts, status: FlowStatus) -> Callable[[], int]:
    return lambda: int(counts.count_checkpoints()[status])


def add_command(bean: MBean, command: NodeCommand, gate: CommandGate) -> None:
    """The catalogue command as an operation of bean: its full signature, and each shorter overload the
    catalogue names (the parameters left out take their defaults), run through gate for its caller."""
    declared = command.command
    impact = Impact.ACTION if declared.act else Impact.INFO
    returns = RESULT_TYPES[declared.result]
    for names in (tuple(p.name for p in declared.params), *declared.overloads):
        params = [p for p in declared.params if p.name in names]
        bean.operation(
            declared.operation,
            [(p.name, PARAM_TYPES[p.kind], p.description) for p in params],
            returns,
            declared.description,
            _runner(command, params, gate),
            impact,
            guard=lambda caller, given: gate.authorize(command, given, caller),
        )


def _runner(command: NodeCommand, params: list[Param], gate: CommandGate) -> Callable[..., Any]:
    def run(caller: Caller | None, *values: Any) -> Any:
        try:
            result = gate.run(command, dict(zip((p.name for p in params), values, strict=True)), caller)
        except FlowArgumentError as exc:
            # To a bean's caller a bad argument is what JMX calls it (JSON-RPC -32002, Jolokia 400).
            raise IllegalArgumentException(f"{exc.parameter}: {shown(exc.value)}; {exc.allowed}") from exc
        return result_json(result)

    return run


def _commands_of(bean: MBean, commands: NodeCommands, gate: CommandGate) -> MBean:
    bean_type = bean.name.key("type")
    for command in commands:
        if command.command.bean == bean_type:
            add_command(bean, command, gate)
    return bean


def register_agent_beans(
    registry: MBeanRegistry,
    runtime: AgentRuntime,
    commands: NodeCommands | None = None,
    gate: CommandGate | None = None,
) -> None:
    """Register the beans of every service the runtime has; commands are the catalogue's on it, run
    through gate (one on the node's audit log unless given)."""
    commands = commands or NodeCommands(runtime)
    gate = gate or _gate(runtime)
    registry.register(node_bean(runtime))
    registry.register(flows_bean(runtime, commands, gate))
    registry.register(tokens_bean(runtime, commands, gate))
    registry.register(flow_hospital_bean(runtime.hospital, commands, gate))
    registry.register(
        _commands_of(
            MBean(FLOW_RPC_OPS, "Finality recovery (Corda's FlowRPCOps)", "ledgeragent.FlowRPCOps"),
            commands,
            gate,
        )
    )
    registry.register(
        _commands_of(
            MBean(
                NODE_FLOW_STATUS_RPC_OPS,
                "Finality flows' transactions (Corda's NodeFlowStatusRpcOps)",
                "ledgeragent.NodeFlowStatusRpcOps",
            ),
            commands,
            gate,
        )
    )
    registry.register(ledger_recovery_bean(commands, gate))
    registry.register(logging_bean(gate))  # the log levels, writable (agent.management.beans_settings)
    if runtime.ledgersync is not None:
        registry.register(ledger_graph_bean(runtime.ledgersync))
        registry.register(ledger_sync_bean(runtime.ledgersync, commands, gate))


def ledger_recovery_bean(commands: NodeCommands, gate: CommandGate) -> MBean:
    """Ledger Recovery's operations, the catalogue's LedgerRecovery commands. Monitoring attributes are
    added to the registered bean by their own module (registry.get(LEDGER_RECOVERY))."""
    bean = MBean(
        LEDGER_RECOVERY,
        "Ledger Recovery: LedgerRecoveryFlow, the recover command, its results and progress",
        "ledgeragent.LedgerRecovery",
    )
    return _commands_of(bean, commands, gate)


def node_bean(runtime: AgentRuntime) -> MBean:
    node = runtime.node
    transactions: TransactionReader = node.store.transactions
    vault: VaultStore = node.store.vault

    def by_status() -> dict[str, int]:
        return {status.name: transactions.count_transactions(status) for status in TransactionStatus}

    bean = MBean(NODE, "The node this agent runs beside", "ledgeragent.Node")
    bean.attribute("Identity", S, "The node's X.500 name", lambda: str(node.identity.name))
    bean.attribute("Role", S, "node or notary", lambda: "notary" if node.notary else "node")
    bean.attribute("Version", S, "The agent's version", lambda: __version__)
    bean.attribute(
        "RefusedPeerMessages",
        MAP,
        "Messages to the peer endpoint refused before any handler saw them, since the start, by error",
        runtime.peer_service.refused_counts,
    )
    bean.attribute("Transactions", L, "Transactions recorded, any status", transactions.count_transactions)
    bean.attribute("TransactionsByStatus", MAP, "Transactions by status", by_status)
    bean.attribute(
        "InFlightTransactions",
        L,
        "Transactions IN_FLIGHT (two-phase finality begun, not finished)",
        lambda: transactions.count_transactions(TransactionStatus.IN_FLIGHT),
    )
    bean.attribute("UnconsumedStates", L, "Unconsumed states in the vault", vault.count_vault_states)
    bean.attribute("Time", L, "The agent's clock, epoch milliseconds", lambda: to_epoch_ms(node.clock.now()))
    return bean


def _gate(runtime: AgentRuntime) -> CommandGate:
    return CommandGate(runtime.node.store.audit, runtime.node.clock)


def flows_bean(runtime: AgentRuntime, commands: NodeCommands, gate: CommandGate | None = None) -> MBean:
    counts: CheckpointCounts = runtime.node.store.checkpoint_counts
    gate = gate or _gate(runtime)

    def by_status() -> dict[str, int]:
        return {status.name: count for status, count in counts.count_checkpoints().items()}

    bean = MBean(FLOWS, "The node's flows (checkpoints) and the verbs on them", "ledgeragent.Flows")
    bean.attribute("FlowsByStatus", MAP, "Flows by checkpoint status", by_status)
    bean.attribute(
        "FlowDurations",
        LIST,
        "Time from start to end of the flows ended since the agent started, by flow name and outcome: "
        "cumulative counts by upper bound in seconds, sum, count (agent.flows.durations)",
        runtime.flow_durations.snapshot,
    )
    for status in (FlowStatus.RUNNABLE, FlowStatus.FAILED, FlowStatus.HOSPITALIZED):
        bean.attribute(
            f"NumberOf{status.name.title()}Flows",
            L,
            f"Flows whose checkpoint is {status.name}",
            _flows_with(counts, status),
        )
    _commands_of(bean, commands, gate)
    add_command(bean, commands["retryFlow"], gate)  # the engine's fifth verb, with its four
    return bean


def tokens_bean(runtime: AgentRuntime, commands: NodeCommands, gate: CommandGate | None = None) -> MBean:
    tokens = runtime.tokens
    gate = gate or _gate(runtime)

    def holdings() -> list[dict[str, Any]]:
        return [
            {"currency": h.currency, "issuer": str(h.issuer), "amount": h.amount, "states": h.states}
            for h in tokens.holdings()
        ]

    bean = MBean(TOKENS, "The node's tokens and the flows that move them", "ledgeragent.Tokens")
    bean.attribute("Holdings", LIST, "Tokens held, by currency and issuer: amount and states", holdings)
    return _commands_of(bean, commands, gate)


def flow_hospital_bean(
    hospital: FlowHospital, commands: NodeCommands | None = None, gate: CommandGate | None = None
) -> MBean:
    """What monitoring reads of the hospital (agent.management.hospital_monitoring) and, given the
    commands and their gate, the catalogue's FlowHospital commands with the Flows verbs too."""
    bean = MBean(
        FLOW_HOSPITAL,
        "The flow hospital: its patients and their histories, the verbs on them, bulk jobs, the audit log",
        "ledgeragent.FlowHospital",
    )
    add_monitoring_attributes(bean, hospital)
    if commands is None or gate is None:
        return bean
    _commands_of(bean, commands, gate)
    for verb in ("killFlow", "pauseFlow", "resumeFlow"):  # the Flows bean's too: one bean has them all
        add_command(bean, commands[verb], gate)
    return bean


def ledger_graph_bean(sync: LedgerSync) -> MBean:
    bean = MBean(
        LEDGER_GRAPH, "The in-memory ledger graph and the self-consistency check", "ledgeragent.LedgerGraph"
    )
    bean.attribute("IsInitialized", B, "The graph is built", lambda: sync.report.is_initialized)
    bean.attribute(
        "IsSelfConsistent",
        B,
        "The ledger passed the self-consistency check",
        lambda: sync.report.is_self_consistent,
    )
    bean.attribute("Errors", LIST, "What the check found (the first 1000)", lambda: list(sync.report.errors))
    bean.attribute("ErrorCount", L, "How many errors the check found", lambda: sync.report.error_count)
    bean.attribute("Size", L, "Transactions in the graph", lambda: sync.service.graph.size)
    bean.operation(
        "CheckConsistency",
        [],
        B,
        "Run the self-consistency check again; whether the ledger is consistent",
        lambda: sync.check_consistency().is_self_consistent,
        Impact.ACTION,
    )
    return bean


def ledger_sync_bean(sync: LedgerSync, commands: NodeCommands, gate: CommandGate) -> MBean:
    bean = MBean(LEDGER_SYNC, "LedgerSync: reconciliations with peers", "ledgeragent.LedgerSync")
    # Each attribute asks the store one question: reading one count must not compute them all.
    statuses, scheduler = sync.statuses, sync.scheduler
    bean.attribute("FailedParties", LIST, "Parties whose last reconciliation failed", statuses.failed_parties)
    bean.attribute(
        "PartiesWithDifference",
        LIST,
        "Parties whose last reconciliation found differences",
        statuses.parties_with_difference,
    )
    for name, read, description in (
        ("NumberOfScheduledReconciliations", scheduler.number_scheduled, "queued for execution"),
        ("NumberOfReconciliationsInProgress", scheduler.number_in_progress, "executing"),
        ("NumberOfFailedReconciliations", statuses.number_failed, "that failed"),
        (
            "NumberOfReconciliationsWithDifferences",
            statuses.number_with_differences,
            "that found differences",
        ),
        (
            "NumberOfReconciliationsWithoutDifferences",
            statuses.number_without_differences,
            "that found no difference",
        ),
    ):
        bean.attribute(name, INT, f"Reconciliations {description}", read)
    bean.attribute(
        "NumberOfIncomingReconciliations",
        INT,
        "Reconciliations other parties are running with this node now",
        sync.incoming.number_in_progress,
    )
    bean.attribute(
        "Statuses",
        LIST,
        "Every requester status",
        lambda: [s.as_dict() for s in sync.get_reconciliation_statuses()],
    )
    bean.attribute(
        "PeerSummaries",
        LIST,
        "Per peer, this node's last reconciliation: partyName, lastReconciliationStatus, "
        "lastSuccessfulReconciliationTimeFinished, lastSuccessfulReconciliationResult (ids)",
        statuses.summaries,
    )

    bean.operation(
        "ReconciliationStatus",
        [("party", S, "The party's X.500 name")],
        MAP,
        "The status of this node's reconciliation with party, or null",
        lambda p: plain(sync.get_reconciliation_status_for_party(party(p), True)),
    )
    add_ledgersync_limits(bean, sync, gate)  # writable by an operator (agent.management.beans_settings)
    _commands_of(bean, commands, gate)
    # The reference's JMX has killFlow here too (a reconciliation's stateMachineRunId): the same verb.
    add_command(bean, commands["killFlow"], gate)
    return bean

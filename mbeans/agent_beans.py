"""The beans of one agent: the node, its flows, the ledger graph and LedgerSync (names in ../shared/
reference/ledger-sync.md). Every adapter (JSON-RPC, Jolokia, Prometheus, `ledger-agent check`)
reads and calls the services only through these.

    ledgeragent:type=Node        Identity, Role, Transactions, TransactionsByStatus, UnconsumedStates
    ledgeragent:type=Flows       FlowsByStatus, NumberOfFlowsInFlight...; killFlow(id)
    ledgeragent:type=LedgerGraph IsInitialized, IsSelfConsistent, Errors, ErrorCount, Size
    ledgeragent:type=LedgerSync  the reference's JMX attributes and ReconciliationStatus(party),
                                 and its flows as operations (ScheduleReconciliation, ...), named
                                 and given their impact by agent/flows/catalogue.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.clock import to_epoch_ms
from agent.flows.catalogue import OPERATOR_FLOWS
from agent.flows.checkpoints import FlowStatus
from agent.ledger.identity import X500Name
from agent.ledger.vault import TransactionStatus
from agent.ledgersync.app import LedgerSync
from agent.ledgersync.protocol import METHOD_RIBLT, METHODS
from agent.ledgersync.status import ReconciliationStatus, ReconciliationStatusValue
from agent.runtime import AgentRuntime
from mbeans.errors import IllegalArgumentException
from mbeans.model import Impact, JavaType, MBean
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry

DOMAIN = "ledgeragent"
NODE = ObjectName.parse(f"{DOMAIN}:type=Node")
FLOWS = ObjectName.parse(f"{DOMAIN}:type=Flows")
LEDGER_GRAPH = ObjectName.parse(f"{DOMAIN}:type=LedgerGraph")
LEDGER_SYNC = ObjectName.parse(f"{DOMAIN}:type=LedgerSync")

S, INT, L, B, LIST, MAP, VOID = (
    JavaType.STRING,
    JavaType.INT,
    JavaType.LONG,
    JavaType.BOOLEAN,
    JavaType.LIST,
    JavaType.MAP,
    JavaType.VOID,
)


def party(value: str | None, what: str = "party") -> X500Name:
    if value is None:
        raise IllegalArgumentException(f"{what}: an X.500 name is required")
    try:
        return X500Name.parse(value)
    except Exception as exc:
        raise IllegalArgumentException(f"{what}: {value!r}: {exc}") from exc


def optional_party(value: str | None) -> X500Name | None:
    return None if value in (None, "") else party(value)


def status_value(value: str | None) -> ReconciliationStatusValue | None:
    if value in (None, ""):
        return None
    if value not in ReconciliationStatusValue.__members__:
        allowed = ", ".join(ReconciliationStatusValue.__members__)
        raise IllegalArgumentException(f"lastReconciliationStatus: {value!r} is not one of {allowed}")
    return ReconciliationStatusValue[value]


def _method(value: str | None) -> str:
    if value in (None, ""):
        return METHOD_RIBLT
    if value not in METHODS:
        raise IllegalArgumentException(f"method: {value!r} is not one of {', '.join(METHODS)}")
    return str(value)


def plain(status: ReconciliationStatus | None) -> dict[str, Any] | None:
    return None if status is None else status.as_dict()


def _flows_with(store: Any, status: FlowStatus) -> Callable[[], int]:
    return lambda: int(store.count_checkpoints()[status])


def register_agent_beans(registry: MBeanRegistry, runtime: AgentRuntime) -> None:
    """Register the beans of every service the runtime has."""
    registry.register(node_bean(runtime))
    registry.register(flows_bean(runtime))
    if runtime.ledgersync is not None:
        registry.register(ledger_graph_bean(runtime.ledgersync))
        registry.register(ledger_sync_bean(runtime.ledgersync))


def node_bean(runtime: AgentRuntime) -> MBean:
    node = runtime.node
    store = node.store

    def by_status() -> dict[str, int]:
        return {status.name: store.count_transactions(status) for status in TransactionStatus}

    bean = MBean(NODE, "The node this agent runs beside", "ledgeragent.Node")
    bean.attribute("Identity", S, "The node's X.500 name", lambda: str(node.identity.name))
    bean.attribute("Role", S, "node or notary", lambda: "notary" if node.notary else "node")
    bean.attribute("Transactions", L, "Transactions recorded, any status", store.count_transactions)
    bean.attribute("TransactionsByStatus", MAP, "Transactions by status", by_status)
    bean.attribute(
        "InFlightTransactions",
        L,
        "Transactions IN_FLIGHT (two-phase finality begun, not finished)",
        lambda: store.count_transactions(TransactionStatus.IN_FLIGHT),
    )
    bean.attribute("UnconsumedStates", L, "Unconsumed states in the vault", store.count_vault_states)
    bean.attribute("Time", L, "The agent's clock, epoch milliseconds", lambda: to_epoch_ms(node.clock.now()))
    return bean


def flows_bean(runtime: AgentRuntime) -> MBean:
    store = runtime.node.store
    sync = runtime.ledgersync

    def by_status() -> dict[str, int]:
        return {status.name: count for status, count in store.count_checkpoints().items()}

    def kill(flow_id: str) -> bool:
        return sync is not None and sync.kill_flow(flow_id)

    bean = MBean(FLOWS, "The node's flows (checkpoints)", "ledgeragent.Flows")
    bean.attribute("FlowsByStatus", MAP, "Flows by checkpoint status", by_status)
    for status in (FlowStatus.RUNNABLE, FlowStatus.FAILED, FlowStatus.HOSPITALIZED):
        bean.attribute(
            f"NumberOf{status.name.title()}Flows",
            L,
            f"Flows whose checkpoint is {status.name}",
            _flows_with(store, status),
        )
    bean.operation(
        "killFlow",
        [("id", S, "The flow's id (a reconciliation's stateMachineRunId)")],
        B,
        "Kill a running flow; true if one was running (Corda's killFlow)",
        kill,
        Impact.ACTION,
    )
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


def ledger_sync_bean(sync: LedgerSync) -> MBean:
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

    def flow_operation(
        flow_name: str,
        parameters: list[tuple[str, JavaType, str]],
        returns: JavaType,
        description: str,
        call: Callable[..., Any],
    ) -> None:
        """An operation doing a catalogue flow's work, as the catalogue names it; ACTION if the flow acts."""
        flow = OPERATOR_FLOWS[flow_name]
        impact = Impact.ACTION if flow.act else Impact.INFO
        bean.operation(flow.operation, parameters, returns, description, call, impact)

    bean.operation(
        "ReconciliationStatus",
        [("party", S, "The party's X.500 name")],
        MAP,
        "The status of this node's reconciliation with party, or null",
        lambda p: plain(sync.get_reconciliation_status_for_party(party(p), True)),
    )
    flow_operation(
        "ScheduleReconciliationFlow",
        [("parties", LIST, "X.500 names of the parties to reconcile with")],
        VOID,
        "ScheduleReconciliationFlow: queue a reconciliation with each party",
        lambda ps: sync.schedule_reconciliation([party(p, "parties[]") for p in ps]),
    )
    flow_operation(
        "ScheduleReconciliationFlow",
        [
            ("parties", LIST, "X.500 names of the parties to reconcile with"),
            ("bothDirections", B, "Both sides learn what they lack, in one session"),
        ],
        VOID,
        "ScheduleReconciliationFlow, optionally in both directions",
        lambda ps, both: sync.schedule_reconciliation(
            [party(p, "parties[]") for p in ps], both_directions=both
        ),
    )
    flow_operation(
        "ReconcileWithPartyFlow",
        [
            ("party", S, "The party's X.500 name"),
            ("bothDirections", B, "Tell the party what it lacks too"),
            ("method", S, "riblt (coded symbols) or list (the peer's whole set: the naive way)"),
        ],
        MAP,
        "Reconcile now, outside the scheduler and the status table; the session's figures",
        lambda p, both, method: sync.reconcile_with_party(
            party(p), both_directions=both, method=_method(method)
        ).as_dict(),
    )
    flow_operation(
        "GetReconciliationStatusesFlow",
        [
            ("party", S, "Only this party (null for all)"),
            ("lastReconciliationStatus", S, "Only this status (null for all)"),
            ("isRequester", B, "This node's reconciliations (true) or other parties' with it (false)"),
        ],
        LIST,
        "GetReconciliationStatusesFlow",
        lambda p, st, req: [
            s.as_dict() for s in sync.get_reconciliation_statuses(optional_party(p), status_value(st), req)
        ],
    )
    flow_operation(
        "GetReconciliationStatusesFlow",
        [("isRequester", B, "This node's reconciliations (true) or other parties' with it (false)")],
        LIST,
        "GetReconciliationStatusesFlow for every party and status",
        lambda req: [s.as_dict() for s in sync.get_reconciliation_statuses(None, None, req)],
    )
    flow_operation(
        "GetReconciliationStatusForPartyFlow",
        [("party", S, "The party's X.500 name"), ("isRequester", B, "Which direction")],
        MAP,
        "GetReconciliationStatusForPartyFlow: the status, or null",
        lambda p, req: plain(sync.get_reconciliation_status_for_party(party(p), req)),
    )
    flow_operation(
        "RefreshReconciliationStatusesFlow",
        [],
        INT,
        "RefreshReconciliationStatusesFlow: drop ids now recorded here; how many were dropped",
        sync.refresh_reconciliation_statuses,
    )
    flow_operation(
        "StopReconciliationForPartyFlow",
        [("party", S, "The party's X.500 name")],
        VOID,
        "StopReconciliationForPartyFlow: cancel, drop and mark STOPPED, both directions",
        lambda p: sync.stop_reconciliation_for_party(party(p)),
    )
    flow_operation(
        "IsReconciliationScheduledForPartyFlow",
        [("party", S, "The party's X.500 name")],
        B,
        "IsReconciliationScheduledForPartyFlow",
        lambda p: sync.is_reconciliation_scheduled_for_party(party(p)),
    )
    flow_operation(
        "IsRespondingToReconciliationForPartyFlow",
        [("party", S, "The party's X.500 name")],
        B,
        "IsRespondingToReconciliationForPartyFlow",
        lambda p: sync.is_responding_to_reconciliation_for_party(party(p)),
    )
    bean.operation(
        "killFlow",
        [("id", S, "The reconciliation's stateMachineRunId")],
        B,
        "Kill a running reconciliation; true if one was running",
        sync.kill_flow,
        Impact.ACTION,
    )
    return bean

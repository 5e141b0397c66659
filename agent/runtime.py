"""One node's services around a transport: the same wiring for real processes and simulations.

A part of the composition root (agent.composition), which adds the peer and management apps; tests
and simulations call it alone: `build_runtime(open_node(config), InProcessTransport(network))`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agent.finality.auto_recovery import AutoRecovery
from agent.finality.flows import FinalityDeps
from agent.finality.jobs import RECOVERY_JOB_FLOW
from agent.finality.recovery import FinalityRecoveryService
from agent.finality.service import FinalityService
from agent.flows.checkpoints import FlowCheckpoint
from agent.flows.durations import FlowDurations
from agent.flows.engine import FlowEngine
from agent.flows.faults import FaultPlan
from agent.hospital.bulk import BulkActions
from agent.hospital.hospital import FlowHospital
from agent.hospital.sessions import UnhandledSessions
from agent.ledgersync.app import LedgerSync, LedgerSyncPorts
from agent.ledgersync.config import LedgerSyncConfig
from agent.node import Node
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.client import PeerClient, RawTransport
from agent.p2p.retry import RetryPolicy
from agent.p2p.service import PeerService
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.reconcile import LedgerSyncReconciler
from agent.recovery.service import LedgerRecoveryService
from agent.store.ledger_store import LedgerStore
from agent.tokens.service import TokenService

log = logging.getLogger("ledger_agent.runtime")


@dataclass
class AgentRuntime:
    node: Node
    authenticator: MessageAuthenticator
    peer_service: PeerService
    peers: PeerClient
    engine: FlowEngine
    aes_keys: NodeAesKeys
    finality: FinalityService
    tokens: TokenService
    hospital: FlowHospital
    bulk: BulkActions
    recovery: FinalityRecoveryService
    ledger_recovery: LedgerRecoveryService
    ledgersync: LedgerSync | None = field(default=None)
    ledgersync_background: bool = False
    resumed: list[FlowCheckpoint] = field(default_factory=list)
    started: bool = False
    auto_recovery: AutoRecovery | None = None
    flow_durations: FlowDurations = field(default_factory=FlowDurations)

    @property
    def max_message_size(self) -> int:
        return self.node.network_map.parameters.max_message_size

    def start(self) -> None:
        """Start LedgerSync (its graph read in a thread if ledgersync_background), then resume the flows
        the last stop cut off: last, with every flow registered and every topic handled."""
        if self.started:
            return
        self.started = True
        self.node.store.start_checkpointing()
        if self.ledgersync is not None:
            self.ledgersync.start(background=self.ledgersync_background)
        self.resumed = self.engine.resume_all()
        self.hospital.start()
        if self.auto_recovery is not None:
            self.auto_recovery.start()  # a thread only when node.conf's finalityRecovery.autoRecover
        self.ledger_recovery.start_retrying()

    def stop(self, timeout: float = 30.0) -> None:
        """Let running flows finish (their checkpoints record where each is), then close the store."""
        if self.ledgersync is not None:
            # Running reconciliations finish; queued ones stay in the store for the next start.
            self.ledgersync.stop(timeout)
        if self.auto_recovery is not None:
            self.auto_recovery.stop()
        self.ledger_recovery.stop_retrying()
        self.engine.shutdown(timeout)
        self.hospital.stop()
        self.node.close()


def ledgersync_ports(store: LedgerStore) -> LedgerSyncPorts:
    """The store's repositories LedgerSync is given, one per port it uses."""
    return LedgerSyncPorts(
        transactions=store.transactions,
        distribution=store.distribution,
        scans=store.graph_scans,
        statuses=store.reconciliation,
        requests=store.reconciliation_requests,
    )


def build_runtime(
    node: Node,
    transport: RawTransport,
    *,
    retry: RetryPolicy | None = None,
    faults: FaultPlan | None = None,
    ledgersync: bool = False,
    ledgersync_config: LedgerSyncConfig | None = None,
    ledgersync_background: bool = False,
    start: bool = True,
) -> AgentRuntime:
    """The node's services around transport; with ledgersync, the ledger graph and LedgerSync too.

    ledgersync_background reads the ledger graph in a thread (a real agent starts serving at once);
    otherwise it is built before start() returns, as simulations want. With start (the default, as
    simulations want) the runtime is started before this returns; otherwise the caller starts it.
    faults replaces the plan of node.conf's faultInjection (a simulation's, whose crash does not exit
    the process).
    """
    clock = node.clock
    authenticator = MessageAuthenticator(node.identity, node.key, node.network_map, clock)
    max_size = node.network_map.parameters.max_message_size
    peer_service = PeerService(authenticator, max_size)
    peers = PeerClient(authenticator, node.network_map, transport, retry)
    plan = faults if faults is not None else FaultPlan.parse(node.config.fault_injection)
    store = node.store  # each service is given the repositories of the ports it uses
    engine = FlowEngine(store.checkpoints, store.unit, clock, plan)
    durations = FlowDurations()
    engine.on_status(durations.on_status)
    notaries = {str(info.name) for info in node.network_map.notaries}
    hospital = FlowHospital(
        store.hospital,
        store.checkpoints,
        clock,
        node.config.hospital,
        is_notary=lambda name: name in notaries,
    )
    hospital.attach(engine)
    UnhandledSessions(engine, peer_service, peers).register()
    aes_keys = NodeAesKeys(store.keys, node.identity.name)
    aes_keys.keys()  # ten keys at first start, as Corda does
    deps = FinalityDeps(
        node.identity,
        node.ledger,
        store.transactions,
        store.distribution,
        peers,
        aes_keys,
        clock,
        node.network_map,
    )
    finality = FinalityService(deps, engine, node.notary)
    finality.register(peer_service)
    recovery = FinalityRecoveryService(deps, engine, node.key, audit=node.store.audit)
    recovery.register(peer_service)
    ledger_recovery = LedgerRecoveryService(
        node.identity.name,
        store.transactions,
        store.distribution,
        store.recovery,
        store.unit,
        peers,
        node.ledger.contracts,
        aes_keys,
        node.network_map,
        clock,
        engine,
        recovery_period=node.config.transaction_recovery_period,
        settings=node.config.ledger_recovery,
        # alsoFinalize: finality recovery of what came back IN_FLIGHT; forceRecover only when a flow
        # still tied to it here (the backup held its checkpoint) is one forceRecoverFlowIds names.
        finalize=lambda tx_id, force_ids: recovery.recover_finality_flow_by_txn_id(
            tx_id, any(f.flow_id in force_ids for f in engine.flows(tx_id=tx_id)), timeout=60.0
        ),
    )
    ledger_recovery.register(peer_service)
    tokens = TokenService(
        node.identity,
        node.key,
        store.vault,
        store.transactions,
        finality,
        node.network_map,
        hold=ledger_recovery.hold_new_flows,
    )
    sync = None
    if ledgersync:
        sync = LedgerSync(
            node.identity,
            ledgersync_ports(store),
            peers,
            node.network_map,
            ledgersync_config or LedgerSyncConfig(),
            clock,
            engine,
        )
        sync.register(peer_service)
    if sync is not None:
        ledger_recovery.deps.reconciler = LedgerSyncReconciler(sync)
    bulk = BulkActions(
        engine,
        node.store.checkpoints,
        node.store.hospital,
        node.store.audit,
        clock,
        # killFlow's own rule: a reconciliation is LedgerSync's to kill, any other flow the engine's.
        lambda flow_id: (sync is not None and sync.kill_flow(flow_id)) or engine.kill(flow_id),
    )
    bulk.register()
    bulk.list_also(RECOVERY_JOB_FLOW, recovery.jobs.summary)  # the operator's one listing of jobs
    runtime = AgentRuntime(
        node,
        authenticator,
        peer_service,
        peers,
        engine,
        aes_keys,
        finality,
        tokens,
        hospital,
        bulk,
        recovery,
        ledger_recovery,
        sync,
        ledgersync_background,
        auto_recovery=AutoRecovery(recovery, node.config.finality_recovery, clock, engine),
        flow_durations=durations,
    )
    if start:
        runtime.start()
    return runtime

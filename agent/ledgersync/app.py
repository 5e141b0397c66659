"""LedgerSync on one node: its parts wired together, its flows, and the counts the JMX section lists.

The flows keep the reference's names and parameters (ScheduleReconciliationFlow(parties), ...); the
adapters (management API, command line, later JSON-RPC and Jolokia) call these methods and nothing
deeper. The ledger graph is read in a background thread at start: until it is built and found
self-consistent, scheduling and serving are refused with LedgerGraphNotReadyException, as the
reference's node refuses while "still performing self-consistency checks".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from agent.clock import Clock
from agent.flows.engine import FlowEngine
from agent.ledger.identity import Party, X500Name
from agent.ledgersync.admission import IncomingReconciliations
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.consistency import ConsistencyReport, require_ready
from agent.ledgersync.graph import LedgerGraph
from agent.ledgersync.protocol import (
    METHOD_RIBLT,
    Handlers,
    LedgerSyncService,
    Peers,
    ReconciliationResult,
)
from agent.ledgersync.scheduler import ReconciliationScheduler
from agent.ledgersync.timetable import ReconciliationTimetable
from agent.network.network_map import NetworkMap
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from agent.ports.distribution import DistributionRecords
from agent.ports.graph_scans import GraphScans
from agent.ports.reconciliation import ReconciliationStatuses, RequestWindow
from agent.ports.transactions import TransactionReader

log = logging.getLogger("ledger_agent.ledgersync")
refresh_log = logging.getLogger("ledger_agent.ledgersync.RefreshReconciliationStatusesFlow")


@dataclass(frozen=True)
class LedgerSyncPorts:
    """The store's ports LedgerSync uses, each given its repository."""

    transactions: TransactionReader  # the graph follows what is recorded; refresh asks what is there
    distribution: DistributionRecords  # a recorded transaction's peers, for the graph
    scans: GraphScans  # the graph's build and the consistency check
    statuses: ReconciliationStatuses
    requests: RequestWindow  # the responder's rate limit


@dataclass(frozen=True)
class LedgerSyncCounts:
    """The JMX section's figures, read together."""

    number_of_scheduled_reconciliations: int
    number_of_reconciliations_in_progress: int
    number_of_failed_reconciliations: int
    number_of_reconciliations_with_differences: int
    number_of_reconciliations_without_differences: int
    failed_parties: list[str]
    parties_with_difference: list[str]


class LedgerSync:
    """The LedgerSync service of one node."""

    def __init__(
        self,
        identity: Party,
        ports: LedgerSyncPorts,
        peers: Peers,
        network_map: NetworkMap,
        config: LedgerSyncConfig,
        clock: Clock,
        engine: FlowEngine,
    ) -> None:
        self.identity = identity
        self.ports = ports
        self.config = config
        self.clock = clock
        self.statuses = ports.statuses
        self.incoming = IncomingReconciliations(ports.requests, self.statuses, config, clock, engine=engine)
        self.service = LedgerSyncService(
            identity,
            LedgerGraph(),  # empty and not initialised until the build below replaces it
            ports.scans,
            peers,
            config,
            network_map,
            clock,
            incoming=self.incoming,
        )
        self.service.not_ready("the ledger graph is being built")
        self.scheduler = ReconciliationScheduler(
            self.service, self.statuses, engine, config, clock, str(identity.name)
        )
        self.timetable = ReconciliationTimetable(
            config.scheduled_reconciliations, self.scheduler.schedule, clock
        )
        self._loader: threading.Thread | None = None
        self.ready = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------

    def register(self, handlers: Handlers) -> None:
        self.service.register(handlers)

    def start(self, *, background: bool = True) -> None:
        """Build the graph (in a thread when background), then start the scheduler and timetable."""
        if background:
            self._loader = threading.Thread(target=self._load, name="ledgersync-graph", daemon=True)
            self._loader.start()
        else:
            self._load()

    def stop(self, timeout: float = 30.0) -> None:
        """Running reconciliations finish; queued ones stay in the store for the next start."""
        self.timetable.stop()
        self.scheduler.stop(timeout)
        if self._loader is not None:
            self._loader.join(timeout)

    def _load(self) -> None:
        try:
            graph = LedgerGraph.build(
                self.ports.scans,
                page_size=self.config.transaction_reader_page_size,
                pool_size=self.config.transaction_reader_pool_size,
                readers="thread",
                me=str(self.identity.name),  # a pure observer's name cannot be inferred from its keys
            )
            graph.attach(self.ports.transactions, self.ports.distribution)
            self.service.graph = graph
            report = self.service.check_consistency()
        except Exception as exc:
            log.exception("the ledger graph could not be built")
            self.service.not_ready(f"the ledger graph could not be built: {type(exc).__name__}: {exc}")
            return
        if report.is_self_consistent:
            log.info("ledger graph ready: %d transactions, self-consistent", graph.size)
        else:
            log.error(
                "the ledger is NOT self-consistent (%d error(s)); reconciliation is refused until it is "
                "restored from a consistent backup. First: %s",
                report.error_count,
                "; ".join(report.errors[:3]),
            )
        self.scheduler.start()
        self.timetable.start()
        self.ready.set()

    # -- graph state (getLedgerGraphIsInitialized, ...IsSelfConsistent, ...Errors) -----------------

    @property
    def report(self) -> ConsistencyReport:
        return self.service.report()

    def check_consistency(self) -> ConsistencyReport:
        return self.service.check_consistency()

    # -- the flows ---------------------------------------------------------------------------------

    def schedule_reconciliation(self, parties: Sequence[X500Name], *, both_directions: bool = False) -> None:
        """ScheduleReconciliationFlow: refused for a party off the map or the notary (each named, and
        none scheduled), and while the graph is not ready or not consistent."""
        for i, party in enumerate(parties):
            self.service.check_counterparty(party, f"parties[{i}]")
        require_ready(self.report)
        self.scheduler.schedule(parties, both_directions=both_directions)

    def get_reconciliation_statuses(
        self,
        party: X500Name | None = None,
        last_reconciliation_status: ReconciliationStatusValue | None = None,
        is_requester: bool = True,
    ) -> list[ReconciliationStatus]:
        """GetReconciliationStatusesFlow."""
        return self.statuses.query(party, last_reconciliation_status, is_requester)

    def get_reconciliation_status_for_party(
        self, party: X500Name, is_requester: bool = True
    ) -> ReconciliationStatus | None:
        """GetReconciliationStatusForPartyFlow."""
        return self.statuses.get(party, is_requester)

    def refresh_reconciliation_statuses(self) -> int:
        """RefreshReconciliationStatusesFlow: drop ids now in our ledger; how many were dropped."""
        dropped = self.statuses.refresh(lambda tx_id: self.ports.transactions.get_stored(tx_id) is not None)
        refresh_log.info("%d id(s) recovered since they were found missing", dropped)
        return dropped

    def stop_reconciliation_for_party(self, party: X500Name) -> None:
        """StopReconciliationForPartyFlow: outgoing and incoming, cancelled and marked STOPPED."""
        self.scheduler.stop_for_party(party)
        self.incoming.stop(party)

    def is_reconciliation_scheduled_for_party(self, party: X500Name) -> bool:
        """IsReconciliationScheduledForPartyFlow."""
        return self.scheduler.is_scheduled(party)

    def is_responding_to_reconciliation_for_party(self, party: X500Name) -> bool:
        """IsRespondingToReconciliationForPartyFlow."""
        return self.incoming.is_responding(party)

    def kill_flow(self, state_machine_id: str) -> bool:
        """killFlow on a reconciliation (outgoing or incoming): True if one was running."""
        return (
            self.scheduler.kill(state_machine_id) is not None
            or self.incoming.kill(state_machine_id) is not None
        )

    def reconcile_with_party(
        self, party: X500Name, *, both_directions: bool = False, method: str = METHOD_RIBLT
    ) -> ReconciliationResult:
        """ReconcileWithPartyFlow run at once, outside the scheduler and the status table.

        For diagnosis (and the benchmark): it returns the figures of the session, bytes and
        exchanges included, and records nothing.
        """
        return self.service.reconcile(party, both_directions=both_directions, method=method)

    # -- the JMX section's figures -------------------------------------------------------------------

    def counts(self) -> LedgerSyncCounts:
        statuses = self.statuses
        return LedgerSyncCounts(
            number_of_scheduled_reconciliations=self.scheduler.number_scheduled(),
            number_of_reconciliations_in_progress=self.scheduler.number_in_progress(),
            number_of_failed_reconciliations=statuses.number_failed(),
            number_of_reconciliations_with_differences=statuses.number_with_differences(),
            number_of_reconciliations_without_differences=statuses.number_without_differences(),
            failed_parties=statuses.failed_parties(),
            parties_with_difference=statuses.parties_with_difference(),
        )

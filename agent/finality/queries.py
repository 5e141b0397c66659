"""What this node knows of a transaction's finality: the recovery metadata, the flows, the queries.

The metadata is what two-phase finality recorded: the transaction row (its status, timestamp and the
flow that recorded it) and the distribution records. A node with sender records for a transaction is
its initiator (the peers are the records' peers, private to it); a node with a receiver record is a
peer of it (the record names the initiator; the peers are not its business). A transaction IN_FLIGHT
with neither (an exit: the initiator alone) is the initiator's; one VERIFIED with neither and no
FinalityFlow came with another's back-chain: no finality of it happened here.

Flows come from the checkpoints: FinalityFlow, ReceiveFinalityFlow and finality recovery's own
flows that name the transaction. Also the read operations of NodeFlowStatusRpcOps:
`get_flow_transaction(flow_id)` and `get_flow_transaction_by_txn_id(tx_id)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.errors import FlowRecoveryException
from agent.finality.flows import FINALITY_FLOW, RECEIVE_FLOW
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import TimeWindow
from agent.ledger.vault import TransactionStatus
from agent.ports.checkpoints import Checkpoints
from agent.ports.distribution import DistributionRecords
from agent.ports.transactions import StoredTransaction, TransactionReader

RECOVERY_FLOW = "FinalityRecoveryFlow"
FINALITY_FLOWS = (FINALITY_FLOW, RECEIVE_FLOW, RECOVERY_FLOW)
LIVE = (FlowStatus.RUNNABLE, FlowStatus.PAUSED, FlowStatus.HOSPITALIZED)
INITIATOR, PEER = "initiator", "peer"


@dataclass(frozen=True)
class FlowTimeWindow(TimeWindow):
    """[from_time, until_time) of a flow's start; either end open (a transaction's TimeWindow's rule)."""


@dataclass(frozen=True)
class FlowRecoveryQuery:
    """Corda's FlowRecoveryQuery: at least one criterion; initiated_by one name or several.

    min_age and max_age (ours, not Corda's) bound how long the transaction has been IN_FLIGHT here,
    both ends included: min_age=30 minutes leaves out finality that may still finish by itself.
    """

    timeframe: FlowTimeWindow | None = None
    initiated_by: X500Name | Sequence[X500Name] | None = None
    counter_parties: Sequence[X500Name] | None = None
    min_age: timedelta | None = None
    max_age: timedelta | None = None

    def __post_init__(self) -> None:
        criteria = (self.timeframe, self.initiated_by, self.counter_parties, self.min_age, self.max_age)
        if all(c is None for c in criteria):
            raise FlowRecoveryException(
                "a FlowRecoveryQuery needs at least one criterion: timeframe, initiatedBy, counterParties, "
                "minAge or maxAge"
            )
        for name, age in (("minAge", self.min_age), ("maxAge", self.max_age)):
            if age is not None and age < timedelta(0):
                raise FlowRecoveryException(f"a FlowRecoveryQuery's {name} must not be negative, not {age}")
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise FlowRecoveryException(
                f"a FlowRecoveryQuery's minAge ({self.min_age}) must not exceed its maxAge ({self.max_age})"
            )

    def admits_age(self, age: timedelta | None) -> bool:
        """Whether an IN_FLIGHT age (None: unknown) is within [min_age, max_age]."""
        if self.min_age is None and self.max_age is None:
            return True
        if age is None:
            return False
        if self.min_age is not None and age < self.min_age:
            return False
        return self.max_age is None or age <= self.max_age

    @property
    def initiators(self) -> frozenset[X500Name] | None:
        if self.initiated_by is None:
            return None
        if isinstance(self.initiated_by, X500Name):
            return frozenset({self.initiated_by})
        return frozenset(self.initiated_by)


@dataclass(frozen=True)
class FlowTransactionInfo:
    """Corda's FlowTransactionInfo: peers is None on a receiver (the initiator's list is private)."""

    state_machine_run_id: str | None
    tx_id: SecureHash
    status: TransactionStatus
    timestamp: datetime
    initiator: X500Name | None = None
    peers: frozenset[X500Name] | None = None


@dataclass(frozen=True)
class FinalityMetadata:
    """One transaction's finality as this node sees it."""

    tx_id: SecureHash
    stored: StoredTransaction | None
    role: str | None  # INITIATOR, PEER, or None when nothing here says
    initiator: X500Name | None
    peers: frozenset[X500Name] | None  # the initiator's receivers; None on a peer
    flows: tuple[FlowCheckpoint, ...] = field(default=())

    @property
    def live_flows(self) -> list[FlowCheckpoint]:
        return [f for f in self.flows if f.status in LIVE]

    @property
    def finality_flow(self) -> FlowCheckpoint | None:
        """The latest FinalityFlow or ReceiveFinalityFlow of the transaction here, if any."""
        found = [f for f in self.flows if f.flow_name in (FINALITY_FLOW, RECEIVE_FLOW)]
        return found[-1] if found else None

    @property
    def key(self) -> str:
        """What bulk results are keyed by: the finality flow's run id, else the row's, else the id."""
        flow = self.finality_flow
        if flow is not None:
            return flow.flow_id
        if self.stored is not None and self.stored.state_machine_run_id:
            return self.stored.state_machine_run_id
        return str(self.tx_id)

    @property
    def started_at(self) -> datetime | None:
        """When its finality started here: the finality flow's start, else when the row was written."""
        flow = self.finality_flow
        if flow is not None:
            return flow.started_at
        return None if self.stored is None else self.stored.timestamp

    def age(self, now: datetime) -> timedelta | None:
        """How long it has been IN_FLIGHT here (since its row was written so); for one not IN_FLIGHT
        (an issuance whose distribution stopped), since its finality started here; None if unknown."""
        if self.stored is not None and self.stored.status is TransactionStatus.IN_FLIGHT:
            since: datetime | None = self.stored.timestamp
        else:
            since = self.started_at
        return None if since is None else max(timedelta(0), now - since)

    @property
    def counterparties(self) -> frozenset[X500Name]:
        """The other parties of its finality as known here: the peers, or the initiator."""
        if self.peers is not None:
            return self.peers
        return frozenset() if self.initiator is None else frozenset({self.initiator})

    def matches(self, query: FlowRecoveryQuery, now: datetime | None = None) -> bool:
        """Every criterion of query; its ages are measured at now (needed when it has any)."""
        if query.min_age is not None or query.max_age is not None:
            if now is None:
                raise FlowRecoveryException("a FlowRecoveryQuery by age needs the time to measure it at")
            if not query.admits_age(self.age(now)):
                return False
        if query.timeframe is not None:
            start = self.started_at
            if start is None or not query.timeframe.contains(start):
                return False
        initiators = query.initiators
        if initiators is not None and self.initiator not in initiators:
            return False
        return query.counter_parties is None or bool(self.counterparties & set(query.counter_parties))


class FinalityQueries:
    """Reads of the recovery metadata and the finality flows of one node."""

    def __init__(
        self,
        me: X500Name,
        transactions: TransactionReader,
        distribution: DistributionRecords,
        checkpoints: Checkpoints,
    ) -> None:
        self.me = me
        self.transactions = transactions
        self.distribution = distribution
        self.checkpoints = checkpoints

    def flows_of(self, tx_id: SecureHash) -> tuple[FlowCheckpoint, ...]:
        """Every finality flow (and recovery flow) of the transaction here, oldest first."""
        return tuple(
            cp for cp in self.checkpoints.iter_checkpoints(tx_id=tx_id) if cp.flow_name in FINALITY_FLOWS
        )

    def metadata(self, tx_id: SecureHash) -> FinalityMetadata:
        stored = self.transactions.get_stored(tx_id)
        flows = self.flows_of(tx_id)
        received = self.distribution.receiver_records(tx_id)
        if received:
            return FinalityMetadata(tx_id, stored, PEER, received[0].sender, None, flows)
        sent = self.distribution.sender_records(tx_id)
        ours = any(f.flow_name == FINALITY_FLOW for f in flows)
        # IN_FLIGHT without records: only an initiator without receivers (an exit) leaves that.
        alone = stored is not None and stored.status is TransactionStatus.IN_FLIGHT
        if sent or ours or alone:
            return FinalityMetadata(tx_id, stored, INITIATOR, self.me, frozenset(r.peer for r in sent), flows)
        receiving = [f for f in flows if f.flow_name == RECEIVE_FLOW and f.counterparties]
        if receiving:  # a receiver whose flow stopped before it recorded anything
            return FinalityMetadata(tx_id, None, PEER, receiving[-1].counterparties[0], None, flows)
        return FinalityMetadata(tx_id, None, None, None, None, flows)

    def get_flow_transaction(self, flow_id: str) -> FlowTransactionInfo | None:
        """The transaction of that flow, as recorded here; None when it recorded none."""
        checkpoint = self.checkpoints.get_checkpoint(flow_id)
        if checkpoint is None or checkpoint.tx_id is None:
            return None
        return self._info(self.metadata(checkpoint.tx_id), flow_id)

    def get_flow_transaction_by_txn_id(self, tx_id: SecureHash) -> FlowTransactionInfo | None:
        """The transaction as recorded here; None when it is not."""
        meta = self.metadata(tx_id)
        flow = meta.finality_flow
        run_id = None if meta.stored is None else meta.stored.state_machine_run_id
        return self._info(meta, run_id or (None if flow is None else flow.flow_id))

    def _info(self, meta: FinalityMetadata, run_id: str | None) -> FlowTransactionInfo | None:
        if meta.stored is None:
            return None
        return FlowTransactionInfo(
            state_machine_run_id=run_id,
            tx_id=meta.tx_id,
            status=meta.stored.status,
            timestamp=meta.stored.timestamp,
            initiator=meta.initiator,
            peers=meta.peers if meta.role == INITIATOR else None,
        )

    def candidates(self) -> list[FinalityMetadata]:
        """What recoverAllFinalityFlows looks at, oldest first: every IN_FLIGHT transaction here, and
        every issuance whose FinalityFlow stopped before all its receivers had it (an issuance is
        VERIFIED from its first step: IN_FLIGHT never marks it)."""
        found: dict[SecureHash, FinalityMetadata] = {}
        for stored in self.transactions.iter_transactions(status=TransactionStatus.IN_FLIGHT):
            found[stored.stx.id] = self.metadata(stored.stx.id)
        for cp in self._stopped_issuances():
            assert cp.tx_id is not None
            found.setdefault(cp.tx_id, self.metadata(cp.tx_id))
        return sorted(found.values(), key=lambda m: (m.started_at is None, m.started_at, str(m.tx_id)))

    def _stopped_issuances(self) -> Iterable[FlowCheckpoint]:
        for cp in self.checkpoints.iter_checkpoints(flow_name=FINALITY_FLOW):
            # AFTER_RECORD: recorded (VERIFIED, an issuance) but not yet acknowledged by every receiver.
            if cp.progress_step != "AFTER_RECORD" or cp.tx_id is None or cp.status is FlowStatus.COMPLETED:
                continue
            stored = self.transactions.get_stored(cp.tx_id)
            if stored is None or stored.status is not TransactionStatus.VERIFIED:
                continue
            recovered = any(
                f.flow_name == RECOVERY_FLOW and f.status is FlowStatus.COMPLETED
                for f in self.flows_of(cp.tx_id)
            )
            if not recovered:  # a recovery that completed distributed it
                yield cp

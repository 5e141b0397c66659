"""What monitoring reads of Ledger Recovery: the LedgerRecovery bean's attributes, for /metrics
(mbeans.prometheus), the dashboards and the alerts (docs/ledger-recovery.md, "Monitoring").

    Pending                    rows of node_recovery_missing still PENDING, every peer
    Recovered                  rows RECOVERED, every peer (only ever grows: a counter)
    Unrecoverable              rows UNRECOVERABLE, every peer
    RunningFlows               LedgerRecoveryFlows RUNNABLE now
    RatePerSecond              rows that left PENDING (recovered or given up) per second, last minute
    EstimatedSecondsRemaining  Pending / RatePerSecond; 0 with nothing pending; null without a rate
    LastProgressTime           epoch ms of the latest change to a row (found, recovered, given up)
    PeerProgress               the same per peer: peer, pending, recovered, unrecoverable,
                               ratePerSecond, estimatedSecondsRemaining, lastProgressTimestampSeconds

A row is one transaction missing here as one peer's record of one type showed it (agent.ports.recovery):
the counts are of rows, per peer. Each read is one aggregate query of node_recovery_missing
(RecoveryLog.progress_since) and, for RunningFlows, one of the checkpoints of LedgerRecoveryFlow.

The bean `ledgeragent:type=LedgerRecovery` is shared: when agent.management.beans registers it (with
the catalogue's Ledger Recovery operations) these attributes are added to it; otherwise it is
registered here with the attributes alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock, to_epoch_ms
from agent.flows.checkpoints import FlowStatus
from agent.ports.checkpoints import Checkpoints
from agent.ports.recovery import PENDING, RECOVERED, UNRECOVERABLE, RecoveryLog
from agent.recovery.flow import LEDGER_RECOVERY_FLOW
from mbeans.errors import InstanceNotFoundException
from mbeans.model import JavaType, MBean
from mbeans.names import LEDGER_RECOVERY
from mbeans.registry import MBeanRegistry

RATE_WINDOW = timedelta(minutes=1)


@dataclass(frozen=True)
class PeerFigures:
    """One peer's progress, as the bean shows it."""

    peer: str
    pending: int
    recovered: int
    unrecoverable: int
    rate_per_second: float  # rows that left PENDING per second over RATE_WINDOW
    last_progress: datetime | None

    @property
    def estimated_seconds_remaining(self) -> float | None:
        return _remaining(self.pending, self.rate_per_second)

    def as_dict(self) -> dict[str, Any]:
        remaining = self.estimated_seconds_remaining
        return {
            "peer": self.peer,
            "pending": self.pending,
            "recovered": self.recovered,
            "unrecoverable": self.unrecoverable,
            "ratePerSecond": round(self.rate_per_second, 3),
            "estimatedSecondsRemaining": None if remaining is None else round(remaining, 3),
            "lastProgressTimestampSeconds": (
                None if self.last_progress is None else to_epoch_ms(self.last_progress) / 1000
            ),
        }


def _remaining(pending: int, rate: float) -> float | None:
    if pending == 0:
        return 0.0
    return pending / rate if rate > 0 else None


def read_progress(log: RecoveryLog, now: datetime, window: timedelta = RATE_WINDOW) -> list[PeerFigures]:
    """Every peer with rows in node_recovery_missing, by name."""
    figures = []
    for peer, p in sorted(log.progress_since(now - window).items()):
        resolved = p.changed_since.get(RECOVERED, 0) + p.changed_since.get(UNRECOVERABLE, 0)
        figures.append(
            PeerFigures(
                peer=peer,
                pending=p.counts.get(PENDING, 0),
                recovered=p.counts.get(RECOVERED, 0),
                unrecoverable=p.counts.get(UNRECOVERABLE, 0),
                rate_per_second=resolved / window.total_seconds(),
                last_progress=p.last_change,
            )
        )
    return figures


def running_flows(checkpoints: Checkpoints) -> int:
    """LedgerRecoveryFlows RUNNABLE now (a handful at most: the rows read are few)."""
    return sum(1 for _ in checkpoints.iter_checkpoints(FlowStatus.RUNNABLE, flow_name=LEDGER_RECOVERY_FLOW))


def add_progress_attributes(bean: MBean, log: RecoveryLog, checkpoints: Checkpoints, clock: Clock) -> MBean:
    """bean, with the attributes above read from log and checkpoints at clock's time."""

    def figures() -> list[PeerFigures]:
        return read_progress(log, clock.now())

    def total(pick: Callable[[PeerFigures], int]) -> Callable[[], int]:
        return lambda: sum(pick(f) for f in figures())

    def rate() -> float:
        return round(sum(f.rate_per_second for f in figures()), 3)

    def remaining() -> float | None:
        found = figures()
        left = _remaining(sum(f.pending for f in found), sum(f.rate_per_second for f in found))
        return None if left is None else round(left, 3)

    def last_progress() -> int | None:
        times = [f.last_progress for f in figures() if f.last_progress is not None]
        return to_epoch_ms(max(times)) if times else None

    bean.attribute(
        "Pending",
        JavaType.LONG,
        "Missing transactions (rows: one per peer and record) still PENDING recovery",
        total(lambda f: f.pending),
    )
    bean.attribute(
        "Recovered", JavaType.LONG, "Missing transactions (rows) recovered", total(lambda f: f.recovered)
    )
    bean.attribute(
        "Unrecoverable",
        JavaType.LONG,
        "Missing transactions (rows) found UNRECOVERABLE (no peer supplied them; see failure_cause)",
        total(lambda f: f.unrecoverable),
    )
    bean.attribute(
        "RunningFlows", JavaType.INT, "LedgerRecoveryFlows RUNNABLE now", lambda: running_flows(checkpoints)
    )
    bean.attribute(
        "RatePerSecond",
        JavaType.DOUBLE,
        "Rows that left PENDING (recovered or given up) per second over the last minute",
        rate,
    )
    bean.attribute(
        "EstimatedSecondsRemaining",
        JavaType.DOUBLE,
        "Pending / RatePerSecond: 0 with nothing pending, null while nothing moved in the last minute",
        remaining,
    )
    bean.attribute(
        "LastProgressTime",
        JavaType.LONG,
        "Epoch ms of the latest change to a missing-transaction row (found, recovered or given up); "
        "null without rows",
        last_progress,
    )
    bean.attribute(
        "PeerProgress",
        JavaType.LIST,
        "Per peer: peer, pending, recovered, unrecoverable, ratePerSecond, estimatedSecondsRemaining, "
        "lastProgressTimestampSeconds",
        lambda: [f.as_dict() for f in figures()],
    )
    return bean


def add_ledger_recovery_monitoring(
    registry: MBeanRegistry, log: RecoveryLog, checkpoints: Checkpoints, clock: Clock
) -> MBean:
    """The LedgerRecovery bean with the attributes above: added to the registered one, or registered."""
    try:
        bean = registry.get(LEDGER_RECOVERY)
    except InstanceNotFoundException:
        bean = MBean(LEDGER_RECOVERY, "Ledger Recovery: its progress per peer", "ledgeragent.LedgerRecovery")
        registry.register(bean)
    return add_progress_attributes(bean, log, checkpoints, clock)

"""How long flows take, start to end, by flow name and how they ended: a histogram kept in memory.

A status listener of the engine (FlowEngine.on_status): each flow that reaches a terminal status
(COMPLETED, FAILED, KILLED) adds the time from its checkpoint's start to that status, so a flow
resumed after a restart counts the time the node was down too (what an operator waits for).
Reconciliations (ReconcileWithPartyFlow), recoveries (LedgerRecoveryFlow) and finality (FinalityFlow,
ReceiveFinalityFlow) are flows like the others. The management plane reads snapshot() (the Flows
MBean's FlowDurations, Prometheus' ledgeragent_flow_duration_seconds); counts start at 0 with the
agent, as a Prometheus counter does.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus

# Seconds: a notarised payment takes tens of ms; a recovery of 100,000 transactions several minutes;
# a flow the hospital retried or an operator paused, hours.
BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
_ENDS = (FlowStatus.COMPLETED, FlowStatus.FAILED, FlowStatus.KILLED)


@dataclass
class _Series:
    buckets: list[int] = field(default_factory=lambda: [0] * len(BUCKETS))
    total: float = 0.0
    count: int = 0


class FlowDurations:
    """Observed durations of ended flows; thread-safe (flows end on many threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[str, str], _Series] = {}

    def on_status(self, checkpoint: FlowCheckpoint) -> None:
        if checkpoint.status not in _ENDS:
            return
        seconds = max(0.0, (checkpoint.updated_at - checkpoint.started_at).total_seconds())
        self.observe(checkpoint.flow_name, checkpoint.status.name, seconds)

    def observe(self, flow_name: str, outcome: str, seconds: float) -> None:
        with self._lock:
            series = self._series.setdefault((flow_name, outcome), _Series())
            index = bisect.bisect_left(BUCKETS, seconds)
            if index < len(BUCKETS):
                series.buckets[index] += 1
            series.total += seconds
            series.count += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """One entry per (flow, outcome) seen: cumulative bucket counts by upper bound, sum, count."""
        with self._lock:
            result = []
            for (flow, outcome), series in sorted(self._series.items()):
                cumulative, running = {}, 0
                for bound, n in zip(BUCKETS, series.buckets, strict=True):
                    running += n
                    cumulative[repr(float(bound))] = running
                result.append(
                    {
                        "flow": flow,
                        "outcome": outcome,
                        "buckets": cumulative,
                        "sum": series.total,
                        "count": series.count,
                    }
                )
            return result

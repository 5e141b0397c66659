"""agent.flows.durations: the histogram of flows' durations, fed by the engine's status listener."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.durations import BUCKETS, FlowDurations

START = datetime(2026, 12, 3, tzinfo=UTC)


def checkpoint(name: str, status: FlowStatus, seconds: float) -> FlowCheckpoint:
    return FlowCheckpoint("f", name, status, START, START + timedelta(seconds=seconds))


def test_ended_flows_are_counted_by_name_and_outcome_in_cumulative_buckets() -> None:
    durations = FlowDurations()
    for status, seconds in (
        (FlowStatus.RUNNABLE, 1.0),  # not ended: not counted
        (FlowStatus.HOSPITALIZED, 2.0),
        (FlowStatus.COMPLETED, 0.03),
        (FlowStatus.COMPLETED, 0.3),
        (FlowStatus.COMPLETED, 100_000.0),  # beyond the last bucket: only in +Inf (the count)
        (FlowStatus.FAILED, 7.0),
    ):
        durations.on_status(checkpoint("FinalityFlow", status, seconds))
    durations.on_status(checkpoint("LedgerRecoveryFlow", FlowStatus.KILLED, 60.0))
    series = {(s["flow"], s["outcome"]): s for s in durations.snapshot()}
    assert set(series) == {
        ("FinalityFlow", "COMPLETED"),
        ("FinalityFlow", "FAILED"),
        ("LedgerRecoveryFlow", "KILLED"),
    }
    completed = series["FinalityFlow", "COMPLETED"]
    assert completed["count"] == 3 and completed["sum"] == 0.03 + 0.3 + 100_000.0
    assert list(completed["buckets"]) == [repr(float(b)) for b in BUCKETS]
    assert completed["buckets"]["0.05"] == 1 and completed["buckets"]["0.5"] == 2
    assert completed["buckets"][repr(float(BUCKETS[-1]))] == 2
    # A bucket's bound is inclusive (Prometheus' le): 60 s is in the 60 bucket.
    assert series["LedgerRecoveryFlow", "KILLED"]["buckets"]["60.0"] == 1
    assert series["LedgerRecoveryFlow", "KILLED"]["buckets"]["30.0"] == 0


def test_a_clock_that_went_back_counts_zero_not_a_negative_duration() -> None:
    durations = FlowDurations()
    durations.on_status(checkpoint("FinalityFlow", FlowStatus.COMPLETED, -5.0))
    (only,) = durations.snapshot()
    assert only["sum"] == 0.0 and only["buckets"]["0.05"] == 1

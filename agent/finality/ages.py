"""How long this node's transactions have been IN_FLIGHT: what monitoring reads at each scrape.

A transaction's age is the time since its row was written IN_FLIGHT (the first phase of two-phase
finality; finalising or undoing it takes the row out of IN_FLIGHT). One aggregate query of the store
(TransactionReader.status_times) gives the count, the oldest and a count per age bucket, so a scrape
costs the same with one IN_FLIGHT transaction or a million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from agent.ledger.vault import TransactionStatus
from agent.ports.transactions import TransactionReader

# The buckets' labels and upper bounds: at most a minute old, ten minutes, an hour, a day; "+Inf" is all.
AGE_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("1m", timedelta(minutes=1)),
    ("10m", timedelta(minutes=10)),
    ("1h", timedelta(hours=1)),
    ("1d", timedelta(days=1)),
)
ALL_AGES = "+Inf"


@dataclass(frozen=True)
class InFlightAges:
    """The IN_FLIGHT transactions here: how many, the oldest's age, and how many at most so old."""

    count: int
    oldest_age_s: float  # 0 when there are none
    by_age: dict[str, int]  # cumulative, like a histogram's buckets: label -> count at most that old

    @classmethod
    def read(cls, transactions: TransactionReader, now: datetime) -> InFlightAges:
        times = transactions.status_times(
            TransactionStatus.IN_FLIGHT, [now - bound for _, bound in AGE_BUCKETS]
        )
        # A row stamped after now (a clock stepped back) counts as new, never as a negative age.
        oldest = 0.0 if times.oldest is None else max(0.0, (now - times.oldest).total_seconds())
        by_age = {label: count for (label, _), count in zip(AGE_BUCKETS, times.since, strict=True)}
        by_age[ALL_AGES] = times.count
        return cls(times.count, oldest, by_age)

"""FlowRecoveryQuery's ages: both ends included, unknown ages left out, bad bounds refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.errors import FlowRecoveryException
from agent.finality.queries import FlowRecoveryQuery

MINUTE = timedelta(minutes=1)


def test_ages_are_bounded_at_both_ends_inclusive() -> None:
    query = FlowRecoveryQuery(min_age=10 * MINUTE, max_age=60 * MINUTE)
    admitted = [m for m in (0, 9, 10, 30, 60, 61) if query.admits_age(m * MINUTE)]
    assert admitted == [10, 30, 60]
    assert not query.admits_age(None)
    assert FlowRecoveryQuery(min_age=MINUTE).admits_age(timedelta(days=400))
    assert FlowRecoveryQuery(initiated_by=()).admits_age(None)  # no age criterion: any age


@pytest.mark.parametrize(
    ("min_age", "max_age", "message"),
    [
        (-MINUTE, None, "minAge must not be negative"),
        (None, -MINUTE, "maxAge must not be negative"),
        (2 * MINUTE, MINUTE, "must not exceed its maxAge"),
    ],
)
def test_bad_bounds_are_refused(min_age: timedelta | None, max_age: timedelta | None, message: str) -> None:
    with pytest.raises(FlowRecoveryException, match=message):
        FlowRecoveryQuery(min_age=min_age, max_age=max_age)

"""RetryPolicy: back-off bounds (property-tested) and which failures are retried."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import NotaryRejectionError, TransientTransportError
from agent.p2p.retry import RetryPolicy

delays = st.floats(0, 60, allow_nan=False)


@given(
    max_attempts=st.integers(1, 2000),
    base_delay=delays,
    max_delay=delays,
    jitter=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_delays_are_bounded_and_counted(
    max_attempts: int, base_delay: float, max_delay: float, jitter: float, seed: int
) -> None:
    policy = RetryPolicy(max_attempts, base_delay, max_delay, jitter, rng=random.Random(seed))
    waits = policy.delays()
    assert len(waits) == max_attempts - 1
    assert all(0 <= wait <= max_delay for wait in waits)
    # Jitter only ever shortens a wait, never by more than its share.
    ceilings = [float(min(Fraction(base_delay) * 2**k, Fraction(max_delay))) for k in range(len(waits))]
    assert all(
        ceiling * (1 - jitter) - 1e-9 <= wait <= ceiling
        for wait, ceiling in zip(waits, ceilings, strict=True)
    )


def test_exponential_without_jitter() -> None:
    assert RetryPolicy(6, 0.2, 1.0, jitter=0).delays() == [0.2, 0.4, 0.8, 1.0, 1.0]


def transient() -> None:
    raise TransientTransportError("peer:1", "connection refused")


def test_call_retries_transient_failures_then_reraises_the_last() -> None:
    slept: list[float] = []
    calls: list[int] = []

    def fn() -> None:
        calls.append(1)
        transient()

    with pytest.raises(TransientTransportError):
        RetryPolicy(3, 0.1, 1.0, jitter=0, sleep=slept.append).call(fn)
    assert (len(calls), slept) == (3, [0.1, 0.2])


def test_call_returns_once_an_attempt_succeeds() -> None:
    failures = [transient, transient]
    told: list[int] = []

    def attempt() -> str:
        if failures:
            failures.pop()()
        return "done"

    result = RetryPolicy(5, sleep=lambda _: None).call(
        attempt, on_retry=lambda number, error, delay: told.append(number)
    )
    assert (result, told) == ("done", [1, 2])


def test_other_failures_are_not_retried() -> None:
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise NotaryRejectionError("AB", "no")

    with pytest.raises(NotaryRejectionError):
        RetryPolicy(5, sleep=lambda _: None).call(refuse)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"max_delay": -0.1}, {"jitter": 1.5}, {"jitter": -0.1}],
)
def test_bad_settings_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]

"""RefusalLimiter: the first few refusals of a kind from a source per interval, then one count.

Time is a ManualClock: the interval passes when the test says so.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from agent.clock import ManualClock
from agent.logs.refusals import OTHER_SOURCES, RefusalLimiter, refusal


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def logger() -> logging.Logger:
    logger = logging.getLogger("tests.logs.refusals")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers.clear()
    logger.propagate = True


def limited(
    logger: logging.Logger, clock: ManualClock, limit: int = 3, **kwargs: int
) -> tuple[Collected, RefusalLimiter]:
    handler = Collected()
    limiter = RefusalLimiter(handler.handle, limit=limit, interval_s=60, clock=clock, **kwargs)
    handler.addFilter(limiter)
    logger.addHandler(handler)
    return handler, limiter


def refuse(
    logger: logging.Logger, n: int, kind: str = "MalformedMessageError", source: str = "10.0.0.1"
) -> None:
    for i in range(n):
        logger.warning("refused a message: bad bytes %d", i, extra=refusal(kind, source))


def test_the_first_k_pass_then_one_summary_when_the_interval_is_over(
    logger: logging.Logger, clock: ManualClock
) -> None:
    handler, _ = limited(logger, clock)
    refuse(logger, 10)
    assert handler.lines == [f"refused a message: bad bytes {i}" for i in range(3)]
    clock.advance(timedelta(seconds=59))
    refuse(logger, 1)
    assert len(handler.lines) == 3  # still the same interval: counted, not written
    clock.advance(timedelta(seconds=1))
    refuse(logger, 1)
    summary, first_of_next = handler.lines[3:]
    assert summary.startswith("8 more like this suppressed (MalformedMessageError from 10.0.0.1, within 60 s")
    assert handler.records[3].levelno == logging.WARNING
    assert handler.records[3].name == logger.name
    assert first_of_next == "refused a message: bad bytes 0"  # a new interval: let through again


def test_kinds_and_sources_are_counted_apart(logger: logging.Logger, clock: ManualClock) -> None:
    handler, _ = limited(logger, clock, limit=2)
    refuse(logger, 5, source="10.0.0.1")
    refuse(logger, 5, source="10.0.0.2")
    refuse(logger, 5, kind="UnknownSenderError", source="10.0.0.1")
    assert len(handler.lines) == 6


def test_other_records_pass_and_carry_the_summary_out(logger: logging.Logger, clock: ManualClock) -> None:
    handler, _ = limited(logger, clock)
    refuse(logger, 5)
    for i in range(5):
        logger.info("not a refusal %d", i)
    assert len(handler.lines) == 8
    clock.advance(timedelta(minutes=2))
    logger.info("the attack stopped")
    assert handler.lines[-2].startswith("2 more like this suppressed")
    assert handler.lines[-1] == "the attack stopped"


def test_flush_writes_what_is_counted_and_nothing_twice(logger: logging.Logger, clock: ManualClock) -> None:
    handler, limiter = limited(logger, clock)
    refuse(logger, 7)
    clock.advance(timedelta(seconds=10))
    limiter.flush()
    assert handler.lines[-1].startswith(
        "4 more like this suppressed (MalformedMessageError from 10.0.0.1, within 10 s"
    )
    limiter.flush()
    clock.advance(timedelta(minutes=5))
    logger.info("later")
    assert [line for line in handler.lines if "suppressed" in line] == [handler.lines[3]]


def test_an_interval_without_suppression_writes_no_summary(
    logger: logging.Logger, clock: ManualClock
) -> None:
    handler, _ = limited(logger, clock)
    refuse(logger, 3)
    clock.advance(timedelta(minutes=2))
    refuse(logger, 1)
    assert not any("suppressed" in line for line in handler.lines)


def test_sources_are_bounded(logger: logging.Logger, clock: ManualClock) -> None:
    handler, _ = limited(logger, clock, limit=1, max_sources=4)
    for i in range(100):
        refuse(logger, 1, source=f"10.0.0.{i}")
    # Four sources counted apart, then all the others share one window.
    assert len(handler.lines) == 5
    clock.advance(timedelta(minutes=1))
    logger.info("tick")
    assert handler.lines[-2].startswith(
        f"95 more like this suppressed (MalformedMessageError from {OTHER_SOURCES}"
    )

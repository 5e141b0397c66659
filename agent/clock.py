"""The injectable clock: all time the agent reads goes through one of these."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from agent.errors import SerializationError


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to, for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def sleep(self, seconds: float) -> None:
        """A wait in simulated time: the clock moves on at once, so back-off and schedules run fast."""
        self.advance(timedelta(seconds=seconds))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch, the unit of every timestamp the agent serialises."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def from_epoch_ms(millis: int, field: str = "timestamp") -> datetime:
    """The moment of a serialised timestamp; SerializationError naming field when no datetime holds it
    (a peer's message may carry any integer: years past 9999 gave an OverflowError, answered 500)."""
    try:
        return _EPOCH + timedelta(milliseconds=millis)
    except (OverflowError, ValueError, TypeError):
        raise SerializationError(field, f"{millis!r} ms since the epoch is out of range") from None


def pause(clock: Clock, seconds: float, cancelled: threading.Event) -> bool:
    """Wait seconds on clock's time (a ManualClock just moves on); True if cancelled meanwhile.

    Waits that belong to the domain (back-off, schedules) go through here, so tests of them run in
    simulated time.
    """
    sleep = getattr(clock, "sleep", None)
    if sleep is not None:
        sleep(seconds)
        return cancelled.is_set()
    return cancelled.wait(max(0.0, seconds))

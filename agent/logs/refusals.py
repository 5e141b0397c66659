"""Refusals rate-limited in the log: the first few of a kind from a source per interval, then a count.

A client that sends random bytes, or a member that repeats a refused request, would otherwise write
one line a request (56 KB/s from one client, before it authenticates). A log call marks a refusal
with `extra=refusal(kind, source)`; RefusalLimiter, a filter on the agent's log handler, lets through
the first `limit` records of each (logger, kind, source) per `interval_s`, counts the rest, and once
the interval is over writes one WARNING: "N more like this suppressed". The summary goes out with the
next record the handler sees, of any kind, or when the log is closed (RefusalLimiter.flush).

Other records pass untouched. Sources are bounded (max_sources): past that, new ones share one count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.clock import Clock, SystemClock

REFUSAL = "refusal"  # a record's attribute: the kind of refusal (the error's class name)
SOURCE = "source"  # a record's attribute: where it came from (the peer's address, or its name)
UNKNOWN_SOURCE = "an unknown source"
OTHER_SOURCES = "other sources"
DEFAULT_LIMIT = 5
DEFAULT_INTERVAL_S = 60.0
DEFAULT_MAX_SOURCES = 1024

Key = tuple[str, str, str]  # logger, kind, source


def refusal(kind: str, source: str | None) -> dict[str, str]:
    """The `extra` of a log call that reports a refusal, for RefusalLimiter."""
    return {REFUSAL: kind, SOURCE: source or UNKNOWN_SOURCE}


@dataclass
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0


class RefusalLimiter(logging.Filter):
    """A logging filter: at most `limit` refusals of a kind from a source per interval, then a count.

    sink receives the summary records (the handler's `handle`, so that they pass this filter and are
    formatted like any other record).
    """

    def __init__(
        self,
        sink: Callable[[logging.LogRecord], object],
        *,
        limit: int = DEFAULT_LIMIT,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Clock | None = None,
        max_sources: int = DEFAULT_MAX_SOURCES,
    ) -> None:
        super().__init__()
        if limit < 1 or interval_s <= 0 or max_sources < 1:
            raise ValueError(f"limit {limit}, interval {interval_s} s, max_sources {max_sources}")
        self.sink = sink
        self.limit = limit
        self.interval_s = interval_s
        self.clock = clock or SystemClock()
        self.max_sources = max_sources
        # Insertion order is start order: the oldest windows are first.
        self._windows: dict[Key, _Window] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = getattr(record, REFUSAL, None)
        now = self.clock.now().timestamp()
        with self._lock:
            summaries = self._expired(now)
            passes = True
            if kind is not None:
                key = (record.name, str(kind), str(getattr(record, SOURCE, UNKNOWN_SOURCE)))
                if key not in self._windows and len(self._windows) >= self.max_sources:
                    key = (key[0], key[1], OTHER_SOURCES)
                window = self._windows.get(key)
                if window is None:
                    window = self._windows[key] = _Window(now)
                if window.passed < self.limit:
                    window.passed += 1
                else:
                    window.suppressed += 1
                    passes = False
        for summary in summaries:  # outside the lock: the sink comes back through filter()
            self.sink(summary)
        return passes

    def flush(self) -> None:
        """Write the counts of every window now, finished or not (when the log is closed)."""
        with self._lock:
            summaries = self._expired(self.clock.now().timestamp(), everything=True)
        for summary in summaries:
            self.sink(summary)

    def _expired(self, now: float, *, everything: bool = False) -> list[logging.LogRecord]:
        summaries = []
        for key, window in list(self._windows.items()):
            # A clock set back ends the window too, rather than holding it open.
            if not everything and window.start <= now < window.start + self.interval_s:
                break
            del self._windows[key]
            if window.suppressed:
                summaries.append(self._summary(key, window, now))
        return summaries

    def _summary(self, key: Key, window: _Window, now: float) -> logging.LogRecord:
        logger, kind, source = key
        seconds = max(0.0, min(now, window.start + self.interval_s) - window.start)
        return logging.LogRecord(
            logger,
            logging.WARNING,
            __file__,
            0,
            "%d more like this suppressed (%s from %s, within %.0f s; the first %d were logged)",
            (window.suppressed, kind, source, seconds, window.passed),
            None,
        )

"""Bounded, jittered exponential back-off for transient failures.

Why jitter: when a peer restarts, every node that was talking to it retries at once; spreading the
retries stops them arriving in lock-step. Why a bound: a peer that stays down must surface as an error
the caller can act on (PeerUnreachableError), not as a request that hangs.

The sleep and the random source are injected, so tests run in simulated time and can read the delays.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from agent.errors import TransientTransportError

T = TypeVar("T")


class RetryPolicy:
    """How often and how long to wait between attempts; call(fn) applies it."""

    def __init__(
        self,
        max_attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 5.0,
        jitter: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if base_delay < 0 or max_delay < 0:
            raise ValueError(f"delays must not be negative, got base {base_delay} and max {max_delay}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self._sleep = sleep
        self._rng = rng or random.Random()

    def delays(self) -> list[float]:
        """The waits before attempts 2..max_attempts: base * 2^k, capped, each cut by up to jitter of it."""
        delays: list[float] = []
        ceiling = min(self.base_delay, self.max_delay)
        for _ in range(self.max_attempts - 1):
            # Doubling a capped value never overflows, however many attempts are allowed.
            delays.append(ceiling * (1 - self.jitter * self._rng.random()))
            ceiling = min(ceiling * 2, self.max_delay)
        return delays

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_on: tuple[type[BaseException], ...] = (TransientTransportError,),
        retry_if: Callable[[BaseException], bool] | None = None,
        on_retry: Callable[[int, BaseException, float], None] | None = None,
    ) -> T:
        """fn's result; a retry_on failure is retried after the next delay, the last one re-raised.

        retry_if, when given, narrows retry_on: a failure it says no to is raised at once.
        on_retry(attempt, error, delay) is told of each failure that will be retried.
        """
        delays = self.delays()
        for attempt, delay in enumerate(delays, start=1):
            try:
                return fn()
            except retry_on as exc:
                if retry_if is not None and not retry_if(exc):
                    raise
                if on_retry is not None:
                    on_retry(attempt, exc, delay)
                self._sleep(delay)
        return fn()

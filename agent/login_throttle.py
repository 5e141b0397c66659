"""Failed management logins, per client address: a back-off after too many, and their log lines.

node.conf (all optional):

managementLogins {
    maxFailures = 5       # failed logins from one address within failureWindow that back it off (1 to 1000)
    failureWindow = 1m    # (1s to 1d)
    backOff = 5m          # how long every request from that address is then refused, 429 (1s to 1d)
}

While an address is backed off, its requests are refused before any password is checked (no PBKDF2),
a correct password included: otherwise the cheap answer would tell a guesser which guess was right.
Failures age out of the window; a success does not forget them (a read-only user could otherwise
interleave its own good logins with guesses at the operator's password).

The log (`ledger_agent.management.logins`, WARNING) names the address and the user names tried, never
a password, and summarises: one line for the first failure from an address in a window, one when it
is backed off (how many failures, which users), one for the requests refused during its back-off;
failures in between are counted into the next line for that address. Addresses are the TCP peer's
(REMOTE_ADDR): no proxy header is trusted, since a client could write any address in it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock
from agent.errors import ConfigurationError, TooManyLoginAttemptsError
from agent.hospital.policy import parse_duration

log = logging.getLogger("ledger_agent.management.logins")

SECTION = "managementLogins"
LOGIN_THROTTLE_KEYS = tuple(f"{SECTION}.{k}" for k in ("maxFailures", "failureWindow", "backOff"))
MAX_FAILURES_RANGE = (1, 1000)
DURATION_RANGE_S = (1.0, 86400.0)
MAX_NAMED_USERS = 10  # user names a summary line lists; the rest are counted
MAX_NAME_CHARS = 64  # of a user name in a log line (a client may send any text as one)
MAX_ADDRESSES = 10_000  # addresses remembered; past that the least recently seen are forgotten


@dataclass(frozen=True, kw_only=True)
class LoginThrottleSettings:
    max_failures: int = 5
    failure_window_s: float = 60.0
    back_off_s: float = 300.0


def parse_login_throttle_settings(flat: Mapping[str, Any]) -> LoginThrottleSettings:
    """node.conf's managementLogins keys; an error names the key and the range allowed."""
    default = LoginThrottleSettings()
    key = f"{SECTION}.maxFailures"
    count = flat.get(key, default.max_failures)
    low, high = MAX_FAILURES_RANGE
    if not isinstance(count, int) or isinstance(count, bool) or not low <= count <= high:
        raise ConfigurationError(key, count, f"allowed: a whole number from {low} to {high}")
    durations = []
    for name, fallback in (("failureWindow", default.failure_window_s), ("backOff", default.back_off_s)):
        key = f"{SECTION}.{name}"
        value = flat.get(key, fallback)
        seconds = parse_duration(key, value, allow_zero=False)
        if not DURATION_RANGE_S[0] <= seconds <= DURATION_RANGE_S[1]:
            raise ConfigurationError(key, value, "allowed: a duration from 1s to 1d")
        durations.append(seconds)
    return LoginThrottleSettings(max_failures=count, failure_window_s=durations[0], back_off_s=durations[1])


@dataclass
class _Address:
    failures: deque[datetime] = field(default_factory=deque)  # within the window, oldest first
    backed_off_until: datetime | None = None
    refused: int = 0  # requests refused during the current back-off, not yet logged
    last_logged: datetime | None = None  # of the last failure line for this address
    unlogged: int = 0  # failures since that line
    users: list[str] = field(default_factory=list)  # names tried in those, at most MAX_NAMED_USERS
    tried: list[str] = field(default_factory=list)  # names tried in the window's failures, as many
    last_seen: datetime | None = None


def _name(username: str) -> str:
    return repr(username if len(username) <= MAX_NAME_CHARS else username[:MAX_NAME_CHARS] + "...")


def _names(usernames: list[str]) -> str:
    return ", ".join(_name(u) for u in usernames)


class LoginThrottle:
    """Counts failed logins per client address and backs an address off after too many."""

    def __init__(self, settings: LoginThrottleSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._window = timedelta(seconds=settings.failure_window_s)
        self._back_off = timedelta(seconds=settings.back_off_s)
        self._addresses: OrderedDict[str, _Address] = OrderedDict()  # least recently seen first
        self._lock = threading.Lock()
        self._next_sweep: datetime | None = None

    def admit(self, address: str) -> None:
        """Raise TooManyLoginAttemptsError while address is backed off (the refusal is counted for the
        log, not logged one by one); else return, and the caller checks the credentials."""
        now = self.clock.now()
        with self._lock:
            self._sweep(now)
            state = self._addresses.get(address)
            if state is None:
                return
            self._touch(address, state, now)
            until = state.backed_off_until
            if until is not None and now < until:
                state.refused += 1
                raise TooManyLoginAttemptsError(address, max(1, math.ceil((until - now).total_seconds())))
            self._end_back_off(address, state)

    def failed(self, address: str, username: str) -> bool:
        """Count a failed login from address (username as tried); True when it starts a back-off."""
        now = self.clock.now()
        with self._lock:
            state = self._addresses.get(address) or _Address()
            self._touch(address, state, now)
            self._end_back_off(address, state)
            while state.failures and now - state.failures[0] >= self._window:
                state.failures.popleft()
            if not state.failures:
                state.tried.clear()
            state.failures.append(now)
            for names in (state.users, state.tried):
                if username not in names and len(names) < MAX_NAMED_USERS:
                    names.append(username)
            state.unlogged += 1
            if len(state.failures) >= self.settings.max_failures:
                log.warning(
                    "management logins from %s backed off for %s s after %d failed within %s s "
                    "(users tried: %s)",
                    address,
                    f"{self.settings.back_off_s:g}",
                    len(state.failures),
                    f"{self.settings.failure_window_s:g}",
                    _names(state.tried),
                )
                state.backed_off_until = now + self._back_off
                state.failures.clear()
                state.tried.clear()
                self._logged(state, now)
                return True
            if state.last_logged is None or now - state.last_logged >= self._window:
                if state.unlogged == 1:
                    log.warning(
                        "failed management login from %s: user %s (bad credentials)", address, _name(username)
                    )
                else:
                    self._log_unlogged(address, state)
                self._logged(state, now)
            return False

    def backed_off(self, address: str) -> bool:
        """Whether requests from address are being refused now."""
        with self._lock:
            state = self._addresses.get(address)
            until = None if state is None else state.backed_off_until
            return until is not None and self.clock.now() < until

    @staticmethod
    def _log_unlogged(address: str, state: _Address) -> None:
        log.warning(
            "failed management logins from %s: %d since the last line (users tried: %s)",
            address,
            state.unlogged,
            _names(state.users),
        )

    @staticmethod
    def _logged(state: _Address, now: datetime) -> None:
        state.last_logged = now
        state.unlogged = 0
        state.users.clear()

    def _touch(self, address: str, state: _Address, now: datetime) -> None:
        state.last_seen = now
        self._addresses[address] = state
        self._addresses.move_to_end(address)
        while len(self._addresses) > MAX_ADDRESSES:
            oldest, forgotten = self._addresses.popitem(last=False)
            self._flush(oldest, forgotten)

    def _end_back_off(self, address: str, state: _Address) -> None:
        """Log the requests refused during address's back-off, once it has ended."""
        until = state.backed_off_until
        if until is None or self.clock.now() < until:
            return
        if state.refused:
            log.warning(
                "management logins from %s: %d request(s) refused during its back-off, which ended at %s",
                address,
                state.refused,
                until.isoformat(),
            )
        state.backed_off_until = None
        state.refused = 0

    def _flush(self, address: str, state: _Address) -> None:
        """Log what is still counted for address: refusals of an ended back-off, unlogged failures."""
        self._end_back_off(address, state)
        if state.unlogged:
            self._log_unlogged(address, state)
            state.unlogged = 0
            state.users.clear()

    def _sweep(self, now: datetime) -> None:
        """At most once a window: log what quiet addresses still owe the log, and forget them."""
        if self._next_sweep is not None and now < self._next_sweep:
            return
        self._next_sweep = now + self._window
        for address, state in list(self._addresses.items()):
            if state.backed_off_until is not None and now < state.backed_off_until:
                continue
            if state.last_logged is not None and now - state.last_logged < self._window:
                continue  # its next failure may still be counted into a line of its own
            self._flush(address, state)
            if not any(now - t < self._window for t in state.failures):
                del self._addresses[address]

"""The LedgerSync configuration (`<cordapps>/config/ledger-sync-<version>.conf`, HOCON), as the reference gives it.

Keys, defaults and ranges are the reference's table. A missing file or key gives the default; an
unknown key, a wrong type or a value out of range is a ConfigurationError naming the key, the value
and what is allowed.

Choices where the reference is vague:

- Durations follow the reference's grammar, not HOCON's: the time part of ISO-8601 (`1H`, `3S`,
  `5H3M2S`, an optional leading `PT`), units in either case, hours then minutes then seconds, each
  at most once, whole numbers only (no fractions, no sign). Spaces are tolerated between and around
  elements (`1H 30M`, ` PT1H `) but not inside one (`1 H` is refused), nor is any other character.
  pyhocon would read `1h` as a timedelta of its own grammar (which also takes `2d`, `10 seconds`,
  and turns `1h 30m` into a string of two timedeltas), so its period parsing is switched off while
  this file is read and every duration is checked here from its text.
- `scheduledReconciliations` (ours, not the reference's): a list of `{ party = "O=...", at = "02:30" }`
  (a time of day, UTC, HH:MM) or `{ party = "O=...", every = "6H" }` (an interval, a duration above
  zero); exactly one of `at`/`every`. The same entry twice is refused; several entries for one party
  are allowed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, time, timedelta
from pathlib import Path
from typing import Any

from pyhocon import ConfigFactory, ConfigTree, config_parser
from pyhocon.exceptions import ConfigException
from pyparsing import NoMatch, ParseBaseException, ParserElement

from agent.config import flatten
from agent.errors import ConfigurationError, InvalidNameError
from agent.ledger.identity import X500Name

INT32_MAX = 2_147_483_647

# camelCase key -> (default, lowest, highest); the reference's table.
INT_KEYS: Mapping[str, tuple[int, int, int]] = {
    "maxNumberOfIbfFilterFlows": (5, 1, 15),
    "maxNumberOfParallelReconciliationRequests": (3, 1, 10),
    "maxAllowedReconciliationRequestsPerTimeWindow": (1000, 0, INT32_MAX),
    "transactionReaderPageSize": (100, 10, 10_000_000),
    "transactionReaderPoolSize": (10, 5, 1000),
}
# camelCase key -> default; every one "0s or more".
DURATION_KEYS: Mapping[str, timedelta] = {
    "maxReconciliationRetryAttemptTimeout": timedelta(hours=1),
    "timeWindowForReconciliationRequestLimit": timedelta(hours=1),
}
SCHEDULES_KEY = "scheduledReconciliations"
KNOWN_KEYS = (*INT_KEYS, *DURATION_KEYS, SCHEDULES_KEY)

DURATION_ALLOWED = (
    "allowed: a duration, the time part of ISO-8601: hours, minutes, seconds in that order, each at "
    "most once, e.g. 1H, 30M, 5H3M2S, 1H 30M or PT1H (either case; spaces only between elements)"
)
# More digits than any duration a timedelta holds (999,999,999 days is 8.6e13 s): refused as too long
# before int() (which refuses over 4,300 digits with a ValueError of its own).
_MAX_DURATION_DIGITS = 15
_TIME_OF_DAY = re.compile(r"(?P<h>[01][0-9]|2[0-3]):(?P<m>[0-5][0-9])")


def _duration_elements(text: str) -> dict[str, str] | None:
    """The digits of each unit (H, M, S) in text, or None if text is not a duration.

    One pass, each character looked at once or twice: the regex it replaces (` *(?:PT)? *(?:[0-9]+H)?
    *...`, its optional spaces side by side) backtracked polynomially, 2.4 s on 120 spaces. It accepts
    what that regex did: spaces (only ' ') anywhere between elements and around them, an optional PT,
    then at least one of <digits>H, <digits>M, <digits>S in that order, each at most once, either case.
    """
    at, end = 0, len(text)

    def spaces(at: int) -> int:
        while at < end and text[at] == " ":
            at += 1
        return at

    at = spaces(at)
    if text[at : at + 2].upper() == "PT":
        at = spaces(at + 2)
    found: dict[str, str] = {}
    units, allowed_from = "HMS", 0
    while at < end:
        digits_end = at
        while digits_end < end and text[digits_end] in "0123456789":
            digits_end += 1
        if digits_end in (at, end):  # no digits, or digits and no unit
            return None
        letter = text[digits_end].upper()  # 'ß' upper-cases to two letters: no unit
        unit = units.find(letter, allowed_from) if len(letter) == 1 else -1
        if unit < 0:
            return None
        found[units[unit]] = text[at:digits_end]
        allowed_from = unit + 1
        at = spaces(digits_end + 1)
    return found or None


def parse_duration(text: str, key: str) -> timedelta:
    """`1H`, `3S`, `5H3M2S`, `1H 30M`, `PT1H` (either case) as a timedelta; anything else names the key."""
    found = _duration_elements(text) if isinstance(text, str) else None
    if found is None:
        raise ConfigurationError(key, text, DURATION_ALLOWED)
    if any(len(digits) > _MAX_DURATION_DIGITS for digits in found.values()):
        raise ConfigurationError(key, text, f"{DURATION_ALLOWED}; this one is too long")
    hours, minutes, seconds = (int(found.get(unit, "0")) for unit in "HMS")
    try:
        return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError as exc:
        raise ConfigurationError(key, text, f"{DURATION_ALLOWED}; this one is too long") from exc


def parse_time_of_day(text: str, key: str) -> time:
    """`02:30` as 02:30 UTC."""
    match = _TIME_OF_DAY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigurationError(key, text, "allowed: a time of day, UTC, as HH:MM from 00:00 to 23:59")
    return time(int(match.group("h")), int(match.group("m")), tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class ScheduledReconciliation:
    """Reconcile with `party` every day at `at` (UTC), or every `every`; exactly one of the two."""

    party: X500Name
    at: time | None = None
    every: timedelta | None = None

    def __post_init__(self) -> None:
        if (self.at is None) == (self.every is None):
            raise ConfigurationError(SCHEDULES_KEY, self, "allowed: exactly one of at or every")
        if self.every is not None and self.every <= timedelta(0):
            raise ConfigurationError(SCHEDULES_KEY, self, "allowed: every is a duration above 0s")


@dataclass(frozen=True, kw_only=True)
class LedgerSyncConfig:
    """The LedgerSync settings; the defaults are the reference's."""

    max_number_of_ibf_filter_flows: int = INT_KEYS["maxNumberOfIbfFilterFlows"][0]
    max_number_of_parallel_reconciliation_requests: int = INT_KEYS[
        "maxNumberOfParallelReconciliationRequests"
    ][0]
    max_reconciliation_retry_attempt_timeout: timedelta = DURATION_KEYS[
        "maxReconciliationRetryAttemptTimeout"
    ]
    time_window_for_reconciliation_request_limit: timedelta = DURATION_KEYS[
        "timeWindowForReconciliationRequestLimit"
    ]
    max_allowed_reconciliation_requests_per_time_window: int = INT_KEYS[
        "maxAllowedReconciliationRequestsPerTimeWindow"
    ][0]
    transaction_reader_page_size: int = INT_KEYS["transactionReaderPageSize"][0]
    transaction_reader_pool_size: int = INT_KEYS["transactionReaderPoolSize"][0]
    scheduled_reconciliations: tuple[ScheduledReconciliation, ...] = field(default=())

    def __post_init__(self) -> None:
        # Checked here too, so a config built in code obeys the same ranges as one read from a file.
        for key, (_, low, high) in INT_KEYS.items():
            value = getattr(self, field_name(key))
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigurationError(key, value, f"allowed: an integer from {low} to {high}")
        for key in DURATION_KEYS:
            value = getattr(self, field_name(key))
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ConfigurationError(key, value, "allowed: a duration of 0s or more")
        if len(set(self.scheduled_reconciliations)) != len(self.scheduled_reconciliations):
            raise ConfigurationError(
                SCHEDULES_KEY,
                [str(s.party) for s in self.scheduled_reconciliations],
                "allowed: each entry once",
            )


def field_name(key: str) -> str:
    """maxNumberOfIbfFilterFlows -> max_number_of_ibf_filter_flows."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


_PARSE_LOCK = threading.Lock()


@contextmanager
def _without_hocon_periods() -> Iterator[None]:
    # pyhocon builds its value grammar on each parse from this module-level function; a grammar that
    # never matches leaves `1h` an unquoted string for parse_duration. Node.conf has no durations, so a
    # concurrent parse of it is unaffected.
    original = config_parser.get_period_expr

    def no_periods() -> ParserElement:
        return NoMatch()

    with _PARSE_LOCK:
        config_parser.get_period_expr = no_periods
        try:
            yield
        finally:
            config_parser.get_period_expr = original


def _read(path: Path) -> dict[str, Any]:
    try:
        with _without_hocon_periods():
            tree = ConfigFactory.parse_string(path.read_text(encoding="utf-8"), basedir=str(path.parent))
    except (ConfigException, ParseBaseException) as exc:
        raise ConfigurationError(path.name or str(path), str(path), f"must be valid HOCON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            path.name or str(path), str(path), f"must be a readable UTF-8 file: {exc}"
        ) from exc
    if not isinstance(tree, ConfigTree):
        raise ConfigurationError(
            path.name or str(path), str(path), "must be a HOCON object of key = value lines"
        )
    return flatten(tree)


def _text(value: Any) -> Any:
    """A HOCON string as plain str (pyhocon gives unquoted ones as a str subclass); others as they are."""
    return str(value) if isinstance(value, str) else value


def load_ledgersync_config(path: Path | None) -> LedgerSyncConfig:
    """Read the LedgerSync .conf; no file, or no key, gives the reference's defaults."""
    if path is None or not path.exists():
        return LedgerSyncConfig()
    flat = _read(path)
    for key, value in flat.items():
        if key not in KNOWN_KEYS:
            raise ConfigurationError(key, value, f"unknown key; allowed: {', '.join(KNOWN_KEYS)}")
    values: dict[str, Any] = {}
    for key, (_, low, high) in INT_KEYS.items():
        if key in flat:
            value = flat[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigurationError(key, _text(value), f"allowed: an integer from {low} to {high}")
            values[field_name(key)] = value
    for key in DURATION_KEYS:
        if key in flat:
            values[field_name(key)] = parse_duration(_text(flat[key]), key)
    if SCHEDULES_KEY in flat:
        values["scheduled_reconciliations"] = _schedules(flat[SCHEDULES_KEY])
    return LedgerSyncConfig(**values)


def _schedules(entries: Any) -> tuple[ScheduledReconciliation, ...]:
    allowed = 'allowed: [{ party = "O=...", at = "02:30" }, { party = "O=...", every = "6H" }]'
    if not isinstance(entries, list):
        raise ConfigurationError(SCHEDULES_KEY, entries, allowed)
    schedules = []
    for i, entry in enumerate(entries):
        where = f"{SCHEDULES_KEY}[{i}]"
        if not isinstance(entry, ConfigTree):
            raise ConfigurationError(where, entry, allowed)
        keys = set(entry.keys())
        if "party" not in keys or keys - {"party", "at", "every"} or len(keys & {"at", "every"}) != 1:
            raise ConfigurationError(where, dict(entry), f"exactly party and one of at or every; {allowed}")
        party_text = entry.get("party")
        if not isinstance(party_text, str):
            raise ConfigurationError(
                f"{where}.party", party_text, "allowed: an X.500 name such as O=PartyB, L=London, C=GB"
            )
        try:
            party = X500Name.parse(str(party_text))
        except InvalidNameError as exc:
            raise ConfigurationError(f"{where}.party", str(party_text), str(exc)) from exc
        if "at" in keys:
            at = parse_time_of_day(_text(entry.get("at")), f"{where}.at")
            schedules.append(ScheduledReconciliation(party=party, at=at))
        else:
            every = parse_duration(_text(entry.get("every")), f"{where}.every")
            if every <= timedelta(0):
                raise ConfigurationError(
                    f"{where}.every", _text(entry.get("every")), "allowed: a duration above 0s"
                )
            schedules.append(ScheduledReconciliation(party=party, every=every))
    return tuple(schedules)

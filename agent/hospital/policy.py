"""node.conf's flowHospital and flowTimeout sections: the operator's rules, checked when node.conf is read.

    flowHospital {
        patientsLogInterval = 60s          # the WARN that lists the patients
        rules = [                          # the first that matches decides; otherwise Corda's staff
            { match = DeadlockError, action = retry, maxAttempts = 20, then = observe,
              backoff { initial = 1s, factor = 2, cap = 60s, jitter = 0.25 } }
            { match = ConstraintViolationError, flowName = PayTokensFlow, action = observe }
            { match = TransientConnectionError, action = retry, maxDuration = 10m }
        ]
    }
    flowTimeout { timeout = 30s, maxRestartCount = 6, backoffBase = 1.8 }   # Corda's keys

A rule's `match` names an error class of the agent's error tree (docs/hospital.md): it matches that
class and its subclasses (DatabaseError covers deadlocks), the error a store error was raised from,
and an error a peer replied with, by the type it named. `action`: retry, observe (HOSPITALIZED),
kill, fail. A retry rule with neither maxAttempts nor maxDuration retries for ever: the
FlowRetryLoop alert watches those. Durations: a number of seconds or a string with a unit
(500ms, 30s, 10m, 1h, 1d). Every mistake is a ConfigurationError naming the key and what is allowed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import agent.errors as errors_module
from agent.errors import AgentError, ConfigurationError, PeerRequestError
from agent.flows.engine import FlowError
from agent.flows.faults import InjectedFaultError
from agent.hospital.staff import Consultation, Diagnosis, FlowTimeoutSettings, Patient

ACTIONS = ("retry", "observe", "kill", "fail")
THEN_ACTIONS = ("observe", "fail", "kill")
RULE_KEYS = ("match", "flowName", "action", "backoff", "maxAttempts", "maxDuration", "then")
BACKOFF_KEYS = ("initial", "factor", "cap", "jitter")
DEFAULT_PATIENTS_LOG_INTERVAL_S = 60.0
# Matched against the value stripped of surrounding white space, so no two runs of \s sit side by side
# (`\s*(ms|...)?\s*$` backtracked quadratically on a number followed by spaces and a stray letter).
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_MAX_SECONDS = timedelta.max.total_seconds()  # what a timedelta (and so every caller) can hold
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
DURATION_ALLOWED = "a duration: seconds, or a number with a unit (500ms, 30s, 10m, 1h, 1d)"


def error_class_names() -> frozenset[str]:
    """The names a rule may match: every class of the agent's error tree, and Exception for any."""

    def walk(cls: type[BaseException]) -> Iterator[str]:
        yield cls.__name__
        for sub in cls.__subclasses__():
            yield from walk(sub)

    # The engine's and the fault plan's errors are imported above so that they are in the tree.
    assert FlowError is not None and InjectedFaultError is not None and errors_module is not None
    return frozenset((*walk(AgentError), "Exception"))


def parse_duration(key: str, value: Any, *, allow_zero: bool = True) -> float:
    """Seconds, from a number, a HOCON duration pyhocon read, or a string with a unit."""
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if found:
            seconds = float(found.group(1)) * _UNITS[found.group(2)]
    if seconds is None or seconds < 0 or (seconds == 0 and not allow_zero):
        lowest = "0 or more" if allow_zero else "above 0"
        raise ConfigurationError(key, value, f"allowed: {DURATION_ALLOWED}, {lowest}")
    if not seconds <= _MAX_SECONDS:  # also NaN and infinity (a float of 400 digits is inf)
        raise ConfigurationError(key, value, f"allowed: {DURATION_ALLOWED}, at most {_MAX_SECONDS:.0f} s")
    return seconds


def _number(key: str, value: Any, low: float, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(key, value, f"allowed: a number from {low:g} to {high:g}")
    return float(value)


@dataclass(frozen=True)
class Backoff:
    """initial * factor^n, at most cap, each cut by up to `jitter` of itself (0 to 1)."""

    initial_s: float = 10.0
    factor: float = 1.5
    cap_s: float = 120.0
    jitter: float = 0.25

    def delay(self, previous: int, rng: random.Random) -> float:
        base = min(self.cap_s, self.initial_s * self.factor ** min(previous, 64))
        return base * (1 - self.jitter * rng.random())


@dataclass(frozen=True)
class Rule:
    """One node.conf rule; `index` is its place in flowHospital.rules (its name in records: rules[i])."""

    index: int
    match: str
    action: str
    flow_name: str | None = None
    backoff: Backoff = field(default_factory=Backoff)
    max_attempts: int | None = None
    max_duration_s: float | None = None
    then: str = "observe"

    @property
    def name(self) -> str:
        return f"rules[{self.index}]"

    @property
    def retries_for_ever(self) -> bool:
        return self.action == "retry" and self.max_attempts is None and self.max_duration_s is None

    def matches(self, patient: Patient) -> bool:
        if self.flow_name is not None and patient.flow_name != self.flow_name:
            return False
        if self.match == "Exception":
            return True
        seen: BaseException | None = patient.error
        while seen is not None:
            if any(cls.__name__ == self.match for cls in type(seen).__mro__):
                return True
            if isinstance(seen, PeerRequestError) and seen.error_type == self.match:
                return True
            seen = seen.__cause__
        return False

    def consult(self, patient: Patient, rng: random.Random) -> Consultation:
        """What this rule does with a patient it matches."""
        action = self.action
        if action == "retry":
            n = patient.discharges.get(self.name, 0)
            spent = (patient.now - patient.admitted_at).total_seconds()
            over = (self.max_attempts is not None and n >= self.max_attempts) or (
                self.max_duration_s is not None and spent >= self.max_duration_s
            )
            if not over:
                return Consultation(
                    self.name,
                    Diagnosis.DISCHARGE,
                    self.backoff.delay(n, rng),
                    f"a retry ({self.name}: {self.match})",
                    chronic=self.retries_for_ever,
                )
            action = self.then
        diagnosis = {
            "observe": Diagnosis.OVERNIGHT_OBSERVATION,
            "kill": Diagnosis.TERMINAL,
            "fail": Diagnosis.NOT_MY_SPECIALTY,
        }[action]
        return Consultation(self.name, diagnosis)


@dataclass(frozen=True)
class HospitalSettings:
    rules: tuple[Rule, ...] = ()
    patients_log_interval_s: float = DEFAULT_PATIENTS_LOG_INTERVAL_S
    flow_timeout: FlowTimeoutSettings = field(default_factory=FlowTimeoutSettings)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _rule(i: int, entry: Mapping[str, Any], names: frozenset[str]) -> Rule:
    key = f"flowHospital.rules[{i}]"
    if hasattr(entry, "as_plain_ordered_dict"):
        entry = entry.as_plain_ordered_dict()  # pyhocon's ConfigTree.get raises on a missing key
    if not isinstance(entry, Mapping):
        raise ConfigurationError(
            key, entry, "allowed: { match = <ErrorClass>, action = retry|observe|kill|fail, ... }"
        )
    # Plain dicts: a rule read from a HOCON file is a pyhocon ConfigTree, whose get(key) without a
    # default raises for a key the rule leaves out (flowName, maxAttempts, ...).
    entry = _plain(entry)
    unknown = sorted(set(entry) - set(RULE_KEYS))
    if unknown:
        raise ConfigurationError(
            f"{key}.{unknown[0]}", entry[unknown[0]], f"unknown key; allowed: {', '.join(RULE_KEYS)}"
        )
    match = entry.get("match")
    if not isinstance(match, str) or match not in names:
        examples = "DeadlockError, ConstraintViolationError, TransientConnectionError, DatabaseError, PeerUnreachableError, Exception"
        raise ConfigurationError(
            f"{key}.match",
            match,
            f"allowed: an error class of the agent's error tree, e.g. {examples} (docs/hospital.md lists them)",
        )
    action = entry.get("action")
    if action not in ACTIONS:
        raise ConfigurationError(f"{key}.action", action, f"allowed: {', '.join(ACTIONS)}")
    flow_name = entry.get("flowName")
    if flow_name is not None and (not isinstance(flow_name, str) or not flow_name):
        raise ConfigurationError(f"{key}.flowName", flow_name, "allowed: a flow's name, e.g. FinalityFlow")
    retry_only = [k for k in ("backoff", "maxAttempts", "maxDuration", "then") if k in entry]
    if action != "retry" and retry_only:
        raise ConfigurationError(
            f"{key}.{retry_only[0]}", entry[retry_only[0]], "allowed only with action = retry"
        )
    backoff = Backoff()
    if "backoff" in entry:
        given = entry["backoff"]
        if not isinstance(given, Mapping) or set(given) - set(BACKOFF_KEYS):
            raise ConfigurationError(f"{key}.backoff", given, f"allowed: {{ {', '.join(BACKOFF_KEYS)} }}")
        initial = parse_duration(f"{key}.backoff.initial", given.get("initial", backoff.initial_s))
        factor = _number(f"{key}.backoff.factor", given.get("factor", backoff.factor), 1, 10)
        cap = parse_duration(f"{key}.backoff.cap", given.get("cap", max(backoff.cap_s, initial)))
        if cap < initial:
            raise ConfigurationError(
                f"{key}.backoff.cap", given.get("cap"), f"allowed: at least backoff.initial ({initial:g} s)"
            )
        jitter = _number(f"{key}.backoff.jitter", given.get("jitter", backoff.jitter), 0, 1)
        backoff = Backoff(initial, factor, cap, jitter)
    max_attempts = entry.get("maxAttempts")
    if max_attempts is not None and (
        not isinstance(max_attempts, int)
        or isinstance(max_attempts, bool)
        or not 1 <= max_attempts <= 1_000_000
    ):
        raise ConfigurationError(
            f"{key}.maxAttempts", max_attempts, "allowed: a whole number from 1 to 1000000"
        )
    max_duration = entry.get("maxDuration")
    duration_s = (
        None if max_duration is None else parse_duration(f"{key}.maxDuration", max_duration, allow_zero=False)
    )
    then = entry.get("then", "observe")
    if then not in THEN_ACTIONS:
        raise ConfigurationError(f"{key}.then", then, f"allowed: {', '.join(THEN_ACTIONS)}")
    return Rule(i, match, str(action), flow_name, backoff, max_attempts, duration_s, str(then))


def parse_hospital_settings(flat: Mapping[str, Any]) -> HospitalSettings:
    """The flowHospital.* and flowTimeout.* keys of a flattened node.conf (agent.config.flatten)."""
    entries = flat.get("flowHospital.rules", [])
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise ConfigurationError(
            "flowHospital.rules", entries, "allowed: a list [ { match = ..., action = ... } ]"
        )
    names = error_class_names()
    rules = tuple(_rule(i, entry, names) for i, entry in enumerate(entries))
    interval = parse_duration(
        "flowHospital.patientsLogInterval",
        flat.get("flowHospital.patientsLogInterval", DEFAULT_PATIENTS_LOG_INTERVAL_S),
        allow_zero=False,
    )
    default = FlowTimeoutSettings()
    timeout = parse_duration(
        "flowTimeout.timeout", flat.get("flowTimeout.timeout", default.timeout_s), allow_zero=False
    )
    restarts = flat.get("flowTimeout.maxRestartCount", default.max_restart_count)
    if not isinstance(restarts, int) or isinstance(restarts, bool) or not 0 <= restarts <= 100:
        raise ConfigurationError(
            "flowTimeout.maxRestartCount", restarts, "allowed: a whole number from 0 to 100"
        )
    base = _number(
        "flowTimeout.backoffBase", flat.get("flowTimeout.backoffBase", default.backoff_base), 1, 10
    )
    return HospitalSettings(rules, interval, FlowTimeoutSettings(timeout, restarts, base))


HOSPITAL_KEYS = (
    "flowHospital.rules",
    "flowHospital.patientsLogInterval",
    "flowTimeout.timeout",
    "flowTimeout.maxRestartCount",
    "flowTimeout.backoffBase",
)

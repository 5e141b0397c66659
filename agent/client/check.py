"""`ledger-agent check`: a monitoring plugin (Nagios, Icinga, Zabbix) for one MBean attribute, or for
the flow hospital's patients.

It follows the Monitoring Plugins guidelines (https://www.monitoring-plugins.org/doc/guidelines.html):
one status line `LEDGERAGENT <STATE> - <text> | <perfdata>`, exit 0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN (also for bad arguments, an unreachable agent, wrong credentials, an unknown attribute),
and threshold ranges `10` (outside 0..10), `10:` (below 10), `~:10` (above 10), `10:20` (outside),
`@10:20` (inside, inclusive). Critical is checked before warning.

Numbers are compared with -w/-c; booleans and strings with --expect (CRITICAL when different); lists
by their length (with the first items named in the text). The attribute is read through the agent's
JSON-RPC `read` method, as the read-only user `monitor` by default.

With --patients-warning/--patients-critical (how many patients) or --oldest-patient-warning/-critical
(the longest stay at one checkpoint, in seconds), it reads the FlowHospital bean's PatientGroups once
and judges both figures, each with its perfdata; the worse verdict wins.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, NoReturn

from agent import __version__

LABEL = "LEDGERAGENT"
FLOW_HOSPITAL = "ledgeragent:type=FlowHospital"
DEFAULT_MBEAN = "ledgeragent:type=LedgerSync"


class State(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


class ThresholdError(ValueError):
    """A threshold that is not a range of the guidelines' grammar."""


_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"(?P<at>@)?(?:(?P<start>~|{_NUMBER})?:)?(?P<end>{_NUMBER})?")


@dataclass(frozen=True)
class Range:
    """start..end (inclusive); alert when outside, or when inside for `@` ranges."""

    start: float
    end: float
    inside: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> Range:
        match = _RANGE.fullmatch(text.strip())
        if match is None or (match["start"] is None and match["end"] is None):
            raise ThresholdError(f"threshold {text!r}: expected 10, 10:, ~:10, 10:20 or @10:20")
        start_text = match["start"]
        start = 0.0 if start_text is None else -math.inf if start_text == "~" else float(start_text)
        end = math.inf if match["end"] is None else float(match["end"])
        if start > end:
            raise ThresholdError(f"threshold {text!r}: the start {start:g} is above the end {end:g}")
        return cls(start, end, match["at"] is not None, text.strip())

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within


def evaluate(value: float, warning: Range | None, critical: Range | None) -> State:
    if critical is not None and critical.alerts(value):
        return State.CRITICAL
    if warning is not None and warning.alerts(value):
        return State.WARNING
    return State.OK


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _perfdata(
    label: str, value: float, warning: Range | None, critical: Range | None, tail: str, unit: str = ""
) -> str:
    quoted = label if re.fullmatch(r"[A-Za-z0-9_.()-]+", label) else "'" + label.replace("'", "''") + "'"
    return (
        f"{quoted}={_number(value)}{unit};{warning.text if warning else ''};"
        f"{critical.text if critical else ''};{tail}"
    )


@dataclass(frozen=True)
class Outcome:
    state: State
    text: str
    perfdata: str = ""

    def line(self) -> str:
        tail = f" | {self.perfdata}" if self.perfdata else ""
        return f"{LABEL} {self.state.name} - {self.text}{tail}"


def judge(
    attribute: str, value: Any, warning: Range | None, critical: Range | None, expect: str | None
) -> Outcome:
    """The plugin's verdict on one attribute's value."""
    if isinstance(value, bool) or (expect is not None and isinstance(value, str)):
        shown = ("true" if value else "false") if isinstance(value, bool) else value
        wanted = expect.strip().lower() if isinstance(value, bool) and expect is not None else expect
        if isinstance(value, bool) and wanted not in (None, "true", "false"):
            return Outcome(State.UNKNOWN, f"{attribute} is a boolean: --expect true or --expect false")
        state = State.OK if wanted in (None, shown) else State.CRITICAL
        text = f"{attribute} = {shown}" + ("" if expect is None else f" (expected {expect})")
        perf = _perfdata(attribute, float(value), None, None, "0;1") if isinstance(value, bool) else ""
        return Outcome(state, text, perf)
    if isinstance(value, int | float):
        return Outcome(
            evaluate(value, warning, critical),
            f"{attribute} = {_number(value)}",
            _perfdata(attribute, value, warning, critical, ";"),
        )
    if isinstance(value, list):
        count = len(value)
        named = ", ".join(str(v) for v in value[:3]) + (", ..." if count > 3 else "")
        return Outcome(
            evaluate(count, warning, critical),
            f"{attribute} = {count} item{'' if count == 1 else 's'}" + (f" ({named})" if value else ""),
            _perfdata(attribute, count, warning, critical, "0;"),
        )
    kind = "null" if value is None else type(value).__name__
    return Outcome(
        State.UNKNOWN, f"{attribute} is {kind}: not a number, boolean, list or (with --expect) string"
    )


@dataclass(frozen=True)
class PatientThresholds:
    """The ranges on the flow hospital's patients: how many, and the oldest's age in seconds."""

    patients_warning: Range | None = None
    patients_critical: Range | None = None
    age_warning: Range | None = None
    age_critical: Range | None = None


def judge_patients(groups: Any, thresholds: PatientThresholds) -> Outcome:
    """The verdict on the FlowHospital bean's PatientGroups: the worse of the count's and the age's."""
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        return Outcome(State.UNKNOWN, f"PatientGroups of {FLOW_HOSPITAL} is not a list of groups: {groups!r}")
    try:
        count = sum(int(g["patients"]) for g in groups)
        oldest = max(groups, key=lambda g: float(g["oldestAgeSeconds"]), default=None)
        age = 0.0 if oldest is None else round(float(oldest["oldestAgeSeconds"]), 3)
    except (KeyError, TypeError, ValueError) as exc:
        return Outcome(State.UNKNOWN, f"PatientGroups of {FLOW_HOSPITAL}: unexpected group ({exc})")
    t = thresholds
    state = max(
        evaluate(count, t.patients_warning, t.patients_critical), evaluate(age, t.age_warning, t.age_critical)
    )
    text = f"{count} patient{'' if count == 1 else 's'} in the flow hospital"
    if oldest is not None:
        text += (
            f", the oldest for {age:.0f} s ({oldest.get('staff')}: {oldest.get('diagnosis')}, "
            f"{oldest.get('status')})"
        )
    perfdata = " ".join(
        (
            _perfdata("patients", count, t.patients_warning, t.patients_critical, "0;"),
            _perfdata("oldest_patient_age", age, t.age_warning, t.age_critical, "0;", unit="s"),
        )
    )
    return Outcome(State(state), text, perfdata)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # Bad arguments are UNKNOWN (3) for a monitoring system, not argparse's exit 2 (CRITICAL).
        self.print_usage(sys.stderr)
        raise _UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ledger-agent check",
        description="Monitoring plugin: one MBean attribute, or the flow hospital's patients, against "
        "thresholds (Nagios/Icinga/Zabbix).",
        epilog="Ranges: 10 (alert outside 0..10), 10: (below 10), ~:10 (above 10), 10:20 (outside), "
        "@10:20 (inside). Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    )
    parser.add_argument("--url", help="the agent's management URL, e.g. https://127.0.0.1:10001")
    parser.add_argument(
        "--cacert",
        type=Path,
        help="CA certificate to check the agent's with (default: node.conf's network root)",
    )
    parser.add_argument("--config", type=Path, help="the node's node.conf (URL; monitor-password beside it)")
    parser.add_argument("--user", default="monitor", help="management user (default monitor, read-only)")
    parser.add_argument("--password-file", type=Path, help="file holding the user's password")
    parser.add_argument("--mbean", help=f"the MBean's ObjectName (default {DEFAULT_MBEAN})")
    parser.add_argument("--attribute", "-a", help="e.g. NumberOfFailedReconciliations")
    parser.add_argument("--warning", "-w", help="warning range")
    parser.add_argument("--critical", "-c", help="critical range")
    parser.add_argument("--expect", help="the expected value of a boolean or string (true, false, ...)")
    hospital = parser.add_argument_group(
        "the flow hospital (instead of --mbean/--attribute; both figures in the perfdata)"
    )
    hospital.add_argument("--patients-warning", help="warning range on the number of patients")
    hospital.add_argument("--patients-critical", help="critical range on the number of patients")
    hospital.add_argument(
        "--oldest-patient-warning", help="warning range on the oldest patient's stay at its checkpoint (s)"
    )
    hospital.add_argument(
        "--oldest-patient-critical", help="critical range on the oldest patient's stay at its checkpoint (s)"
    )
    parser.add_argument("--timeout", "-t", type=float, default=10.0, help="seconds (default 10)")
    # -V/--version as the guidelines name it: the version on stdout, exit 0 as --help (argparse exits).
    parser.add_argument("--version", "-V", action="version", version=f"ledger-agent check {__version__}")
    return parser


def run_check(argv: Sequence[str]) -> Outcome:
    """Parse argv, read the attribute, judge it (never raises for the failures it expects)."""
    # Here, not at the top: the thresholds and the verdict stay importable without httpx.
    from agent.client.shell import RpcAuthenticationError, RpcClient, RpcError, RpcUnavailableError, endpoint
    from agent.errors import AgentError
    from agent.operator_api.layout import MONITOR_PASSWORD_FILE

    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        return Outcome(State.UNKNOWN, str(exc))
    patient_ranges = (
        args.patients_warning,
        args.patients_critical,
        args.oldest_patient_warning,
        args.oldest_patient_critical,
    )
    on_patients = any(r is not None for r in patient_ranges)
    if on_patients and (args.attribute or args.mbean or args.warning or args.critical or args.expect):
        return Outcome(
            State.UNKNOWN,
            "the patient thresholds read the FlowHospital bean: give them without --mbean, --attribute, "
            "-w, -c or --expect (one check at a time)",
        )
    if not on_patients and not args.attribute:
        return Outcome(State.UNKNOWN, "give --attribute (with -w/-c or --expect), or patient thresholds")
    try:
        warning = None if args.warning is None else Range.parse(args.warning)
        critical = None if args.critical is None else Range.parse(args.critical)
        thresholds = PatientThresholds(*(None if r is None else Range.parse(r) for r in patient_ranges))
        url, password, ca_file = endpoint(
            args.config, args.url, args.password_file, MONITOR_PASSWORD_FILE, None, args.cacert
        )
    except (ThresholdError, AgentError) as exc:
        return Outcome(State.UNKNOWN, str(exc))
    mbean = FLOW_HOSPITAL if on_patients else args.mbean or DEFAULT_MBEAN
    attribute = "PatientGroups" if on_patients else args.attribute
    client = RpcClient(url, args.user, password, timeout=args.timeout, ca_file=ca_file)
    try:
        value = client.call("read", {"mbean": mbean, "attribute": attribute})
    except RpcAuthenticationError:
        return Outcome(State.UNKNOWN, f"the agent at {url} refused the credentials of user {args.user!r}")
    except RpcUnavailableError as exc:
        return Outcome(State.UNKNOWN, str(exc))
    except RpcError as exc:
        return Outcome(State.UNKNOWN, f"cannot read {attribute} of {mbean}: {exc.message}")
    finally:
        client.close()
    if on_patients:
        return judge_patients(value, thresholds)
    return judge(attribute, value, warning, critical, args.expect)


def main(argv: Sequence[str] | None = None) -> int:
    outcome = run_check(sys.argv[1:] if argv is None else argv)
    print(outcome.line())
    return int(outcome.state)

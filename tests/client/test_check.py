"""`ledger-agent check`: the Monitoring Plugins threshold grammar, every exit code, and end to end
against a served management app through its JSON-RPC endpoint."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.client.check import (
    PatientThresholds,
    Range,
    State,
    ThresholdError,
    evaluate,
    judge,
    judge_patients,
)
from agent.client.cli import main
from agent.flows.checkpoints import FlowStatus
from tests.hospital.test_hospital import KeyFlow
from tests.mbeans.test_jsonrpc import B, Served
from tests.mbeans.test_jsonrpc import served as served  # noqa: PLC0414  (the fixture)

# -- the grammar --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ok", "alert"),
    [
        ("10", [0, 5, 10], [-1, 10.5, 11]),
        ("10:", [10, 11, 1e9], [9.99, 0, -1]),
        ("~:10", [-1e9, 0, 10], [10.01, 11]),
        ("10:20", [10, 15, 20], [9, 21]),
        ("@10:20", [9, 21], [10, 15, 20]),
        ("-5:-1", [-5, -3, -1], [0, -6]),
        ("1.5", [0, 1.5], [1.6]),
    ],
)
def test_the_guidelines_ranges(text: str, ok: list[float], alert: list[float]) -> None:
    threshold = Range.parse(text)
    assert [threshold.alerts(v) for v in ok] == [False] * len(ok)
    assert [threshold.alerts(v) for v in alert] == [True] * len(alert)


@pytest.mark.parametrize("text", ["", ":", "x", "10:5", "-5", "1:2:3", "@", "~", "10 :20", "@~"])
def test_malformed_ranges_are_refused(text: str) -> None:
    with pytest.raises(ThresholdError, match="threshold"):
        Range.parse(text)


numbers = st.integers(-(10**6), 10**6)


@given(numbers, numbers, numbers, st.booleans())
def test_a_range_alerts_outside_its_bounds_or_inside_with_at(a: int, b: int, value: int, at: bool) -> None:
    start, end = min(a, b), max(a, b)
    threshold = Range.parse(f"{'@' if at else ''}{start}:{end}")
    within = start <= value <= end
    assert threshold.alerts(value) is (within if at else not within)


@given(numbers, numbers)
def test_open_ended_ranges(bound: int, value: int) -> None:
    assert Range.parse(f"{bound}:").alerts(value) is (value < bound)
    assert Range.parse(f"~:{bound}").alerts(value) is (value > bound)
    if bound >= 0:
        assert Range.parse(str(bound)).alerts(value) is not (0 <= value <= bound)
    assert Range.parse(f"{bound}:") == Range(float(bound), math.inf, False, f"{bound}:")


@given(numbers, numbers, numbers)
def test_critical_wins_over_warning(w: int, c: int, value: int) -> None:
    warning, critical = Range.parse(f"~:{w}"), Range.parse(f"~:{c}")
    state = evaluate(value, warning, critical)
    expected = State.CRITICAL if value > c else State.WARNING if value > w else State.OK
    assert state is expected


def test_judging_each_kind_of_value() -> None:
    w, c = Range.parse("1"), Range.parse("3")
    assert judge("N", 0, w, c, None).line() == "LEDGERAGENT OK - N = 0 | N=0;1;3;;"
    assert judge("N", 2, w, c, None).state is State.WARNING
    assert judge("N", 4, w, c, None).state is State.CRITICAL
    assert judge("IsSelfConsistent", True, None, None, "true").line() == (
        "LEDGERAGENT OK - IsSelfConsistent = true (expected true) | IsSelfConsistent=1;;;0;1"
    )
    assert judge("IsSelfConsistent", False, None, None, "TRUE").state is State.CRITICAL
    assert judge("IsSelfConsistent", False, None, None, "yes").state is State.UNKNOWN
    parties = ["O=PartyB, L=London, C=GB"]
    outcome = judge("FailedParties", parties, None, Range.parse("0"), None)
    assert outcome.line() == (
        "LEDGERAGENT CRITICAL - FailedParties = 1 item (O=PartyB, L=London, C=GB) | FailedParties=1;;0;0;"
    )
    assert judge("Role", "node", None, None, "node").state is State.OK
    assert judge("Role", "node", None, None, "notary").state is State.CRITICAL
    assert judge("Role", "node", None, None, None).state is State.UNKNOWN
    assert judge("ReconciliationStatus", None, None, None, None).state is State.UNKNOWN


def test_judging_the_patients_by_count_and_oldest_age() -> None:
    groups = [
        {
            "status": "RUNNABLE",
            "diagnosis": "DISCHARGE",
            "staff": "DoctorTimeout",
            "patients": 2,
            "oldestAgeSeconds": 420.5,
            "mostAttempts": 4,
        },
        {
            "status": "HOSPITALIZED",
            "diagnosis": "OVERNIGHT_OBSERVATION",
            "staff": "rules[0]",
            "patients": 1,
            "oldestAgeSeconds": 7200.0,
            "mostAttempts": 1,
        },
    ]
    count = PatientThresholds(Range.parse("0"), Range.parse("5"))
    assert judge_patients(groups, count).line() == (
        "LEDGERAGENT WARNING - 3 patients in the flow hospital, the oldest for 7200 s "
        "(rules[0]: OVERNIGHT_OBSERVATION, HOSPITALIZED) | patients=3;0;5;0; oldest_patient_age=7200s;;;0;"
    )
    assert (
        judge_patients(groups, PatientThresholds(patients_critical=Range.parse("2"))).state is State.CRITICAL
    )
    ages = PatientThresholds(age_warning=Range.parse("3600"), age_critical=Range.parse("14400"))
    assert judge_patients(groups, ages).state is State.WARNING
    assert judge_patients(groups[:1], ages).state is State.OK
    # The worse of the two verdicts: a warning on the count, a critical on the age.
    both = PatientThresholds(Range.parse("0"), None, None, Range.parse("3600"))
    assert judge_patients(groups, both).state is State.CRITICAL
    assert judge_patients([], count).line() == (
        "LEDGERAGENT OK - 0 patients in the flow hospital | patients=0;0;5;0; oldest_patient_age=0s;;;0;"
    )
    assert judge_patients(None, count).state is State.UNKNOWN
    assert judge_patients([{"patients": 1}], count).state is State.UNKNOWN


# -- end to end ---------------------------------------------------------------------------------------


def check(served: Served, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["check", "--url", served.url, *args])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("LEDGERAGENT ")
    return code, out.strip()


def test_each_exit_code_against_a_served_agent(
    served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = tmp_path / "monitor-password"
    secret.write_text(served.monitor[1] + "\n")
    base = ["--password-file", str(secret)]
    attribute = ["--attribute", "NumberOfFailedReconciliations"]
    assert check(served, capsys, *base, *attribute, "-w", "1", "-c", "3") == (
        0,
        "LEDGERAGENT OK - NumberOfFailedReconciliations = 0 | NumberOfFailedReconciliations=0;1;3;;",
    )
    code, line = check(served, capsys, *base, *attribute, "-w", "@0", "-c", "3")
    assert code == 1 and line.startswith("LEDGERAGENT WARNING - ")
    code, line = check(served, capsys, *base, "--attribute", "FailedParties", "-c", "@0:0")
    assert code == 2 and line.startswith("LEDGERAGENT CRITICAL - FailedParties = 0 items")
    graph = ["--mbean", "ledgeragent:type=LedgerGraph", "--attribute", "IsSelfConsistent"]
    assert check(served, capsys, *base, *graph, "--expect", "true")[0] == 0
    assert check(served, capsys, *base, *graph, "--expect", "false")[0] == 2
    code, line = check(served, capsys, *base, "--attribute", "NoSuchAttribute")
    assert code == 3 and "no attribute 'NoSuchAttribute'" in line
    code, line = check(served, capsys, *base, "--mbean", "ledgeragent:type=Nope", *attribute)
    assert code == 3 and "no MBean named ledgeragent:type=Nope" in line


def test_unknown_for_credentials_connection_thresholds_and_arguments(
    served: Served, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    code, line = check(served, capsys, "--password-file", str(wrong), "-a", "FailedParties")
    assert code == 3 and "refused the credentials of user 'monitor'" in line
    code, line = check(served, capsys, "--password-file", str(tmp_path / "absent"), "-a", "FailedParties")
    assert code == 3 and "unreadable" in line
    code, line = check(served, capsys, "--password-file", str(wrong), "-a", "X", "-w", "5:1")
    assert code == 3 and "threshold '5:1'" in line
    code = main(["check", "--url", "http://127.0.0.1:9", "--password-file", str(wrong), "-a", "X"])
    out = capsys.readouterr().out
    assert code == 3 and out.startswith("LEDGERAGENT UNKNOWN - ") and "did not answer" in out
    code = main(["check", "--url", served.url, "--no-such-option"])
    out = capsys.readouterr().out
    assert code == 3 and out.startswith("LEDGERAGENT UNKNOWN - ")


def test_the_node_conf_gives_the_monitor_password(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_AGENT_PASSWORD", "the operator's, not used by check")
    code, line = check(served, capsys, "--config", str(served.node.config), "-a", "FailedParties", "-c", "0")
    assert code == 0 and line.startswith("LEDGERAGENT OK - FailedParties = 0 items")
    sync = served.runtime.ledgersync
    assert sync is not None
    sync.statuses.started(B, True, "c243222b-1940-45df-8828-a8496196d274", 1)
    sync.statuses.failed(B, True, 2, "PeerUnreachableError")
    code, line = check(served, capsys, "--config", str(served.node.config), "-a", "FailedParties", "-c", "0")
    assert code == 2 and f"FailedParties = 1 item ({B})" in line


def test_the_plugin_has_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["check", "--help"])
    assert exited.value.code == 0 and "@10:20" in capsys.readouterr().out
    assert sys.argv  # untouched


def test_patient_thresholds_against_a_served_agent_with_a_patient(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(served.node.config)]
    assert check(served, capsys, *config, "--patients-warning", "0") == (
        0,
        "LEDGERAGENT OK - 0 patients in the flow hospital | patients=0;0;;0; oldest_patient_age=0s;;;0;",
    )
    # A real patient: a flow whose step asks to be kept, so SedationNurse keeps it HOSPITALIZED.
    runtime, store = served.runtime, served.runtime.node.store
    runtime.engine.register(KeyFlow.name, lambda state: KeyFlow(state, store))
    handle = runtime.engine.start(KeyFlow({"key": "k", "sedate": True}, store))
    assert handle.wait_for(
        lambda h: h.checkpoint is not None and h.checkpoint.status is FlowStatus.HOSPITALIZED, 10
    )

    code, line = check(served, capsys, *config, "--patients-warning", "0", "--patients-critical", "5")
    assert code == 1, line
    assert re.fullmatch(
        r"LEDGERAGENT WARNING - 1 patient in the flow hospital, the oldest for \d+ s "
        r"\(SedationNurse: OVERNIGHT_OBSERVATION, HOSPITALIZED\) "
        r"\| patients=1;0;5;0; oldest_patient_age=[\d.]+s;;;0;",
        line,
    ), line
    assert check(served, capsys, *config, "--patients-warning", "0", "--patients-critical", "0")[0] == 2
    assert check(served, capsys, *config, "--oldest-patient-critical", "3600")[0] == 0
    code, line = check(served, capsys, *config, "--oldest-patient-warning", "@0:3600")
    assert code == 1 and "oldest_patient_age=" in line and ";@0:3600;;0;" in line
    assert runtime.engine.kill(handle.flow_id)
    assert check(served, capsys, *config, "--patients-critical", "0")[0] == 0


def test_patient_thresholds_are_a_check_of_their_own(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ["--config", str(served.node.config)]
    code, line = check(served, capsys, *config, "-a", "FailedParties", "--patients-warning", "0")
    assert code == 3 and "one check at a time" in line
    code, line = check(served, capsys, *config)
    assert code == 3 and "give --attribute" in line
    code, line = check(served, capsys, *config, "--oldest-patient-critical", "1:0")
    assert code == 3 and "threshold '1:0'" in line

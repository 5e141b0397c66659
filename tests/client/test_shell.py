"""`ledger-agent shell` fed on stdin against a served management app: the Corda shell's commands and
the reference's outputs, through the JSON-RPC endpoint."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from agent.client.cli import main
from agent.client.shell import render
from agent.ledger.hashing import SecureHash
from tests.mbeans.test_jsonrpc import A, B, C, Served
from tests.mbeans.test_jsonrpc import served as served  # noqa: PLC0414  (the fixture)

RUN_ID = "c243222b-1940-45df-8828-a8496196d274"


def shell(
    served: Served,
    text: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
) -> tuple[int, str, str]:
    monkeypatch.delenv("LEDGER_AGENT_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code = main(["shell", "--config", str(served.node.config), "--url", served.url, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_flow_list_and_help(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = shell(served, "flow list\nhelp\n", monkeypatch, capsys)
    assert code == 0 and err == ""
    flows = out.split("Commands:")[0].split()
    assert flows == [
        "ScheduleReconciliationFlow",
        "ReconcileWithPartyFlow",
        "GetReconciliationStatusesFlow",
        "GetReconciliationStatusForPartyFlow",
        "RefreshReconciliationStatusesFlow",
        "StopReconciliationForPartyFlow",
        "IsReconciliationScheduledForPartyFlow",
        "IsRespondingToReconciliationForPartyFlow",
        "IssueTokensFlow",
        "PayTokensFlow",
        "ExitTokensFlow",
        "LedgerRecoveryFlow",
    ]
    assert "flow start <Flow>" in out and "run killFlow id: <id>" in out


def test_flows_print_as_the_corda_shell_does(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sync = served.runtime.ledgersync
    assert sync is not None
    missing = [SecureHash(bytes([i]) * 32) for i in (1, 2)]
    sync.statuses.started(C, True, RUN_ID, 1582893847919)
    expected = sync.statuses.succeeded(C, True, 1582893848879, missing)
    commands = f"""
flow start GetReconciliationStatusForPartyFlow party: "{C}", isRequester: true
flow start GetReconciliationStatusForPartyFlow party: "{B}"
flow start IsReconciliationScheduledForPartyFlow party: "{B}"
flow start ScheduleReconciliationFlow parties: ["{B}"]
flow start RefreshReconciliationStatusesFlow
flow start GetReconciliationStatusesFlow lastReconciliationStatus: DIFFERENCES_FOUND, isRequester: true
run NumberOfReconciliationsWithDifferences
run PartiesWithDifference
run LedgerGraph.IsSelfConsistent
"""
    code, out, err = shell(served, commands, monkeypatch, capsys)
    assert err == "" and code == 0
    lines = out.split("Flow completed with result: ")
    assert lines[0] == ""
    assert lines[1] == expected.pretty() + "\n"
    assert "    lastSuccessfulReconciliationStatus=DIFFERENCES_FOUND,\n" in lines[1]
    assert f"        {'01' * 32}".upper() in lines[1].upper()
    assert lines[2:6] == ["null\n", "false\n", "kotlin.Unit\n", "kotlin.Unit\n"]
    statuses, rest = lines[6].split("\n)]\n")
    assert statuses + "\n)]" == "[" + expected.pretty() + "]"
    assert rest.splitlines() == ["1", f'["{C}"]', "true"]


def test_killing_a_flow_that_is_not_running(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = shell(served, f"run killFlow id: {RUN_ID}\nflow kill {RUN_ID}\n", monkeypatch, capsys)
    assert out.splitlines() == ["false", f"Failed to kill flow [{RUN_ID}]: no such flow running"]
    assert code == 1 and err == ""


def test_each_error_is_one_line_and_the_shell_goes_on(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = f"""flow start NoSuchFlow
flow start GetReconciliationStatusForPartyFlow
flow start GetReconciliationStatusForPartyFlow party: "{B}", colour: blue
flow start ScheduleReconciliationFlow parties: "{B}"
flow start ScheduleReconciliationFlow parties: ["{A}"]
flow start IsReconciliationScheduledForPartyFlow party: "not a name"
flow start GetReconciliationStatusForPartyFlow party: "O=PartyA
run NoSuchAttribute
launch rockets
run Node.Role
"""
    code, out, err = shell(served, commands, monkeypatch, capsys)
    assert code == 1 and out == "node\n"
    errors = err.splitlines()
    assert len(errors) == 9 and all(e.startswith("Error: ") for e in errors)
    assert "Traceback" not in err
    assert "NoSuchFlow" in errors[0] and "ScheduleReconciliationFlow" in errors[0]
    assert "'party'" in errors[1] and "required" in errors[1]
    assert "'colour'" in errors[2] and "unknown" in errors[2]
    assert "a list of X.500 names" in errors[3]
    assert errors[4].startswith("Error: CannotReconcileWithSelfException: ")
    assert errors[5].startswith("Error: IllegalArgumentException: ")
    assert "flow arguments" in errors[6]
    assert "method not found: NoSuchAttribute" in errors[7]
    assert "help" in errors[8]


def test_the_read_only_user_may_look_but_not_act(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_AGENT_PASSWORD", served.monitor[1])
    monkeypatch.setattr(
        sys,
        "stdin",
        io.StringIO(f'run FailedParties\nflow start ScheduleReconciliationFlow parties: ["{B}"]\n'),
    )
    code = main(["shell", "--url", served.url, "--user", "monitor"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "[]\n"
    assert err.startswith("Error: SecurityException: ") and "operator role" in err


def test_bye_ends_the_shell(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = shell(served, "run Node.Role\nbye\nrun Node.Role\n", monkeypatch, capsys)
    assert code == 0 and out == "node\n"


def test_wrong_credentials_and_an_unreachable_agent_are_one_line_errors(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_AGENT_PASSWORD", "wrong")
    monkeypatch.setattr(sys, "stdin", io.StringIO("run Node.Role\n"))
    assert main(["shell", "--url", served.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: authentication required") and err.count("\n") == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("run Node.Role\n"))
    assert main(["shell", "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "did not answer" in err and err.count("\n") == 1


def test_render_keeps_the_corda_spellings() -> None:
    assert [render(v) for v in (True, False, None, 3, "x")] == ["true", "false", "null", "3", "x"]
    assert render({"a": [1]}) == '{"a": [1]}'


def test_the_shell_as_a_process_reading_a_script(served: Served) -> None:
    script = "run NumberOfReconciliationsInProgress\nflow start RefreshReconciliationStatusesFlow\nexit\n"
    done = subprocess.run(
        [sys.executable, "-m", "agent", "shell", "--config", str(served.node.config), "--url", served.url],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "0\nFlow completed with result: kotlin.Unit\n"


def test_the_engine_verbs_from_the_catalogue(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = str(served.runtime.node.identity.name)
    commands = f"""flow start IssueTokensFlow holdings: [{{owner: "{holder}", amount: 5}}], currency: GBP
flow watch flowName: FinalityFlow
flow watch status: FAILED
flow pause {RUN_ID}
flow resume {RUN_ID}
run pauseFlow id: {RUN_ID}
"""
    code, out, err = shell(served, commands, monkeypatch, capsys)
    lines = out.splitlines()
    assert err == "", err
    assert lines[0].startswith("Flow completed with result: ") and len(lines[0].split()[-1]) == 64
    assert lines[1].split() == ["flowId", "flowName", "status", "step", "waitingFor"]
    assert lines[2].split()[1:4] == ["FinalityFlow", "COMPLETED", "FINALISED"]
    assert lines[3:] == [
        "No flows",
        f"Failed to pause flow [{RUN_ID}]: no such flow running",
        f"Failed to resume flow [{RUN_ID}]: no such flow paused",
        "false",
    ]
    assert code == 1 and err == ""

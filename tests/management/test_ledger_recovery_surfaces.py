"""Ledger Recovery on every surface of a served agent with its peers (issue 15): REST, JSON-RPC
(jsonrpcclient), Jolokia (the jolokia client), the shell and `ledger-agent recover`, with Corda's
names; the read-only user refused and audited, a bad parameter named.

PartyA is served; PartyB, PartyC and the notary run beside it on the in-process network. Nothing is
missing here (the restore scenarios are tests.test_ledger_recovery_processes's): a dry run finds
nothing, a recovery recovers nothing, and every answer has its shape.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from jolokia import JolokiaClient  # type: ignore[import-untyped]
from jsonrpcclient import Error, Ok, parse, request

from agent.client import cli
from agent.client.cli import main
from agent.client.launcher import ManagementClient
from tests.management.conftest import Served, rest, shell

LEDGER_RECOVERY = "ledgeragent:type=LedgerRecovery"
WINDOW = {"fromTime": "2020-01-01T00:00:00Z"}
SUMMARY_KEYS = {
    "flowId",
    "dryRun",
    "totalRecoveredRecords",
    "totalRecoveredTransactions",
    "totalRecoveredInFlightTransactions",
    "totalErrors",
    "missing",
    "plan",
    "ledgerSync",
    "results",
    "resultsTruncated",
}


def peers(served: Served) -> list[str]:
    return sorted(str(p) for p in served.peers if "Notary" not in str(p))


def test_rest_starts_it_either_shape_answers_its_results_and_progress(served_network: Served) -> None:
    served = served_network
    peer = peers(served)[0]
    flat = rest(
        served,
        "POST",
        "/api/recovery/ledgerRecovery",
        {"recoveryPeers": [peer], "timeWindow": WINDOW, "dryRun": True, "reason": "drill"},
    )
    assert flat.status_code == 200, flat.text
    summary = flat.json()
    assert set(summary) == SUMMARY_KEYS
    assert (summary["dryRun"], summary["totalErrors"], summary["results"]) == (True, 0, [])
    shipped = rest(
        served,
        "POST",
        "/api/recovery/ledgerRecovery",
        {"parameters": {"recoveryPeers": [peer], "timeWindow": WINDOW, "dryRun": False}},
    ).json()
    assert (shipped["dryRun"], shipped["totalRecoveredTransactions"], shipped["totalErrors"]) == (False, 0, 0)
    started = rest(
        served,
        "POST",
        "/api/flows/start/LedgerRecoveryFlow",
        {"useAllNetworkNodes": True, "timeWindow": WINDOW},
    )
    assert started.status_code == 200, started.text
    assert started.json()["result"]["totalErrors"] == 0

    # `recover`'s defaults: reconcile first, a dry run, the whole history.
    planned = rest(served, "POST", "/api/recovery/recover", {"recoveryPeers": peers(served)})
    assert planned.status_code == 200, planned.text
    plan = planned.json()
    assert plan["dryRun"] is True and plan["plan"]["transactions"] == 0
    assert set(plan["plan"]["peers"]) <= set(peers(served))
    assert plan["ledgerSync"] is not None

    results = rest(served, "GET", f"/api/recovery/results/{shipped['flowId']}", who="monitor")
    assert results.status_code == 200 and results.json() == {"flowId": shipped["flowId"], "results": []}
    progress = rest(served, "GET", "/api/recovery/progress", who="monitor")
    assert progress.status_code == 200 and isinstance(progress.json(), dict)
    unheld = rest(served, "GET", "/api/recovery/heldByNoPeer", who="monitor")
    assert unheld.status_code == 200 and isinstance(unheld.json(), list)

    refused = rest(served, "POST", "/api/recovery/recover", {"recoveryPeers": [peer]}, who="monitor")
    assert (refused.status_code, refused.json()["error"]) == (403, "SecurityException")
    bad = rest(
        served,
        "POST",
        "/api/recovery/ledgerRecovery",
        {"recoveryPeers": ["O=Nobody, L=Nowhere, C=GB"], "timeWindow": WINDOW},
    )
    assert bad.status_code == 400 and "recoveryPeers" in bad.json()["message"], bad.text
    wrong = rest(
        served, "POST", "/api/recovery/ledgerRecovery", {"recoveryPeers": [peer], "transactionRole": "X"}
    )
    assert wrong.status_code == 400 and "transactionRole" in wrong.json()["message"]
    window = rest(
        served,
        "POST",
        "/api/recovery/ledgerRecovery",
        {
            "recoveryPeers": [peer],
            "timeWindow": {"fromTime": "2030-01-01T00:00:00Z", "untilTime": "2029-01-01T00:00:00Z"},
        },
    )
    assert window.status_code == 400 and "timeWindow.untilTime" in window.json()["message"]

    rows = [(e["user"], e["action"], e["outcome"].split(":")[0], e["surface"]) for e in served.audit()]
    assert rows == [
        ("operator", "LedgerRecoveryFlow", "dry run", "rest"),
        ("operator", "LedgerRecoveryFlow", "done", "rest"),
        ("operator", "LedgerRecoveryFlow", "done", "rest"),
        ("operator", "recover", "dry run", "rest"),
        ("monitor", "recover", "refused", "rest"),
        ("operator", "LedgerRecoveryFlow", "error", "rest"),
        ("operator", "LedgerRecoveryFlow", "error", "rest"),
        ("operator", "LedgerRecoveryFlow", "error", "rest"),
    ]
    first = served.audit()[0]
    assert first["reason"] == "drill" and first["target"].startswith(f"flow {summary['flowId']}: ")


def test_json_rpc_and_jolokia_have_the_ledger_recovery_bean(served_network: Served) -> None:
    served = served_network
    peer = peers(served)[0]

    def rpc(method: str, params: Any, who: tuple[str, str]) -> Any:
        reply = requests.post(served.url + "/rpc", json=request(method, params=params), auth=who, timeout=60)
        return parse(reply.json())

    done = rpc(
        "LedgerRecovery.LedgerRecovery",
        {"recoveryPeers": [peer], "timeWindow": WINDOW, "dryRun": True},
        served.operator,
    )
    assert isinstance(done, Ok) and done.result["dryRun"] is True and set(done.result) == SUMMARY_KEYS
    shipped = rpc(
        "LedgerRecovery.LedgerRecovery",
        {"parameters": {"recoveryPeers": [peer], "timeWindow": WINDOW}},
        served.operator,
    )
    assert isinstance(shipped, Ok) and shipped.result["dryRun"] is False
    refused = rpc("LedgerRecovery.recover", {"recoveryPeers": [peer]}, served.monitor)
    assert isinstance(refused, Error) and refused.code == -32003
    planned = rpc("LedgerRecovery.recover", {"recoveryPeers": [peer], "dryRun": True}, served.operator)
    assert isinstance(planned, Ok) and planned.result["plan"]["transactions"] == 0
    bad = rpc("LedgerRecovery.recover", {"recoveryPeers": ["O=Nobody, L=Nowhere, C=GB"]}, served.operator)
    assert isinstance(bad, Error) and bad.code == -32002 and "recoveryPeers" in bad.message
    results = rpc("LedgerRecovery.ledgerRecoveryResults", {"id": shipped.result["flowId"]}, served.monitor)
    assert isinstance(results, Ok) and results.result == []
    progress = rpc("LedgerRecovery.ledgerRecoveryProgress", [], served.monitor)
    assert isinstance(progress, Ok) and isinstance(progress.result, dict)
    unheld = rpc("LedgerRecovery.heldByNoPeer", [], served.monitor)
    assert isinstance(unheld, Ok) and isinstance(unheld.result, list)

    jolokia = JolokiaClient(served.url + "/jolokia", *served.operator)
    monitor = JolokiaClient(served.url + "/jolokia", *served.monitor)
    no = monitor.execute(mbean=LEDGER_RECOVERY, operation="recover(java.util.List)", arguments=[[peer]])
    assert no["status"] == 403 and no["error_type"] == "java.lang.SecurityException"
    yes = jolokia.execute(
        mbean=LEDGER_RECOVERY, operation="recover(java.util.List,java.lang.Boolean)", arguments=[[peer], True]
    )
    assert yes["status"] == 200 and yes["value"]["dryRun"] is True, yes
    read = monitor.execute(mbean=LEDGER_RECOVERY, operation="ledgerRecoveryProgress", arguments=[])
    assert read["status"] == 200 and isinstance(read["value"], dict)

    rows = [(e["user"], e["action"], e["outcome"].split(":")[0], e["surface"]) for e in served.audit()]
    assert rows == [
        ("operator", "LedgerRecoveryFlow", "dry run", "jsonrpc"),
        ("operator", "LedgerRecoveryFlow", "done", "jsonrpc"),
        ("monitor", "recover", "refused", "jsonrpc"),
        ("operator", "recover", "dry run", "jsonrpc"),
        ("operator", "recover", "error", "jsonrpc"),
        ("monitor", "recover", "refused", "jolokia"),
        ("operator", "recover", "dry run", "jolokia"),
    ]


def test_the_shell_starts_it_with_cordas_syntax(
    served_network: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = served_network
    peer = peers(served)[0]
    code, out, err = shell(
        served,
        f'flow start LedgerRecoveryFlow recoveryPeers: ["{peer}"], '
        'timeWindow: {fromTime: "2026-01-01T00:00:00Z"}, dryRun: true\n'
        f'flow start LedgerRecoveryFlow recoveryPeers: ["{peer}"], transactionRole: NOPE\n'
        f'run recover recoveryPeers: ["{peer}"]\n'
        "run ledgerRecoveryProgress\n",
        monkeypatch,
        capsys,
    )
    assert code == 1  # the second line was refused
    assert "Flow completed with result:" in out, (out, err)
    assert "totalRecoveredTransactions" in out
    assert "transactionRole" in err
    assert out.count('"dryRun": true') == 2 and out.rstrip().endswith("{}")  # recover's, then no progress
    rows = [(e["action"], e["outcome"].split(":")[0], e["surface"]) for e in served.audit()]
    assert rows == [
        ("LedgerRecoveryFlow", "dry run", "jsonrpc (shell)"),
        ("recover", "dry run", "jsonrpc (shell)"),  # the shell refused transactionRole NOPE itself
    ]


def client_for(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    address = served.url.removeprefix("http://")
    monkeypatch.setattr(
        cli,
        "_management",
        lambda config, user: ManagementClient(
            address, user, dict([served.operator, served.monitor])[user], tool="cli"
        ),
    )


def test_the_cli_plans_applies_and_reads_results(
    served_network: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served = served_network
    client_for(served, monkeypatch)
    config = str(served.config)
    one, two = peers(served)
    assert main(["recover", "--peer", one, "--peer", two, "--config", config]) == 0
    out = capsys.readouterr().out
    assert "LedgerSync first:" in out and "DIFFERENCES_NOT_FOUND, 0 missing" in out
    assert "Dry run" in out and one in out and two in out and "--apply" in out
    assert main(["recover", "--all-network-nodes", "--config", config, "--json"]) == 0
    assert '"dryRun": true' in capsys.readouterr().out
    argv = ["recover", "--peer", one, "--from", "2020-01-01T00:00:00Z", "--role", "PEER", "--apply"]
    assert main([*argv, "--config", config]) == 0
    captured = capsys.readouterr()
    assert "Recovered 0 transaction(s)" in captured.out and "0 error(s)" in captured.out
    (applied,) = [e for e in served.audit() if e["action"] == "recover" and e["outcome"].startswith("done")]
    flow_id = applied["target"].split(":")[0].removeprefix("flow ")
    monkeypatch.setattr(cli, "APPLY_WAIT_S", 0.0)  # 202 at once (most likely): followed to its end
    assert main(["recover", "--all-network-nodes", "--apply", "--config", config]) == 0
    followed = capsys.readouterr()
    assert "Recovered 0 transaction(s)" in followed.out and "0 error(s)" in followed.out, followed
    assert "0/0 transactions" in followed.err  # the progress, a line at a time (not a terminal)
    assert main(["recover", "--results", flow_id, "--config", config, "--user", "monitor"]) == 0
    assert "no results" in capsys.readouterr().out
    assert main(["recover", "--peer", one, "--config", config, "--user", "monitor"]) == 2
    assert "SecurityException" in capsys.readouterr().err
    assert main(["recover", "--peer", "O=Nobody, L=Nowhere, C=GB", "--config", config]) == 2
    assert "recoveryPeers" in capsys.readouterr().err

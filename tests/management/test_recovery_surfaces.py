"""Finality recovery on every surface of a served agent (issue 14): REST, JSON-RPC (jsonrpcclient),
Jolokia (the jolokia client), the shell and the CLI, with the reference's names, shapes and answers;
the read-only user refused, and every recovery call in the audit log.

The finality flows are real: node.conf keeps an injected failure of FinalityFlow for observation
(tests.management.test_hospital_surfaces), so an issuance stops HOSPITALIZED at AFTER_RECORD. An
issuance needs no notary: its transaction is already VERIFIED there, so every recovery answers false
("Recovery not possible for transaction with status VERIFIED"). A failed payment recovered (true) is
tests.test_finality_recovery_processes's, on agent processes through the same gate.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import yaml
from jolokia import JolokiaClient  # type: ignore[import-untyped]
from jsonrpcclient import Error, Ok, parse, request

from agent.client import cli
from agent.client.cli import main
from agent.client.launcher import ManagementClient
from tests.management.conftest import Served, rest, shell

FLOW_RPC_OPS = "ledgeragent:type=FlowRPCOps"
STATUS_OPS = "ledgeragent:type=NodeFlowStatusRpcOps"


def failed_issuance(served: Served) -> tuple[str, str]:
    """A finality flow kept HOSPITALIZED (its transaction VERIFIED): its flow id and tx id."""
    (flow_id,) = served.hospitalize(1)
    checkpoint = served.runtime.node.store.checkpoints.get_checkpoint(flow_id)
    assert checkpoint is not None and checkpoint.tx_id is not None
    return flow_id, str(checkpoint.tx_id)


def test_rest_queries_recovers_and_answers_with_the_references_lines(served: Served) -> None:
    flow_id, tx = failed_issuance(served)
    me = str(served.runtime.node.identity.name)
    info = rest(served, "GET", f"/api/finality/getFlowTransaction/{flow_id}", who="monitor")
    assert info.status_code == 200, info.text
    body = info.json()
    assert (body["stateMachineRunId"], body["txId"], body["status"], body["initiator"]) == (
        flow_id,
        tx,
        "VERIFIED",
        me,
    )
    assert rest(served, "GET", f"/api/finality/getFlowTransactionByTxnId/{tx}").json() == body
    missing = rest(served, "GET", f"/api/finality/getFlowTransactionByTxnId/{'A' * 64}")
    assert (missing.status_code, missing.json()["error"]) == (404, "TransactionNotFoundError")

    refused = rest(served, "POST", "/api/finality/recoverFinalityFlow", {"id": flow_id}, who="monitor")
    assert (refused.status_code, refused.json()["error"]) == (403, "SecurityException")
    done = rest(
        served,
        "POST",
        "/api/finality/recoverFinalityFlow",
        {"id": flow_id, "forceRecover": True, "reason": "kept at AFTER_RECORD"},
    )
    assert done.json() == {
        "id": flow_id,
        "recovered": False,
        "text": f"Failed to recover finality flow {flow_id}",
    }
    again = rest(served, "POST", "/api/finality/recoverFinalityFlowByTxnId", {"txnId": tx}).json()
    assert again == {"txnId": tx, "recovered": False, "text": f"Failed to recover finality flow {tx}"}
    by_ids = rest(served, "POST", "/api/finality/recoverFinalityFlows", {"ids": [flow_id, "no-such-flow"]})
    assert by_ids.json()["results"] == {flow_id: False, "no-such-flow": False}
    every = rest(served, "POST", "/api/finality/recoverAllFinalityFlows").json()
    assert every == {"results": {}, "text": "Recovered finality flow(s)\nResults: []"}  # none FAILED
    forced = rest(served, "POST", "/api/finality/recoverAllFinalityFlows", {"forceRecover": True}).json()
    assert forced == {
        "results": {flow_id: False},
        "text": f"Recovered finality flow(s)\nResults: [[{flow_id}]=false]",
    }
    by_ids = rest(served, "POST", "/api/finality/recoverFinalityFlowByTxnIds", {"txnIds": [tx]}).json()
    assert by_ids == {"results": {tx: False}, "text": f"Recovered finality flow(s)\nResults: [[{tx}]=false]"}
    empty = rest(served, "POST", "/api/finality/recoverFinalityFlowsMatching", {})
    assert empty.status_code == 400 and "at least one criterion" in empty.json()["message"]
    matching = rest(
        served,
        "POST",
        "/api/finality/recoverFinalityFlowsMatching",
        {"flowStartFromTime": "2023-12-04T10:15:30.00", "initiatedBy": me},
    )
    assert matching.json()["results"] == {}

    rows = [(e["user"], e["action"], e["outcome"].split(":")[0], e["surface"]) for e in served.audit()]
    recoveries = [r for r in rows if r[1].startswith("recover")]
    assert recoveries == [
        ("monitor", "recoverFinalityFlow", "refused", "rest"),
        ("operator", "recoverFinalityFlow", "not applied (false)", "rest"),
        ("operator", "recoverFinalityFlowByTxnId", "not applied (false)", "rest"),
        ("operator", "recoverFinalityFlows", "done", "rest"),
        ("operator", "recoverAllFinalityFlows", "done", "rest"),
        ("operator", "recoverAllFinalityFlows", "done", "rest"),
        ("operator", "recoverFinalityFlowByTxnIds", "done", "rest"),
        ("operator", "recoverFinalityFlowsMatching", "error", "rest"),
        ("operator", "recoverFinalityFlowsMatching", "done", "rest"),
    ]
    assert not any(r[1].startswith("getFlowTransaction") for r in rows)  # reads are not recorded
    outcomes = [e["outcome"] for e in served.audit() if e["action"] == "recoverAllFinalityFlows"]
    assert outcomes == ["done: 0 of 0 recovered", "done: 0 of 1 recovered"]
    (reasoned,) = [e for e in served.audit() if e["reason"] == "kept at AFTER_RECORD"]
    assert reasoned["target"] == flow_id


def test_the_dry_run_on_rest_the_shell_and_the_cli_changes_nothing(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flow_id, tx = failed_issuance(served)
    store = served.runtime.node.store

    def state() -> tuple[Any, ...]:
        return (
            sorted((str(s.stx.id), s.status.name) for s in store.transactions.iter_transactions()),
            sorted((c.flow_id, c.status.name, c.progress_step) for c in store.checkpoints.iter_checkpoints()),
        )

    before = state()
    # Its finality is HOSPITALIZED (live): left out unless forceRecover, as the recovery would.
    live = rest(served, "POST", "/api/finality/recoverFinalityDryRun", {"checkNotary": False})
    assert live.status_code == 200, live.text
    assert live.json()["plans"] == []
    forced = rest(
        served, "POST", "/api/finality/recoverFinalityDryRun", {"forceRecover": True, "txnIds": [tx]}
    ).json()
    (plan,) = forced["plans"]
    assert (plan["txId"], plan["flowId"], plan["action"], plan["running"]) == (
        tx,
        flow_id,
        "NOTHING",
        [flow_id],
    )
    assert plan["notarisation"] == "NOTARISED" and "VERIFIED here" in plan["reason"]
    assert forced["dryRun"] is True and "NOTHING 1" in forced["text"]
    by_id = rest(
        served, "POST", "/api/finality/recoverFinalityDryRun", {"ids": [flow_id], "forceRecover": True}
    )
    assert by_id.json()["plans"] == forced["plans"]
    monitor = rest(served, "POST", "/api/finality/recoverFinalityDryRun", {}, who="monitor")
    assert monitor.status_code == 200  # it changes nothing: a read
    assert state() == before
    assert not [e for e in served.audit() if e["action"] == "recoverFinalityDryRun"]

    code, out, err = shell(
        served,
        f"flow recoverAllFinality --dry-run --force-recover\nflow recoverFinalityByTxnId {tx} --dry-run\n"
        f"flow recoverFinalityFlows {flow_id} --dry-run --force-recover\n",
        monkeypatch,
        capsys,
    )
    assert (code, err) == (0, ""), err
    assert f"{tx} flow {flow_id}: NOTHING" in out and "Dry run: no finality flow to recover" in out
    assert out.count(f"{tx} flow {flow_id}: NOTHING") == 2  # all, and by flow ids

    address = served.url.removeprefix("http://")
    monkeypatch.setattr(
        cli,
        "_management",
        lambda config, user: ManagementClient(address, user, dict([served.operator])[user], tool="cli"),
    )
    config = str(served.config)
    assert main(["flow", "recoverAllFinality", "--dry-run", "--force-recover", "--config", config]) == 0
    printed = capsys.readouterr().out
    assert f"{tx} flow {flow_id}: NOTHING" in printed and "Nothing changed" in printed
    assert state() == before


def test_a_recovery_job_over_rest_and_the_cli(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flow_id, tx = failed_issuance(served)
    started = rest(
        served,
        "POST",
        "/api/finality/recoverFinalityJob",
        {"txnIds": [tx], "forceRecover": True, "reason": "r"},
    )
    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["Location"] == f"/api/finality/jobs/{job['jobId']}"
    assert (job["total"], job["user"], job["reason"]) == (1, "operator", "r")
    deadline = time.monotonic() + 30
    while not (now := rest(served, "GET", f"/api/finality/jobs/{job['jobId']}", who="monitor").json())[
        "finished"
    ]:
        assert time.monotonic() < deadline, now
        time.sleep(0.05)
    assert now["status"] == "COMPLETED"
    assert now["results"] == [
        {
            "key": flow_id,
            "txId": tx,
            "outcome": "notNeeded",
            "detail": "nothing to recover here (see the agent's log)",
        }
    ]
    listed = rest(served, "GET", "/api/finality/jobs").json()
    assert [j["jobId"] for j in listed] == [job["jobId"]]
    assert rest(served, "GET", "/api/finality/jobs/nope").status_code == 404
    refused = rest(served, "POST", "/api/finality/recoverFinalityJob", {}, who="monitor")
    assert refused.status_code == 403
    entries = [e for e in served.audit() if e["action"] == "recoverFinalityJob" and e["user"] == "operator"]
    # The start's entry (by the gate, after the command) and the job's own last entry, in either order.
    (entry,) = [e for e in entries if e["surface"] != "job"]
    (closing,) = [e for e in entries if e["surface"] == "job"]
    assert entry["outcome"] == "job started: 1 flow(s)" and entry["reason"] == "r"
    assert (closing["outcome"], closing["surface"], closing["role"], closing["reason"]) == (
        "job finished: 1 notNeeded",
        "job",
        "operator",
        "r",
    )
    assert closing["target"] == f"job {job['jobId']}: recoverFinality 1 transaction(s)"
    # The hospital's listing of jobs (flow jobs) shows recovery jobs too, with their kind.
    (every,) = rest(served, "GET", "/api/flows/bulk", who="monitor").json()
    assert (every["jobId"], every["kind"], every["name"], every["status"]) == (
        job["jobId"],
        "FinalityRecoveryJobFlow",
        "recoverFinalityJob",
        "COMPLETED",
    )
    assert every["counts"] == {"notNeeded": 1} and every["finishedAt"] is not None

    address = served.url.removeprefix("http://")
    monkeypatch.setattr(
        cli,
        "_management",
        lambda config, user: ManagementClient(address, user, dict([served.operator])[user], tool="cli"),
    )
    capsys.readouterr()
    config = str(served.config)
    assert main(["flow", "jobs", "--config", config]) == 0
    (header, row) = capsys.readouterr().out.splitlines()
    assert header.split()[:4] == ["jobId", "kind", "name", "action"]
    assert row.split()[:5] == [
        job["jobId"],
        "FinalityRecoveryJobFlow",
        "recoverFinalityJob",
        "recoverFinality",
        "COMPLETED",
    ]
    assert main(["flow", "jobs", job["jobId"], "--config", config]) == 0  # one job, by its id
    assert f"{tx} [{flow_id}] notNeeded" in capsys.readouterr().out
    args = ["flow", "recoverFinalityByTxnId", tx, "--wait", "--force-recover", "--config", config]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "COMPLETED, 1 of 1" in printed and f"{tx} [{flow_id}] notNeeded" in printed

    code, out, err = shell(
        served,
        f'flow recoverFinalityByTxnId {tx} --job --force-recover reason: "again"\n',
        monkeypatch,
        capsys,
    )
    assert (code, err) == (0, ""), err
    assert "Started finality recovery job" in out and f"{tx} [{flow_id}] notNeeded" in out
    assert len(rest(served, "GET", "/api/finality/jobs").json()) == 3
    code, out, err = shell(served, f"flow jobs {job['jobId']}\nflow jobs\n", monkeypatch, capsys)
    assert (code, err) == (0, ""), err
    assert f"Finality recovery job {job['jobId']}: COMPLETED, 1 of 1" in out
    assert out.count("FinalityRecoveryJobFlow") == 3  # the listing: every job, of this kind here


def test_json_rpc_and_jolokia_have_flow_rpc_ops_and_node_flow_status_rpc_ops(served: Served) -> None:
    flow_id, tx = failed_issuance(served)

    def rpc(method: str, params: Any, who: tuple[str, str]) -> Any:
        reply = requests.post(served.url + "/rpc", json=request(method, params=params), auth=who, timeout=60)
        return parse(reply.json())

    info = rpc("NodeFlowStatusRpcOps.getFlowTransaction", {"flowId": flow_id}, served.monitor)
    assert isinstance(info, Ok) and (info.result["txId"], info.result["status"]) == (tx, "VERIFIED")
    refused = rpc("FlowRPCOps.recoverAllFinalityFlows", {"forceRecover": True}, served.monitor)
    assert isinstance(refused, Error) and refused.code == -32003
    done = rpc("FlowRPCOps.recoverFinalityFlows", {"ids": [flow_id], "forceRecover": True}, served.operator)
    assert isinstance(done, Ok) and done.result == {flow_id: False}
    short = rpc("FlowRPCOps.recoverFinalityFlow", {"id": flow_id}, served.operator)  # an overload
    assert isinstance(short, Ok) and short.result is False
    bad = rpc("FlowRPCOps.recoverFinalityFlowByTxnId", {"txnId": "not-a-hash"}, served.operator)
    assert isinstance(bad, Error) and bad.code == -32002
    by_tx = rpc("NodeFlowStatusRpcOps.getFlowTransactionByTxnId", {"txnId": tx}, served.monitor)
    assert isinstance(by_tx, Ok) and by_tx.result == info.result
    none = rpc("NodeFlowStatusRpcOps.getFlowTransaction", {"flowId": "no-such-flow"}, served.monitor)
    assert isinstance(none, Ok) and none.result is None
    by_txs = rpc("FlowRPCOps.recoverFinalityFlowByTxnIds", {"txnIds": [tx]}, served.operator)
    assert isinstance(by_txs, Ok) and by_txs.result == {tx: False}
    me = str(served.runtime.node.identity.name)
    matching = rpc(
        "FlowRPCOps.recoverFinalityFlowsMatching",
        {"flowStartFromTime": None, "flowStartUntilTime": None, "initiatedBy": [me], "counterParties": None},
        served.operator,
    )
    assert isinstance(matching, Ok) and matching.result == {}

    jolokia = JolokiaClient(served.url + "/jolokia", *served.operator)
    monitor = JolokiaClient(served.url + "/jolokia", *served.monitor)
    no = monitor.execute(mbean=FLOW_RPC_OPS, operation="recoverFinalityFlowByTxnId", arguments=[tx])
    assert no["status"] == 403 and no["error_type"] == "java.lang.SecurityException"
    yes = jolokia.execute(
        mbean=FLOW_RPC_OPS,
        operation="recoverFinalityFlowByTxnId(java.lang.String,boolean)",
        arguments=[tx, True],
    )
    assert yes["status"] == 200 and yes["value"] is False  # VERIFIED: nothing to recover
    read = monitor.execute(mbean=STATUS_OPS, operation="getFlowTransactionByTxnId", arguments=[tx])
    assert read["status"] == 200 and read["value"]["status"] == "VERIFIED"
    assert read["value"]["stateMachineRunId"] == flow_id

    rows = [(e["user"], e["action"], e["outcome"].split(":")[0], e["surface"]) for e in served.audit()]
    assert rows == [
        ("monitor", "recoverAllFinalityFlows", "refused", "jsonrpc"),
        ("operator", "recoverFinalityFlows", "done", "jsonrpc"),
        ("operator", "recoverFinalityFlow", "not applied (false)", "jsonrpc"),
        ("operator", "recoverFinalityFlowByTxnId", "error", "jsonrpc"),
        ("operator", "recoverFinalityFlowByTxnIds", "done", "jsonrpc"),
        ("operator", "recoverFinalityFlowsMatching", "done", "jsonrpc"),
        ("monitor", "recoverFinalityFlowByTxnId", "refused", "jolokia"),
        ("operator", "recoverFinalityFlowByTxnId", "not applied (false)", "jolokia"),
    ]


def test_the_shell_and_the_cli_print_what_the_references_shell_prints(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flow_id, tx = failed_issuance(served)
    me = str(served.runtime.node.identity.name)
    code, out, err = shell(
        served,
        f"""flowStatus queryFinalityById {flow_id}
flowStatus queryFinalityByTxnId {tx}
flow recoverFinality {flow_id}
flow recoverFinality {flow_id} --force-recover reason: "kept at AFTER_RECORD"
flow recoverFinalityByTxnId {tx}
flow recoverAllFinality --force-recover
flow recoverFinalityFlows {flow_id} no-such-flow --force-recover reason: "both at once"
flow recoverFinalityByTxnIds {tx}
run recoverFinalityFlowByTxnIds txnIds: ["{tx}"]
flow recoverFinalityMatching \\
flowStartFromTime: "2023-12-04T10:15:30.00", \\
flowStartUntilTime: "2099-12-05T10:15:30.00Z", \\
initiatedBy: "{me}", \\
counterParties: ["{me}"]
""",
        monkeypatch,
        capsys,
    )
    lines = out.splitlines()
    assert lines[0].startswith(
        f"FlowTransactionInfo(stateMachineRunId=[{flow_id}], txId={tx}, status=VERIFIED, "
    )
    assert lines[0].endswith(f"initiator={me}, peers=[])") and "Z, initiator=" in lines[0]
    # Then the reference's YAML block: a list of one, the initiator as its x500Principal (RFC 2253).
    block = lines[1:10]
    assert block == [
        "---",
        "- stateMachineRunId:",
        f'    uuid: "{flow_id}"',
        f'  txId: "{tx}"',
        '  status: "VERIFIED"',
        "  initiator:",
        "    x500Principal:",
        f'      name: "{me.replace(", ", ",")}"',
        "  peers: []",  # an issuance has no peers
    ], out
    assert yaml.safe_load("\n".join(block)) == [
        {
            "stateMachineRunId": {"uuid": flow_id},
            "txId": tx,
            "status": "VERIFIED",
            "initiator": {"x500Principal": {"name": me.replace(", ", ",")}},
            "peers": [],
        }
    ]
    assert lines[10:20] == lines[0:10]  # by transaction id: the same
    assert lines[20:] == [
        f"Failed to recover finality flow {flow_id}",
        f"Failed to recover finality flow {flow_id}",
        f"Failed to recover finality flow {tx}",
        "Recovered finality flow(s)",
        f"Results: [[{flow_id}]=false]",
        "Recovered finality flow(s)",
        f"Results: [[{flow_id}]=false, [no-such-flow]=false]",
        "Recovered finality flow(s)",
        f"Results: [[{tx}]=false]",
        f'{{"{tx}": false}}',
        "Recovered finality flow(s)",
        "Results: []",
    ], out
    assert err == "" and code == 1  # 1: a recovery answered false
    shell_rows = [(e["action"], e["surface"]) for e in served.audit() if e["action"].startswith("recover")]
    assert [surface for _, surface in shell_rows] == ["jsonrpc (shell)"] * 8
    assert [action for action, _ in shell_rows][4:6] == [
        "recoverFinalityFlows",
        "recoverFinalityFlowByTxnIds",
    ]
    (both,) = [e for e in served.audit() if e["reason"] == "both at once"]
    assert both["action"] == "recoverFinalityFlows"

    address = served.url.removeprefix("http://")
    monkeypatch.setattr(
        cli,
        "_management",
        lambda config, user: ManagementClient(
            address, user, dict([served.operator, served.monitor])[user], tool="cli"
        ),
    )
    config = str(served.config)
    assert main(["flowStatus", "queryFinalityByTxnId", tx, "--config", config, "--user", "monitor"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(
        f"FlowTransactionInfo(stateMachineRunId=[{flow_id}], txId={tx}, status=VERIFIED"
    )
    assert printed.splitlines()[1:] == block
    assert main(["flowStatus", "queryFinalityById", "nope", "--config", config, "--json"]) == 1
    assert capsys.readouterr().out.strip() == "null"
    assert main(["flow", "recoverFinality", flow_id, "--config", config, "--user", "monitor"]) == 2
    assert "SecurityException" in capsys.readouterr().err
    argv = ["flow", "recoverFinalityByTxnId", tx, "--config", config, "--force-recover", "--reason", "r"]
    assert main(argv) == 1
    assert capsys.readouterr().out == f"Failed to recover finality flow {tx}\n"
    assert main(["flow", "recoverAllFinality", "--config", config, "--json"]) == 0
    assert '"results": {}' in capsys.readouterr().out
    argv = ["flow", "recoverFinalityFlows", flow_id, "no-such-flow", "--config", config, "--force-recover"]
    assert main(argv) == 1  # 1: not every one was recovered
    assert capsys.readouterr().out == (
        f"Recovered finality flow(s)\nResults: [[{flow_id}]=false, [no-such-flow]=false]\n"
    )
    argv = ["flow", "recoverFinalityByTxnIds", tx, "--config", config, "--reason", "r", "--json"]
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out)["results"] == {tx: False}
    argv = ["flow", "recoverFinalityByTxnIds", tx, "--config", config, "--dry-run", "--force-recover"]
    assert main(argv) == 0
    assert f"{tx} flow {flow_id}: NOTHING" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:  # argparse: one id at least
        main(["flow", "recoverFinalityFlows", "--config", config])
    assert usage.value.code == 2
    assert "the following arguments are required: id" in capsys.readouterr().err
    argv = [
        "flow",
        "recoverFinalityMatching",
        "--config",
        config,
        "--initiated-by",
        me,
        "--from-time",
        "2023-01-01",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().out == "Recovered finality flow(s)\nResults: []\n"
    cli_rows = [
        (e["user"], e["action"], e["outcome"].split(":")[0])
        for e in served.audit()
        if e["surface"] == "rest (cli)"
    ]
    assert cli_rows == [
        ("monitor", "recoverFinalityFlow", "refused"),
        ("operator", "recoverFinalityFlowByTxnId", "not applied (false)"),
        ("operator", "recoverAllFinalityFlows", "done"),
        ("operator", "recoverFinalityFlows", "done"),
        ("operator", "recoverFinalityFlowByTxnIds", "done"),
        ("operator", "recoverFinalityFlowsMatching", "done"),
    ]

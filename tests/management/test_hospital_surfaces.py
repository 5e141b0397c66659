"""The flow hospital's verbs on every surface of a served agent: REST, JSON-RPC (jsonrpcclient), Jolokia
(the jolokia client) and the shell; the roles, and the audit log that records every action and every
refusal with its user, reason, target, outcome and surface.

The patients are real: node.conf keeps an injected failure of FinalityFlow for observation, so each
issuance stops HOSPITALIZED at AFTER_RECORD; retried, it goes past the fault and completes.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from jolokia import JolokiaClient  # type: ignore[import-untyped]
from jsonrpcclient import Error, Ok, parse, request

from agent.flows.checkpoints import FlowStatus
from mbeans.model import Impact
from tests.management.conftest import Served, rest, shell, wait_until

HOSPITAL = "ledgeragent:type=FlowHospital"


def test_rest_lists_patients_with_their_history_and_retries_them_one_or_in_bulk(served: Served) -> None:
    first, second, third = served.hospitalize(3)
    listed = rest(served, "GET", "/api/hospital", who="monitor")
    assert listed.status_code == 200
    assert [p["flowId"] for p in listed.json()] == [first, second, third]
    patient = listed.json()[0]
    assert (patient["status"], patient["step"], patient["staff"], patient["errorType"]) == (
        "HOSPITALIZED",
        "AFTER_RECORD",
        "rules[0]",
        "InjectedFaultError",
    )
    assert [h["outcome"] for h in patient["history"]] == ["OBSERVATION"]
    filtered = rest(
        served, "GET", "/api/hospital?errorType=InjectedFaultError&minAttempts=1&flowName=FinalityFlow"
    )
    assert len(filtered.json()) == 3
    assert rest(served, "GET", "/api/hospital?minAttempts=2").json() == []
    assert rest(served, "GET", "/api/hospital?minAgeSeconds=3600").json() == []
    bad = rest(served, "GET", "/api/hospital?diagnosis=BAD")
    assert bad.status_code == 400 and bad.json()["error"] == "FlowArgumentError"
    assert (
        "filter diagnosis: 'BAD'" in bad.json()["message"]
        and "OVERNIGHT_OBSERVATION" in bad.json()["message"]
    )
    unknown = rest(served, "GET", "/api/hospital?colour=red")
    assert unknown.status_code == 400 and "colour" in unknown.json()["message"]
    one = rest(served, "GET", f"/api/hospital/{first}", who="monitor").json()
    assert one["flowId"] == first and one["history"][0]["errorType"] == "InjectedFaultError"
    assert rest(served, "GET", "/api/hospital/no-such-flow").status_code == 404

    refused = rest(served, "POST", f"/api/flows/retry/{first}", {"reason": "let me"}, who="monitor")
    assert refused.status_code == 403 and refused.json()["error"] == "SecurityException"
    assert served.status(first) is FlowStatus.HOSPITALIZED
    retried = rest(served, "POST", f"/api/flows/retry/{first}", {"reason": "contract installed"}, tool="cli")
    assert retried.json() == {"id": first, "retried": True}
    wait_until(lambda: served.status(first) is FlowStatus.COMPLETED, "the retried flow completed")
    assert rest(served, "POST", f"/api/flows/retry/{first}").json() == {"id": first, "retried": False}

    bulk = {"action": "retry", "filter": {"status": "HOSPITALIZED"}, "reason": "all of them now"}
    dry = rest(served, "POST", "/api/flows/bulk", bulk)
    assert dry.status_code == 200 and dry.json()["dryRun"] is True  # the default
    assert dry.json()["total"] == 2 and dry.json()["plans"] == {"retry: HOSPITALIZED -> RUNNABLE": 2}
    assert served.status(second) is FlowStatus.HOSPITALIZED
    no_reason = rest(served, "POST", "/api/flows/bulk", {"action": "retry", "filter": {}})
    assert no_reason.status_code == 400 and "'reason'" in no_reason.json()["message"]
    no_action = rest(served, "POST", "/api/flows/bulk", {"filter": {}, "reason": "x"})
    assert no_action.status_code == 400 and "'action'" in no_action.json()["message"]
    assert (
        rest(served, "POST", "/api/flows/bulk", {**bulk, "dryRun": False}, who="monitor").status_code == 403
    )
    started = rest(served, "POST", "/api/flows/bulk", {**bulk, "dryRun": False, "batchSize": 1})
    assert started.status_code == 202 and started.json()["total"] == 2
    location = started.headers["Location"]
    assert location == f"/api/flows/bulk/{started.json()['jobId']}"
    wait_until(lambda: rest(served, "GET", location, who="monitor").json()["finished"], "the job finished")
    job = rest(served, "GET", location).json()
    assert job["status"] == "COMPLETED" and job["counts"] == {"retried": 2}
    assert {r["flowId"] for r in job["results"]} == {second, third}
    assert [j["jobId"] for j in rest(served, "GET", "/api/flows/bulk", who="monitor").json()] == [
        job["jobId"]
    ]
    assert rest(served, "GET", "/api/flows/bulk/no-such-job").status_code == 404
    needs_reason = rest(served, "POST", "/api/flows/pauseAllHospitalized")
    assert needs_reason.status_code == 400 and "'reason'" in needs_reason.json()["message"]

    actions = [
        (e["user"], e["action"], e["reason"], e["outcome"].split(":")[0], e["surface"])
        for e in served.audit()
    ]
    assert actions == [
        ("monitor", "retryFlow", "let me", "refused", "rest"),
        ("operator", "retryFlow", "contract installed", "done (true)", "rest (cli)"),
        ("operator", "retryFlow", None, "not applied (false)", "rest"),
        ("operator", "bulkAction", "all of them now", "dry run", "rest"),
        ("operator", "bulkAction", None, "error", "rest"),
        ("operator", "bulkAction", "x", "error", "rest"),
        ("monitor", "bulkAction", "all of them now", "refused", "rest"),
        ("operator", "bulkAction", "all of them now", "job started", "rest"),
        ("operator", "bulkAction", "all of them now", "job finished", "job"),
        ("operator", "pauseAllHospitalized", None, "error", "rest"),
    ]
    log = served.audit()
    assert log[1]["target"] == first
    assert log[7]["target"] == f'job {job["jobId"]}: retry {{"status": "HOSPITALIZED"}}'
    by_monitor = rest(served, "GET", "/api/audit?user=monitor", who="monitor").json()
    assert [e["action"] for e in by_monitor] == ["bulkAction", "retryFlow"]  # newest first
    assert len(rest(served, "GET", "/api/audit?action=retryFlow&limit=2").json()) == 2


def test_json_rpc_and_jolokia_retry_patients_and_refuse_the_read_only_user(served: Served) -> None:
    first, second, third = served.hospitalize(3)

    def rpc(method: str, params: Any, who: tuple[str, str], tool: str | None = None) -> Any:
        headers = {"User-Agent": f"ledger-agent-{tool}/0.1.0"} if tool else None
        reply = requests.post(
            served.url + "/rpc", json=request(method, params=params), auth=who, headers=headers, timeout=30
        )
        return parse(reply.json())

    patients = rpc("FlowHospital.listPatients", {"filter": {"step": "AFTER_RECORD"}}, served.monitor)
    assert isinstance(patients, Ok) and [p["flowId"] for p in patients.result] == [first, second, third]
    history = rpc("FlowHospital.flowHistory", {"id": first}, served.monitor)
    assert isinstance(history, Ok) and history.result["history"][0]["staff"] == "rules[0]"
    refused = rpc(
        "FlowHospital.retryFlow", {"id": first, "reason": "from the shell"}, served.monitor, "shell"
    )
    assert isinstance(refused, Error) and refused.code == -32003
    assert refused.data == {"type": "SecurityException"}
    # A read-only user is refused before a bad argument is even looked at.
    early = rpc("FlowHospital.bulkAction", {"action": "nuke", "filter": 3, "reason": ""}, served.monitor)
    assert isinstance(early, Error) and early.code == -32003
    done = rpc("FlowHospital.retryFlow", {"id": first, "reason": "from JSON-RPC"}, served.operator, "shell")
    assert isinstance(done, Ok) and done.result is True
    wait_until(lambda: served.status(first) is FlowStatus.COMPLETED, "the retried flow completed")
    dry = rpc(
        "FlowHospital.bulkAction", ["retry", {"errorType": "InjectedFaultError"}, "a look"], served.operator
    )
    assert isinstance(dry, Ok) and dry.result["total"] == 2 and dry.result["dryRun"] is True

    jolokia = JolokiaClient(served.url + "/jolokia", *served.operator)
    jolokia_monitor = JolokiaClient(served.url + "/jolokia", *served.monitor)
    no = jolokia_monitor.execute(
        mbean=HOSPITAL,
        operation="retryFlow(java.lang.String,java.lang.String)",
        arguments=[second, "jolokia"],
    )
    assert no["status"] == 403 and no["error_type"] == "java.lang.SecurityException"
    yes = jolokia.execute(
        mbean=HOSPITAL,
        operation="retryFlow(java.lang.String,java.lang.String)",
        arguments=[second, "via Jolokia"],
    )
    assert yes["status"] == 200 and yes["value"] is True
    short = jolokia.execute(
        mbean=HOSPITAL, operation="retryFlow", arguments=[third]
    )  # the overload without a reason
    assert short["status"] == 200 and short["value"] is True
    listed = jolokia.execute(mbean=HOSPITAL, operation="listPatients()", arguments=[])
    assert listed["status"] == 200
    for flow_id in (first, second, third):
        wait_until(lambda f=flow_id: served.status(f) is FlowStatus.COMPLETED, "completed")  # type: ignore[misc]
    audit = jolokia_monitor.execute(mbean=HOSPITAL, operation="auditLog()", arguments=[])
    assert audit["status"] == 200  # read-only users may read the audit log

    rows = [
        (e["user"], e["action"], e["reason"], e["outcome"].split(":")[0], e["surface"])
        for e in audit["value"]
    ]
    assert rows[::-1] == [
        ("monitor", "retryFlow", "from the shell", "refused", "jsonrpc (shell)"),
        ("monitor", "bulkAction", "", "refused", "jsonrpc"),
        ("operator", "retryFlow", "from JSON-RPC", "done (true)", "jsonrpc (shell)"),
        ("operator", "bulkAction", "a look", "dry run", "jsonrpc"),
        ("monitor", "retryFlow", "jolokia", "refused", "jolokia"),
        ("operator", "retryFlow", "via Jolokia", "done (true)", "jolokia"),
        ("operator", "retryFlow", None, "done (true)", "jolokia"),
    ]


def test_every_action_of_every_bean_is_refused_to_a_read_only_user_and_recorded(served: Served) -> None:
    actions = [
        (bean.name.canonical, op)
        for bean in served.registry.query()
        for overloads in bean.operations.values()
        for op in overloads
        if op.impact is Impact.ACTION
    ]
    audited = [(mbean, op) for mbean, op in actions if op.checks_caller]
    assert len(audited) >= 20  # the catalogue's commands that act, each overload
    for mbean, op in actions:
        arguments = [None] * len(op.parameters)
        reply = requests.post(
            served.url + "/rpc",
            json=request("exec", params={"mbean": mbean, "operation": op.signature, "arguments": arguments}),
            auth=served.monitor,
            timeout=30,
        )
        answer = parse(reply.json())
        assert isinstance(answer, Error) and answer.code == -32003, (mbean, op.signature, answer)
    refusals = [e for e in served.audit() if e["outcome"].startswith("refused")]
    assert len(refusals) == len(audited)
    assert {e["action"] for e in refusals} >= {
        "killFlow",
        "pauseFlow",
        "resumeFlow",
        "retryFlow",
        "pauseAll",
        "pauseAllHospitalized",
        "retryAllPaused",
        "retryAllPausedHospitalized",
        "bulkAction",
        "ScheduleReconciliationFlow",
        "PayTokensFlow",
    }
    assert all(e["user"] == "monitor" and e["role"] == "read-only" for e in refusals)


def test_the_shell_speaks_corda_enterprises_verbs(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = served.hospitalize(2)
    code, out, err = shell(
        served,
        f"""flow hospital
flow hospital {first}
flow hospital minAttempts: 2
flow bulk pause status: HOSPITALIZED, reason: "a look first"
flow pauseAllHospitalized reason: "maintenance window"
flow pauseAllHospitalized
flow retry {first} reason: "one first"
flow retryAllPausedHospitalized reason: "maintenance over"
flow jobs
audit action: pauseAllHospitalized
""",
        monkeypatch,
        capsys,
    )
    assert err.splitlines() == [
        "Error: pauseAllHospitalized parameter 'reason': None is not allowed; "
        'required: the audit log keeps why (reason: "...")'
    ], err
    assert code == 1  # the bulk verb without a reason
    blocks = out.split("\n\n")
    lines = out.splitlines()
    assert lines[0].split() == [
        "flowId",
        "flowName",
        "status",
        "step",
        "staff",
        "errorType",
        "attempts",
        "inHospital",
        "waitingFor",
    ]
    assert lines[1].split()[:7] == [
        first,
        "FinalityFlow",
        "HOSPITALIZED",
        "AFTER_RECORD",
        "rules[0]",
        "InjectedFaultError",
        "1",
    ]
    assert lines[2].split()[0] == second
    assert f"flowId       {first}" in out and "OBSERVATION" in out and blocks
    assert "No flows in the hospital" in out
    assert "Dry run: pause on 2 flow(s) matching" in out and "pause: HOSPITALIZED -> PAUSED" in out
    assert "Nothing changed (a dry run); add dryRun: false to do it." in out
    started = [line for line in lines if line.startswith("Started bulk job ")]
    finished = [line for line in lines if line.startswith("job ") and " COMPLETED: " in line]
    assert len(started) == 2 and len(finished) == 2
    assert "2/2 processed (2 paused)" in finished[0]
    assert f"Retried flow [{first}]" in lines
    assert "1/1 processed (1 retried)" in finished[1]  # the other was retried on its own
    assert "retryAllPausedHospitalized" in out and "pauseAllHospitalized" in out  # flow jobs's table
    wait_until(lambda: all(served.status(f) is FlowStatus.COMPLETED for f in (first, second)), "completed")
    audit_lines = [line for line in lines if "maintenance window" in line and "  job " in line]
    assert len(audit_lines) == 2  # `audit`'s table: the job's end, then its start, both with the reason
    assert "job finished: 2 paused" in audit_lines[0] and "  job  " in audit_lines[0]
    assert "job started: 2 flow(s)" in audit_lines[1] and "jsonrpc (shell)" in audit_lines[1]

"""Operators and the flow hospital on a real agent process: hospitalised flows found and retried from
`ledger-agent`, REST, JSON-RPC (jsonrpcclient), Jolokia (pyjolokia) and the shell; a read-only user
refused on each surface; a bulk dry run, then a bulk job whose agent is killed by its PID mid-job and
started again, the job finishing with a result per flow, followed by a `ledger-agent` started after
the restart; every action and refusal in the audit log with its reason.

The patients are real: node.conf keeps an injected failure of FinalityFlow for observation (a
flowHospital rule), so each issuance stops HOSPITALIZED at AFTER_RECORD; retried, it goes past the
fault and completes. Every process is stopped by its own PID; every wait is a poll with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyjolokia  # type: ignore[import-untyped]
import pytest
import requests
from jsonrpcclient import Error, Ok, parse, request

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MONITOR_PASSWORD_FILE,
    OPERATOR_USER,
    NodeLayout,
    default_node_names,
    init_network,
)
from tests.endpoints import ca_file, management

DEADLINE_S = 60.0
HOSPITAL = "ledgeragent:type=FlowHospital"
KEEP_INJECTED_FAILURES = """
flowHospital.rules = [{ match = InjectedFaultError, action = observe }]
faultInjection = ["FinalityFlow.AFTER_RECORD=fail"]
"""


@dataclass
class Agent:
    node: NodeLayout
    process: AgentProcess

    @property
    def client(self) -> ManagementClient:
        return self.process.management

    @property
    def url(self) -> str:
        """https://host:port, from node.conf (managementSsl is on by default)."""
        base, _ = management(self.node.config)
        assert base.startswith("https://"), base
        return base

    @property
    def ca_file(self) -> str:
        """The network root the management certificate is checked against (requests' verify=)."""
        return str(ca_file(self.node.config))

    @property
    def operator(self) -> tuple[str, str]:
        return OPERATOR_USER, read_password(self.node.folder)

    @property
    def monitor(self) -> tuple[str, str]:
        return "monitor", (self.node.folder / MONITOR_PASSWORD_FILE).read_text().strip()

    def cli(self, *words: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """`ledger-agent <words> --config <node.conf>` as its own process (shell: no --config added)."""
        config = ["--config", str(self.node.config)]
        args = [*words, *config] if words[0] != "flow" else [words[0], words[1], *config, *words[2:]]
        env = {k: v for k, v in os.environ.items() if k != "LEDGER_AGENT_PASSWORD"}
        return subprocess.run(
            [sys.executable, "-m", "agent", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )

    def hospitalize(self, n: int) -> list[str]:
        """n issuances to this node itself, each kept for observation at AFTER_RECORD: their flows' ids."""
        me = str(self.node.name)
        ids = []
        for _ in range(n):
            body = {"holdings": [{"owner": me, "amount": 5}], "currency": "GBP", "timeout": 0.3}
            accepted = self.client.call("POST", "/api/flows/issue", body)  # 202: the flow goes on
            ids.append(accepted["flowId"])
        wait_until(
            lambda: {p["flowId"] for p in self.client.patients(status="HOSPITALIZED")} >= set(ids),
            "every issuance hospitalized",
            self.client.flows,
        )
        return ids

    def status(self, flow_id: str) -> str:
        return str(self.client.patient(flow_id)["status"])


def wait_until(condition: Callable[[], bool], what: str, show: Callable[[], Any] = lambda: None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    pause = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {DEADLINE_S:.0f} s: {show()}")
        pause.wait(0.1)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    """PartyA's agent alone (its issuances to itself need no peer and no notary)."""
    layout = init_network(
        tmp_path / "net", default_node_names(1), DEFAULT_NOTARY, base_port=free_port_range(4)
    )
    node = layout.nodes[1]
    with node.config.open("a") as conf:
        conf.write(KEEP_INJECTED_FAILURES)
    client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
    process = AgentProcess(node.config, node.folder / "agent.log", client)
    process.start()
    try:
        process.wait_ready()
        yield Agent(node, process)
    finally:
        process.stop()


def jolokia(agent: Agent, who: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> pyjolokia.Jolokia:
    """pyjolokia, its credentials given to urllib (its own auth() is broken on Python 3: docs/management.md)."""
    passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
    passwords.add_password(None, agent.url, who[0], who[1], is_authenticated=True)
    checked = urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=agent.ca_file))
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords), checked)
    monkeypatch.setattr(pyjolokia, "urlopen", opener.open)
    return pyjolokia.Jolokia(agent.url + "/jolokia")


def rpc(agent: Agent, method: str, params: Any, who: tuple[str, str]) -> Any:
    reply = requests.post(
        agent.url + "/rpc",
        json=request(method, params=params),
        auth=who,
        timeout=30,
        verify=agent.ca_file,
    )
    return parse(reply.json())


def test_a_hospitalized_flow_is_found_and_retried_from_every_surface(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = agent.hospitalize(5)
    by_cli, by_rest, by_rpc, by_jolokia, by_shell = ids

    # Found: `ledger-agent flow hospital`, as JSON and as a table, and one flow's history.
    found = agent.cli(
        "flow", "hospital", "--status", "HOSPITALIZED", "--error-type", "InjectedFaultError", "--json"
    )
    assert found.returncode == 0, found.stderr
    patients = json.loads(found.stdout)
    assert [p["flowId"] for p in patients] == ids
    assert {(p["staff"], p["diagnosis"], p["step"], p["attempts"]) for p in patients} == {
        ("rules[0]", "OVERNIGHT_OBSERVATION", "AFTER_RECORD", 1)
    }
    table = agent.cli("flow", "hospital").stdout.splitlines()
    assert table[0].split()[:4] == ["flowId", "flowName", "status", "step"]
    assert [line.split()[0] for line in table[1:]] == ids
    history = agent.cli("flow", "hospital", by_cli)
    assert history.returncode == 0 and f"flowId       {by_cli}" in history.stdout
    assert "OBSERVATION" in history.stdout and "InjectedFaultError" in history.stdout
    assert agent.cli("flow", "hospital", "--min-attempts", "2", "--json").stdout.strip() == "[]"

    # A read-only user may look, not act: refused on every surface, and each refusal recorded.
    assert len(json.loads(agent.cli("flow", "hospital", "--user", "monitor", "--json").stdout)) == 5
    refused = agent.cli("flow", "retry", by_cli, "--user", "monitor", "--reason", "I am only watching")
    assert (
        refused.returncode == 2
        and "SecurityException" in refused.stderr
        and "operator role" in refused.stderr
    )
    no_rpc = rpc(agent, "FlowHospital.retryFlow", {"id": by_rpc, "reason": "watching"}, agent.monitor)
    assert isinstance(no_rpc, Error) and no_rpc.code == -32003
    watcher = jolokia(agent, agent.monitor, monkeypatch)
    no_jolokia = watcher.request(
        type="exec",
        mbean=HOSPITAL,
        operation="retryFlow(java.lang.String,java.lang.String)",
        arguments=[by_jolokia, "watching"],
    )
    assert no_jolokia["status"] == 403 and no_jolokia["error_type"] == "java.lang.SecurityException"
    assert all(agent.status(i) == "HOSPITALIZED" for i in ids)

    # Retried, each from its own surface.
    done = agent.cli("flow", "retry", by_cli, "--reason", "the contract is installed")
    assert (done.returncode, done.stdout.strip()) == (0, f"Retried flow [{by_cli}]")
    reply = requests.post(
        f"{agent.url}/api/flows/retry/{by_rest}",
        json={"reason": "retried over REST"},
        auth=agent.operator,
        timeout=30,
        verify=agent.ca_file,
    )
    assert reply.status_code == 200 and reply.json() == {"id": by_rest, "retried": True}
    yes_rpc = rpc(
        agent, "FlowHospital.retryFlow", {"id": by_rpc, "reason": "retried over JSON-RPC"}, agent.operator
    )
    assert isinstance(yes_rpc, Ok) and yes_rpc.result is True
    yes_jolokia = jolokia(agent, agent.operator, monkeypatch).request(
        type="exec",
        mbean=HOSPITAL,
        operation="retryFlow(java.lang.String,java.lang.String)",
        arguments=[by_jolokia, "retried over Jolokia"],
    )
    assert yes_jolokia["status"] == 200 and yes_jolokia["value"] is True
    shell = agent.cli("shell", stdin=f'flow retry {by_shell} reason: "retried from the shell"\n')
    assert (shell.returncode, shell.stdout.strip(), shell.stderr) == (0, f"Retried flow [{by_shell}]", "")
    wait_until(lambda: all(agent.status(i) == "COMPLETED" for i in ids), "every retried flow completed")
    again = agent.cli("flow", "retry", by_cli, "--reason", "once more")
    assert again.returncode == 1 and "it is not HOSPITALIZED or PAUSED" in again.stdout

    audit = agent.cli("audit", "--action", "retryFlow", "--json")  # the issuances are there too
    assert audit.returncode == 0, audit.stderr
    rows = [
        (e["user"], e["action"], e["target"], e["reason"], e["outcome"].split(":")[0], e["surface"])
        for e in json.loads(audit.stdout)
    ]
    assert rows[::-1] == [
        ("monitor", "retryFlow", by_cli, "I am only watching", "refused", "rest (cli)"),
        ("monitor", "retryFlow", by_rpc, "watching", "refused", "jsonrpc"),
        ("monitor", "retryFlow", by_jolokia, "watching", "refused", "jolokia"),
        ("operator", "retryFlow", by_cli, "the contract is installed", "done (true)", "rest (cli)"),
        ("operator", "retryFlow", by_rest, "retried over REST", "done (true)", "rest"),
        ("operator", "retryFlow", by_rpc, "retried over JSON-RPC", "done (true)", "jsonrpc"),
        ("operator", "retryFlow", by_jolokia, "retried over Jolokia", "done (true)", "jolokia"),
        ("operator", "retryFlow", by_shell, "retried from the shell", "done (true)", "jsonrpc (shell)"),
        ("operator", "retryFlow", by_cli, "once more", "not applied (false)", "rest (cli)"),
    ]
    readable = agent.cli("audit", "--user", "monitor", "--by", "monitor")
    assert readable.returncode == 0 and len(readable.stdout.splitlines()) == 1 + 3  # read-only may read it


def test_a_bulk_job_finishes_after_its_agent_is_killed_by_pid_mid_job(agent: Agent) -> None:
    ids = agent.hospitalize(6)
    held = agent.cli(
        "flow", "pauseAllHospitalized", "--reason", "hold them while we fix it", "--wait", "--json"
    )
    assert held.returncode == 0, held.stderr
    assert json.loads(held.stdout)["counts"] == {"paused": 6}
    assert all(agent.status(i) == "PAUSED" for i in ids)

    # The dry run first: nothing changes. A kill is only ever what an operator asks for.
    dry = agent.cli(
        "flow", "bulk", "retry", "--status", "PAUSED", "--reason", "the fix is in", "--dry-run", "--json"
    )
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert (plan["dryRun"], plan["total"], plan["plans"]) == (True, 6, {"retry: PAUSED -> RUNNABLE": 6})
    assert [s["flowId"] for s in plan["sample"]] == ids
    killing = agent.cli("flow", "bulk", "kill", "--flow-name", "FinalityFlow", "--reason", "no", "--dry-run")
    assert "kill: PAUSED -> KILLED" in killing.stdout and "Nothing changed (a dry run)" in killing.stdout
    assert all(agent.status(i) == "PAUSED" for i in ids)

    # The job: one flow a batch, two seconds apart, so the agent can be killed between two batches.
    started = agent.cli(
        "flow",
        "bulk",
        "retry",
        "--status",
        "PAUSED",
        "--reason",
        "the fix is in",
        "--batch-size",
        "1",
        "--batch-interval",
        "2",
        "--json",
    )
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["jobId"]
    wait_until(lambda: agent.client.job(job_id)["processed"] >= 1, "the job's first batch done")
    pid = agent.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert agent.process.wait_exit(30) == -signal.SIGKILL
    mid = agent.client  # nothing answers now: the job was cut off between two of its six batches
    mid.close()
    log_before = agent.process.log_path.read_text()
    agent.process.start()
    agent.process.wait_ready()
    assert (
        f"resuming flow {job_id} (BulkFlowActionFlow)"
        in agent.process.log_path.read_text()[len(log_before) :]
    )
    resumed = agent.client.job(job_id)
    assert 1 <= resumed["processed"] < 6 and not resumed["finished"]

    # A new caller follows it to the end.
    followed = agent.cli("flow", "jobs", job_id, "--wait", "--json")
    assert followed.returncode == 0, followed.stderr
    job = json.loads(followed.stdout)
    assert (job["status"], job["total"], job["processed"], job["counts"]) == (
        "COMPLETED",
        6,
        6,
        {"retried": 6},
    )
    assert [r["flowId"] for r in job["results"]] == ids
    assert all(
        (r["from"], r["to"]) in {("PAUSED", "RUNNABLE"), ("RUNNABLE", "RUNNABLE")} for r in job["results"]
    )
    wait_until(lambda: all(agent.status(i) == "COMPLETED" for i in ids), "every retried flow completed")
    table = agent.cli("flow", "jobs", job_id)
    assert table.returncode == 0 and "6/6 processed (6 retried)" in table.stdout
    assert all(i in table.stdout for i in ids)

    entries = json.loads(agent.cli("audit", "--json").stdout)
    mine = [(e["action"], e["outcome"], e["surface"], e["reason"]) for e in entries if job_id in e["target"]]
    assert mine == [
        ("bulkAction", "job finished: 6 retried", "job", "the fix is in"),
        ("bulkAction", "job started: 6 flow(s)", "rest (cli)", "the fix is in"),
    ]
    looked = [e for e in entries if e["outcome"].startswith("dry run")]
    assert [(e["reason"], e["target"].split()[0]) for e in looked] == [
        ("no", "kill"),
        ("the fix is in", "retry"),
    ]

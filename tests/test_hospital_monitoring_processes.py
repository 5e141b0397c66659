"""The flow hospital's monitoring on real agent processes, scraped by a real Prometheus.

PartyA's node.conf keeps a flow that an injected fault fails (`flowHospital.rules`) and fails every
FinalityFlow right after AFTER_RECORD (`faultInjection`): its payment becomes a real patient,
HOSPITALIZED. PartyB pays while the notary is stopped: its payment is retried by the staff for ever (a
chronic member), a real RUNNABLE patient with retries. Then /metrics, `ledger-agent check` (a process of
its own, by its thresholds), the Flow hospital rows' queries and the alerts' expressions in Prometheus,
and the patient leaving when killed. Every process is stopped by its PID; every wait is a poll with a
deadline, never a sleep.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    OPERATOR_USER,
    NetworkLayout,
    NodeLayout,
    default_node_names,
    init_network,
)
from grafana import hospital_rows
from mbeans import metrics as m
from tests.agent_processes import scrape, value
from tests.test_grafana import concrete, dashboards, row_targets
from tests.test_monitoring_processes import Prometheus, scrape_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus is not installed (.ci/run installs it)"
    ),
]

A, B, C = (str(n) for n in default_node_names(3))
NOTARY = str(DEFAULT_NOTARY)
ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 30.0
KEPT = {"status": "HOSPITALIZED", "diagnosis": "OVERNIGHT_OBSERVATION", "staff": "rules[0]"}


def wait_until(what: str, condition: Callable[[], Any]) -> Any:
    """condition's first truthy answer, polled until DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    pause = threading.Event()
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE_S:.0f} s")
        pause.wait(0.1)


def node_of(layout: NetworkLayout, name: str) -> NodeLayout:
    return next(n for n in layout.nodes if str(n.name) == name)


def check(node: NodeLayout, *thresholds: str) -> tuple[int, str]:
    """`ledger-agent check` in a process of its own, as a monitoring system runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", "check", "--config", str(node.config), *thresholds],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.count("\n") == 1, done.stdout + done.stderr
    return done.returncode, done.stdout.strip()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[NetworkLayout, dict[str, AgentProcess]]]:
    layout = init_network(
        tmp_path / "net", default_node_names(3), DEFAULT_NOTARY, base_port=free_port_range(8)
    )
    with node_of(layout, A).config.open("a") as conf:
        conf.write("flowHospital.rules = [{ match = InjectedFaultError, action = observe }]\n")
        conf.write('faultInjection = ["FinalityFlow.AFTER_RECORD=fail"]\n')
    processes = {
        str(node.name): AgentProcess(
            node.config,
            node.folder / "agent.log",
            ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder)),
        )
        for node in layout.nodes
    }
    try:
        for proc in processes.values():
            proc.start()
        for proc in processes.values():
            proc.wait_ready()
        yield layout, processes
    finally:
        for proc in processes.values():
            proc.stop()


@pytest.fixture
def prometheus(
    tmp_path: Path, network: tuple[NetworkLayout, dict[str, AgentProcess]]
) -> Iterator[Prometheus]:
    started = Prometheus(tmp_path / "prometheus", scrape_config(network[0]))
    started.start()  # its target sync overlaps the work of the test
    try:
        yield started
    finally:
        assert started.stop() == 0, started.log.read_text()[-3000:]


def test_a_real_patient_in_metrics_the_check_plugin_prometheus_and_the_alerts(
    network: tuple[NetworkLayout, dict[str, AgentProcess]], prometheus: Prometheus
) -> None:
    layout, processes = network
    node_a, node_b = node_of(layout, A), node_of(layout, B)
    a, b = processes[A].management, processes[B].management
    # Nobody in the hospital yet: no patient, no admission, retries counted from 0.
    quiet = scrape(node_a)
    assert not m.HOSPITAL_EVENT_NAMES & set(quiet)
    assert value(quiet, m.HOSPITAL_RETRIES, staff="DeadlockNurse") == 0
    assert check(node_a, "--patients-warning", "0")[0] == 0

    # PartyB issues (its own FinalityFlow has no fault); PartyA's payment fails after AFTER_RECORD and
    # node.conf's rules[0] keeps it for observation instead of letting it fail.
    b.issue([(A, 100), (B, 50)], "GBP")
    paid = a.pay(B, 10, "GBP", B, wait=2)
    kept = wait_until("PartyA's payment HOSPITALIZED", lambda: a.flows(status="HOSPITALIZED"))
    assert [(f["txId"].upper(), f["step"]) for f in kept] == [(paid.upper(), "AFTER_RECORD")]

    samples = wait_until(
        "PartyA's patient in /metrics", lambda: (s := scrape(node_a)) and m.HOSPITAL_PATIENTS.name in s and s
    )
    assert samples[m.HOSPITAL_PATIENTS.name] == [(KEPT, 1)]
    assert value(samples, m.HOSPITAL_PATIENT_ATTEMPTS_MAX, **KEPT) == 1
    assert value(samples, m.HOSPITAL_ADMISSIONS, staff="rules[0]", diagnosis="OVERNIGHT_OBSERVATION") == 1
    assert value(samples, m.FLOWS, status="HOSPITALIZED") == 1
    assert "rules[0]" not in {s["staff"] for s, _ in samples[m.HOSPITAL_RETRIES.name]}  # observe: no retries
    first_age = value(samples, m.HOSPITAL_OLDEST_PATIENT_AGE, **KEPT)
    assert first_age is not None and first_age >= 0
    # The age is measured at each scrape: it grows while the patient stays.
    wait_until(
        "the patient's age to grow",
        lambda: (value(scrape(node_a), m.HOSPITAL_OLDEST_PATIENT_AGE, **KEPT) or 0) > first_age + 0.5,
    )
    assert m.HOSPITAL_PATIENTS.name not in scrape(node_b)

    # The plugin, by its thresholds: WARNING and CRITICAL on the count, OK and WARNING on the age.
    code, line = check(node_a, "--patients-warning", "0", "--patients-critical", "5")
    assert code == 1 and line.startswith(
        "LEDGERAGENT WARNING - 1 patient in the flow hospital, the oldest for "
    ), line
    assert "(rules[0]: OVERNIGHT_OBSERVATION, HOSPITALIZED) | patients=1;0;5;0; oldest_patient_age=" in line
    code, line = check(node_a, "--patients-warning", "0", "--patients-critical", "0")
    assert code == 2 and line.startswith("LEDGERAGENT CRITICAL - 1 patient"), line
    assert check(node_a, "--oldest-patient-warning", "3600", "--oldest-patient-critical", "86400")[0] == 0
    assert check(node_a, "--oldest-patient-warning", "0.5")[0] == 1  # it has been in for over 0.5 s
    assert check(node_b, "--patients-warning", "0", "--patients-critical", "5")[0] == 0

    # PartyB pays while the notary is down: DoctorTimeout retries it for ever (RUNNABLE, DISCHARGE).
    assert processes[NOTARY].stop() == 0
    b.pay(C, 5, "GBP", B, wait=1)
    retried = wait_until(
        "PartyB's payment retried",
        lambda: [g for g in scrape(node_b).get(m.HOSPITAL_PATIENTS.name, []) if g[0]["status"] == "RUNNABLE"],
    )
    ((group, count),) = retried
    assert group["diagnosis"] == "DISCHARGE" and count == 1
    assert group["staff"] == "DoctorTimeout", group  # the notary did not answer: chronic, for ever
    assert (value(scrape(node_b), m.HOSPITAL_RETRIES, staff=group["staff"]) or 0) >= 1

    # Prometheus: the patients, every query of the Flow hospital rows returns data, FlowsHospitalized
    # is pending (it fires after 5 minutes), and FlowRetryLoop's expression finds PartyB's loop.
    instance_a, instance_b = node_a.management_address, node_b.management_address
    prometheus.wait_for(
        f'{m.HOSPITAL_PATIENTS.name}{{instance="{instance_a}", status="HOSPITALIZED"}} == 1', "A's patient"
    )
    prometheus.wait_for(
        f'{m.HOSPITAL_PATIENTS.name}{{instance="{instance_b}", status="RUNNABLE"}} == 1', "B's patient"
    )
    # rate() needs two samples of each counter in its window.
    # The node dashboard's rate panels are queried for A: its counters need two samples as well.
    for instance, who in ((instance_b, "B's"), (instance_a, "A's")):
        for counter in (m.HOSPITAL_ADMISSIONS, m.HOSPITAL_RETRIES):
            prometheus.wait_for(
                f'count_over_time({counter.name}{{instance="{instance}"}}[30s]) > 1', f"{who} {counter.name}"
            )
    empty = []
    for name, dashboard in dashboards().items():
        node = instance_a if "node" in name else ".*"
        for row, title, target in row_targets(dashboard):
            if row != hospital_rows.TITLE:
                continue
            expr = concrete(target["expr"], node)
            if not prometheus.query(expr):
                empty.append(f"{name} / {title}: {expr}")
    assert empty == [], "Flow hospital panels without data:\n" + "\n".join(empty)
    alerts = prometheus.wait_for(
        f'ALERTS{{alertname="FlowsHospitalized", instance="{instance_a}"}}', "FlowsHospitalized pending"
    )
    assert [a["metric"]["alertstate"] for a in alerts] == ["pending"]
    (loop,) = [
        r
        for path in sorted((ROOT / "alerts").glob("*.rules.yml"))
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "FlowRetryLoop"
    ]
    assert loop["expr"].endswith("> 1800")
    found = prometheus.wait_for(loop["expr"].replace("> 1800", ">= 0"), "FlowRetryLoop's series")
    assert [(r["metric"]["instance"], r["metric"]["staff"]) for r in found] == [(instance_b, group["staff"])]

    # PartyA's patient is killed: it leaves the hospital; the counter keeps the admission.
    assert a.kill_flow(kept[0]["flowId"])
    after = wait_until(
        "PartyA's patient gone from /metrics",
        lambda: (s := scrape(node_a)) and m.HOSPITAL_PATIENTS.name not in s and s,
    )
    assert value(after, m.HOSPITAL_ADMISSIONS, staff="rules[0]", diagnosis="OVERNIGHT_OBSERVATION") == 1
    assert value(after, m.FLOWS, status="HOSPITALIZED") == 0
    assert check(node_a, "--patients-warning", "0", "--patients-critical", "0")[0] == 0

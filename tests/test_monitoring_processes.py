"""A real Prometheus scraping real agent processes: /metrics with basic auth, every dashboard panel's
query returning data, the alert rules evaluating without error. (The flow hospital's gauges and panels
need a patient: tests/test_hospital_monitoring_processes.py makes one.)

The network trades, PartyA is restored from a backup and reconciles with its peers (so the
missing-transaction gauges have something to count), and Prometheus (Debian's package) scrapes every
agent each second over HTTPS, checking its certificate against the CA file the printed scrape config
names (tls_config.ca_file). Every process is stopped by its PID; every wait is a poll with a deadline.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pyjolokia  # type: ignore[import-untyped]
import pytest
import requests
import yaml
from jolokia import JolokiaClient  # type: ignore[import-untyped]
from jsonrpcclient import Ok, parse, request

from agent.client.demo import prometheus_scrape_configs, sqlite_file, wait_until_reconciled
from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MONITOR_PASSWORD_FILE,
    MONITOR_USER,
    OPERATOR_USER,
    NetworkLayout,
    NodeLayout,
    default_node_names,
    init_network,
)
from agent.store.database import backup_sqlite
from grafana import hospital_rows, ledger_recovery_rows
from mbeans import metrics as m
from tests.endpoints import ca_file, management
from tests.test_grafana import concrete, dashboards, row_targets

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus is not installed (.ci/run installs it)"
    ),
]

A, B, C = (str(n) for n in default_node_names(3))
ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 30.0


class Prometheus:
    """One `prometheus` process on 127.0.0.1 with its own TSDB in a temporary folder."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        folder.mkdir(parents=True)
        self.folder = folder
        self.port = free_port_range(1, start=40000, end=60000)  # away from the agents' ports below 32768
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = folder / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={self.folder / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self) -> None:
        """Poll /-/ready: until the TSDB is open the query API answers 503 "Service Unavailable"."""
        deadline = time.monotonic() + DEADLINE_S
        pause = threading.Event()
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=5, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"prometheus not ready within {DEADLINE_S:.0f} s:\n{self.log.read_text()[-3000:]}"
                )
            pause.wait(0.1)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)

    def query(self, expr: str) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10, trust_env=False)
        body = reply.json()
        assert reply.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, expr: str, what: str) -> list[dict[str, Any]]:
        """Poll until expr returns something (the first sample needs a few seconds: target sync)."""
        deadline = time.monotonic() + DEADLINE_S
        pause = threading.Event()
        while True:
            try:
                result = self.query(expr)
            except httpx.HTTPError:
                result = []  # not listening yet
            if result:
                return result
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: nothing from {expr!r} within {DEADLINE_S:.0f} s")
            pause.wait(0.2)


def scrape_config(layout: NetworkLayout) -> dict[str, Any]:
    """The jobs `ledger-agent demo --keep-running` prints (https, checked against the CA file it
    names), and one without credentials that trusts the same CA."""
    jobs = prometheus_scrape_configs(layout)
    # Printed with an interval of their own (Prometheus' default is 1 m); the test scrapes each second.
    assert {(j["scrape_interval"], j["scrape_timeout"]) for j in jobs} == {("15s", "10s")}
    for job in jobs:
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    first = layout.nodes[0]
    jobs.append(
        {
            "job_name": "anonymous",
            "scheme": "https",
            "tls_config": {"ca_file": str(ca_file(first.config))},
            "static_configs": [{"targets": [first.management_address]}],
        }
    )
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((ROOT / "alerts").glob("*.rules.yml"))],
        "scrape_configs": jobs,
    }


@pytest.fixture
def network(tmp_path: Path) -> Iterator[tuple[NetworkLayout, dict[str, AgentProcess]]]:
    layout = init_network(
        tmp_path / "net", default_node_names(3), DEFAULT_NOTARY, base_port=free_port_range(8)
    )
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
def prometheus_for(tmp_path: Path) -> Iterator[Callable[[NetworkLayout], Prometheus]]:
    started: list[Prometheus] = []

    def start(layout: NetworkLayout) -> Prometheus:
        prometheus = Prometheus(tmp_path / "prometheus", scrape_config(layout))
        started.append(prometheus)
        prometheus.start()
        return prometheus

    yield start
    for prometheus in started:
        assert prometheus.stop() == 0, prometheus.log.read_text()[-3000:]


def test_prometheus_scrapes_the_agents_and_every_panel_has_data(
    network: tuple[NetworkLayout, dict[str, AgentProcess]],
    prometheus_for: Callable[[NetworkLayout], Prometheus],
    tmp_path: Path,
) -> None:
    layout, processes = network
    prometheus = prometheus_for(layout)  # its target sync overlaps the work below
    node_a: NodeLayout = next(n for n in layout.nodes if str(n.name) == A)
    a = processes[A].management

    a.issue([(A, 100), (B, 50)], "GBP", observers=[C])
    backup = tmp_path / "a-backup.db"
    backup_sqlite(sqlite_file(node_a), backup)
    lost = {
        a.pay(B, 10, "GBP", A).upper(),
        processes[B].management.pay(A, 5, "GBP", A, observers=[C]).upper(),
    }
    processes[A].stop()
    backup_sqlite(backup, sqlite_file(node_a))
    processes[A].start()
    processes[A].wait_ready()
    a.wait_ledgersync_ready()
    a.start_flow("ScheduleReconciliationFlow", parties=[B, C])
    assert wait_until_reconciled(a, [B, C]) == []
    found = {
        i.upper()
        for party in (B, C)
        for i in a.start_flow("GetReconciliationStatusForPartyFlow", party=party, isRequester=True)["result"][
            "lastSuccessfulReconciliationResult"
        ]
    }
    assert found == lost

    instance = node_a.management_address
    prometheus.wait_for(
        f'{m.MISSING_TRANSACTIONS.name}{{instance="{instance}"}} == {len(lost)}',
        "PartyA's missing transactions",
    )
    # Each job's first scrape comes on its own schedule: wait until every job has been scraped.
    prometheus.wait_for(f"count(up) == {len(layout.nodes) + 1}", "a scrape of every job")
    up = {r["metric"]["job"]: r["value"][1] for r in prometheus.query("up")}
    assert up.pop("anonymous") == "0", "a scrape without credentials is refused"
    assert set(up.values()) == {"1"} and len(up) == len(layout.nodes), up
    targets_reply = httpx.get(f"{prometheus.url}/api/v1/targets", timeout=10, trust_env=False).json()
    targets = targets_reply["data"]["activeTargets"]
    # Every scrape went over HTTPS, the agent's certificate checked against tls_config.ca_file.
    assert {t["scrapeUrl"].split("://")[0] for t in targets} == {"https"}, targets
    refused = [t for t in targets if t["labels"]["job"] == "anonymous"]
    # Past the TLS handshake (the CA trusted), refused for want of credentials.
    assert "401" in refused[0]["lastError"], refused

    # Every metric name Prometheus now holds from the agents is one of mbeans.metrics, and all are
    # there but the flow hospital's that need a patient or an admission and Ledger Recovery's per peer.
    names = httpx.get(f"{prometheus.url}/api/v1/label/__name__/values", timeout=10, trust_env=False).json()[
        "data"
    ]
    histograms = {x.name for x in m.ALL if x.kind == m.HISTOGRAM}
    expected = (
        m.NAMES - m.HOSPITAL_EVENT_NAMES - m.LEDGER_RECOVERY_EVENT_NAMES - m.PEER_EVENT_NAMES - histograms
    )
    expected -= {m.IN_FLIGHT_OLDEST_TIME.name}  # no sample: nothing IN_FLIGHT here
    expected |= {f"{m.FLOW_DURATION.name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}  # flows ended
    assert expected <= {n for n in names if n.startswith(m.PREFIX)} <= m.SERIES
    # The process's own figures and the runtime's, as every Prometheus client library exports them.
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "python_info"} <= set(names)
    # B's payment (A was restarted since its own flows ended: its histogram started again from 0).
    node_b = next(n for n in layout.nodes if str(n.name) == B)
    finality = prometheus.wait_for(
        f'{m.FLOW_DURATION.name}_count{{instance="{node_b.management_address}", flow="FinalityFlow", '
        'outcome="COMPLETED"} >= 1',
        "PartyB's finality in the flows' durations",
    )
    assert finality, finality

    empty = []
    for name, dashboard in dashboards().items():
        # The node view matches instance="$node"; the network view instance=~"$node", All being ".*".
        node = instance if "node" in name else ".*"
        for row, title, target in row_targets(dashboard):
            if row in (hospital_rows.TITLE, ledger_recovery_rows.TITLE):
                continue  # no patient here, no recovery run
            expr = concrete(target["expr"], node)
            if not prometheus.query(expr):
                empty.append(f"{name} / {title}: {expr}")
    assert empty == [], "panels without data:\n" + "\n".join(empty)

    rules = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10, trust_env=False).json()["data"]["groups"]
    evaluated = [r for g in rules for r in g["rules"]]
    assert evaluated and all(r["health"] in ("ok", "unknown") for r in evaluated), evaluated

    # An agent that stops: its scrapes fail, and LedgerAgentDown is pending within seconds (it fires
    # after its minute, which promtool's unit test covers).
    assert not prometheus.query('ALERTS{alertname="LedgerAgentDown"}')
    node_c = next(n for n in layout.nodes if str(n.name) == C)
    processes[C].stop()
    pending = prometheus.wait_for(
        f'ALERTS{{alertname="LedgerAgentDown", instance="{node_c.management_address}"}}',
        "LedgerAgentDown for the stopped PartyC",
    )
    assert pending[0]["metric"]["severity"] == "critical", pending
    assert {r["metric"]["instance"] for r in prometheus.query('ALERTS{alertname="LedgerAgentDown"}')} == {
        node_c.management_address
    }


def test_management_clients_others_wrote_check_the_agent_s_certificate_against_the_ca(
    network: tuple[NetworkLayout, dict[str, AgentProcess]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """jolokia 0.4.0 (requests), pyjolokia 0.3.1 (urllib) and jsonrpcclient (with requests) against a
    live agent over HTTPS, each given node.conf's CA file the way its HTTP library takes one: without
    it, each refuses the agent's certificate (no public CA issued it); with it, each gets its answer."""
    for variable in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    layout, _ = network
    node = next(n for n in layout.nodes if str(n.name) == A)
    base, _ = management(node.config)
    assert base.startswith("https://"), base
    ca = str(ca_file(node.config))
    monitor = (MONITOR_USER, (node.folder / MONITOR_PASSWORD_FILE).read_text().strip())
    identity = {"type": "read", "mbean": "ledgeragent:type=Node", "attribute": "Identity"}

    # jolokia: a requests.Session, whose verify= takes a CA bundle's path.
    jolokia = JolokiaClient(f"{base}/jolokia", *monitor)
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        jolokia.get_attribute(mbean=identity["mbean"], attribute=identity["attribute"])
    jolokia.session.verify = ca
    answer = jolokia.get_attribute(mbean=identity["mbean"], attribute=identity["attribute"])
    assert (answer["status"], answer["value"]) == (200, A)

    # pyjolokia: urllib's urlopen with the default SSL context, which reads SSL_CERT_FILE (OpenSSL's
    # default CA file). Its auth() calls base64.encodestring (gone in Python 3.9): a stand-in.
    monkeypatch.setattr(base64, "encodestring", lambda b: base64.b64encode(b).decode() + "\n", raising=False)
    pyj = pyjolokia.Jolokia(f"{base}/jolokia/")
    pyj.auth(httpusername=monitor[0], httppassword=monitor[1])
    with pytest.raises(pyjolokia.JolokiaError, match="CERTIFICATE_VERIFY_FAILED"):
        pyj.request(**identity)
    monkeypatch.setenv("SSL_CERT_FILE", ca)
    assert ssl.get_default_verify_paths().cafile == ca
    assert pyj.request(**identity)["value"] == A
    # urllib itself, the same way (a monitoring script's urlopen).
    with pytest.raises(urllib.error.HTTPError, match="401"):
        urllib.request.urlopen(f"{base}/jolokia/version", timeout=10)  # past TLS, no credentials
    monkeypatch.delenv("SSL_CERT_FILE")

    # jsonrpcclient builds and parses; requests posts, with verify= the CA bundle's path.
    call = request("Node.Identity")
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.post(f"{base}/rpc", json=call, auth=monitor, timeout=10)
    reply = requests.post(f"{base}/rpc", json=call, auth=monitor, timeout=10, verify=ca)
    assert reply.status_code == 200, reply.text
    parsed = parse(reply.json())
    assert isinstance(parsed, Ok) and parsed.result == A, parsed

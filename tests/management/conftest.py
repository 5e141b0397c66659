"""What the management surface tests share: an agent served over HTTP (its management app on a real
server, a node's runtime behind it) and the calls made to it (REST, the shell).

`served` is one node alone on its in-process network, with FinalityFlow kept failing for observation
(the flow hospital's and finality recovery's tests); `served_network` serves PartyA with its peers and
the notary running on the same in-process network (Ledger Recovery's).
"""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from agent.client.cli import main
from agent.client.launcher import read_password
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowTimeoutError
from agent.ledger.identity import X500Name
from agent.management.app import create_management_app
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MONITOR_PASSWORD_FILE,
    NodeLayout,
    default_node_names,
    init_network,
)
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.runtime import AgentRuntime, build_runtime
from mbeans.registry import MBeanRegistry

WAIT = 15.0
KEEP_INJECTED_FAILURES = """
flowHospital.rules = [{ match = InjectedFaultError, action = observe }]
faultInjection = ["FinalityFlow.AFTER_RECORD=fail"]
"""


@dataclass
class Served:
    url: str
    runtime: AgentRuntime
    registry: MBeanRegistry
    config: Path
    operator: tuple[str, str]
    monitor: tuple[str, str]
    peers: dict[X500Name, AgentRuntime] = field(default_factory=dict)  # served_network's other nodes

    def status(self, flow_id: str) -> FlowStatus:
        checkpoint = self.runtime.node.store.checkpoints.get_checkpoint(flow_id)
        assert checkpoint is not None
        return checkpoint.status

    def hospitalize(self, n: int) -> list[str]:
        me = self.runtime.node.identity.name
        ids = []
        for _ in range(n):
            with pytest.raises(FlowTimeoutError) as running:
                self.runtime.tokens.issue([(me, 5)], "GBP", [], timeout=0.2)
            ids.append(running.value.flow_id)
        wait_until(lambda: all(self.status(i) is FlowStatus.HOSPITALIZED for i in ids), "hospitalized")
        return ids

    def audit(self) -> list[dict[str, Any]]:
        """The audit log, oldest first."""
        return [e.as_dict() for e in reversed(self.runtime.node.store.audit.entries())]


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"not {what} within {WAIT} s"
        pause.wait(0.02)


@contextmanager
def serving(
    runtime: AgentRuntime, node: NodeLayout, peers: dict[X500Name, AgentRuntime] | None = None
) -> Iterator[Served]:
    """runtime's management app on a real HTTP server, for as long as the block runs."""
    app = create_management_app(runtime)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="management", daemon=True)
    thread.start()
    try:
        yield Served(
            f"http://127.0.0.1:{server.server_port}",
            runtime,
            app.extensions["ledger_agent.mbeans"],
            node.config,
            ("operator", read_password(node.folder)),
            ("monitor", (node.folder / MONITOR_PASSWORD_FILE).read_text().strip()),
            peers or {},
        )
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    layout = init_network(tmp_path / "net", default_node_names(3), DEFAULT_NOTARY)
    node = layout.nodes[1]
    with node.config.open("a") as conf:
        conf.write(KEEP_INJECTED_FAILURES)
    runtime = build_runtime(
        open_node(node.config),
        InProcessTransport(InProcessNetwork()),
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
        ledgersync=True,
    )
    try:
        with serving(runtime, node) as served:
            yield served
    finally:
        runtime.stop(5)


@pytest.fixture
def served_network(tmp_path: Path) -> Iterator[Served]:
    """The first party's agent served, its peers (in Served.peers) and the notary running beside it."""
    names = default_node_names(3)
    layout = init_network(tmp_path / "net", names, DEFAULT_NOTARY)
    network = InProcessNetwork()
    runtimes: dict[X500Name, AgentRuntime] = {}
    try:
        for entry in layout.nodes:
            runtime = build_runtime(
                open_node(entry.config),
                InProcessTransport(network),
                retry=RetryPolicy(max_attempts=2, base_delay=0.01),
                ledgersync=entry.name != DEFAULT_NOTARY,
            )
            network.attach(entry.p2p_address, runtime.peer_service)
            runtimes[entry.name] = runtime
        node = next(e for e in layout.nodes if e.name == names[0])
        peers = {name: r for name, r in runtimes.items() if name != names[0]}
        with serving(runtimes[names[0]], node, peers) as served:
            yield served
    finally:
        for runtime in runtimes.values():
            runtime.stop(5)


def rest(
    served: Served,
    method: str,
    path: str,
    body: Any = None,
    *,
    who: str = "operator",
    tool: str | None = None,
) -> requests.Response:
    auth = served.operator if who == "operator" else served.monitor
    headers = {"User-Agent": f"ledger-agent-{tool}/0.1.0"} if tool else None
    return requests.request(method, served.url + path, json=body, auth=auth, headers=headers, timeout=30)


def shell(
    served: Served, text: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    monkeypatch.delenv("LEDGER_AGENT_PASSWORD", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))
    code = main(["shell", "--config", str(served.config), "--url", served.url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err

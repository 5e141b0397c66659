"""Roles on the management API, served on loopback: read-only reads, the operator acts, anonymous is
refused (roles come from managementUsers in node.conf; network init makes "operator" and "monitor")."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server

from agent.client.launcher import read_password
from agent.config import ConfigurationError, load_node_config
from agent.management.app import create_management_app
from agent.network.bootstrap import DEFAULT_NOTARY, MONITOR_PASSWORD_FILE, default_node_names, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.runtime import build_runtime

A, B, _ = (str(n) for n in default_node_names(3))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, tuple[str, str]]]]:
    layout = init_network(tmp_path / "net", default_node_names(3), DEFAULT_NOTARY)
    entry = next(n for n in layout.nodes if str(n.name) == A)
    runtime = build_runtime(open_node(entry.config), InProcessTransport(InProcessNetwork()), ledgersync=True)
    server = make_server("127.0.0.1", 0, create_management_app(runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    users = {
        "operator": ("operator", read_password(entry.folder)),
        "monitor": ("monitor", (entry.folder / MONITOR_PASSWORD_FILE).read_text().strip()),
    }
    try:
        yield f"http://127.0.0.1:{server.server_port}", users
    finally:
        server.shutdown()
        thread.join(5)
        runtime.stop(5)


def test_each_role_gets_what_it_may(served: tuple[str, dict[str, tuple[str, str]]]) -> None:
    base, users = served
    monitor, operator = users["monitor"], users["operator"]
    with httpx.Client(base_url=base, trust_env=False) as http:
        assert http.get("/api/vault").status_code == 401
        assert http.get("/api/vault", auth=(monitor[0], "wrong")).status_code == 401
        assert http.get("/api/vault", auth=monitor).status_code == 200
        assert http.get("/api/ledgersync", auth=monitor).json()["enabled"] is True
        read = http.post(
            "/api/flows/start/IsReconciliationScheduledForPartyFlow", json={"party": B}, auth=monitor
        )
        assert read.status_code == 200 and read.json()["result"] is False
        for path, body in (
            ("/api/flows/start/ScheduleReconciliationFlow", {"parties": [B]}),
            ("/api/flows/start/RefreshReconciliationStatusesFlow", {}),
            ("/api/flows/issue", {"holdings": [{"owner": A, "amount": 5}], "currency": "GBP"}),
            ("/api/flows/kill/some-id", None),
            ("/api/flows/pause/some-id", None),
            ("/api/flows/resume/some-id", None),
            ("/api/flows/start/PayTokensFlow", {"to": B, "amount": 1, "currency": "GBP", "issuer": A}),
        ):
            denied = http.post(path, json=body, auth=monitor)
            assert denied.status_code == 403, path
            assert denied.json()["error"] == "SecurityException"
            assert "needs the operator role; user 'monitor' has read-only" in denied.json()["message"]
        issued = http.post(
            "/api/flows/issue",
            json={"holdings": [{"owner": A, "amount": 5}], "currency": "GBP"},
            auth=operator,
        )
        assert issued.status_code == 200 and len(issued.json()["txId"]) == 64
        tx_id = issued.json()["txId"]
        listed = http.get("/api/flows", params={"txId": tx_id, "flowName": "FinalityFlow"}, auth=monitor)
        assert [f["status"] for f in listed.json()] == ["COMPLETED"]
        for verb, answer in (("kill", "killed"), ("pause", "paused"), ("resume", "resumed")):
            flow_id = listed.json()[0]["flowId"]
            done = http.post(f"/api/flows/{verb}/{flow_id}", auth=operator)
            assert done.json() == {"id": flow_id, answer: False}  # it has ended
        refused = http.get("/api/flows", params={"status": "DONE"}, auth=monitor)
        assert refused.status_code == 400 and refused.json()["error"] == "FlowArgumentError"
        unknown = http.get("/api/flows", params={"colour": "red"}, auth=monitor)
        assert unknown.status_code == 400 and "colour" in unknown.json()["message"]


def test_a_role_outside_the_two_is_refused_naming_the_key(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", default_node_names(1), DEFAULT_NOTARY)
    conf = layout.nodes[1].config
    text = conf.read_text().replace("role = read-only", "role = superuser")
    conf.write_text(text)
    with pytest.raises(
        ConfigurationError, match=r"managementUsers\[1\]\.role.*superuser.*read-only or operator"
    ):
        load_node_config(conf)

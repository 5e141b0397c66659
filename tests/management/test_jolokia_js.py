"""Jolokia against a live agent process over HTTPS, driven by clients others wrote: the Jolokia project's
jolokia.js 2.6.1 and its simple API under node (tests/js/jolokia_calls.mjs), trusting the network's
root through NODE_EXTRA_CA_CERTS; and the Python clients pyjolokia 0.3.1 and jolokia 0.4.0.

One agent process for the module, started with the helpers the other process tests use and stopped by
its PID; every wait has a deadline, none is a sleep.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyjolokia  # type: ignore[import-untyped]
import pytest
from jolokia import JolokiaClient  # type: ignore[import-untyped]

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MONITOR_PASSWORD_FILE,
    MONITOR_USER,
    OPERATOR_USER,
    default_node_names,
    init_network,
)
from tests.endpoints import ca_file, management

JS = Path(__file__).resolve().parents[1] / "js"
DRIVER = JS / "jolokia_calls.mjs"
NODE_BIN = shutil.which("node")
A, B = (str(n) for n in default_node_names(2))
NODE = "ledgeragent:type=Node"
SYNC = "ledgeragent:type=LedgerSync"
LOGGING = "ledgeragent:type=Logging"
IBF = "MaxNumberOfIbfFilterFlows"

INSTALL = "node and tests/js/node_modules are needed: make installs them (npm ci --prefix tests/js)"


@dataclass
class Live:
    url: str  # https://127.0.0.1:port/jolokia
    ca: Path
    verify: ssl.SSLContext | bool
    operator: str
    monitor: str
    management: ManagementClient


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("jolokia-js")
    layout = init_network(tmp / "net", default_node_names(2), DEFAULT_NOTARY, base_port=free_port_range(8))
    node = next(n for n in layout.nodes if str(n.name) == A)
    operator = read_password(node.folder)
    client = ManagementClient.for_node(node.config, OPERATOR_USER, operator)
    process = AgentProcess(node.config, node.folder / "agent.log", client)
    process.start()
    try:
        process.wait_ready()
        base, verify = management(node.config)
        monitor = (node.folder / MONITOR_PASSWORD_FILE).read_text().strip()
        yield Live(f"{base}/jolokia", ca_file(node.config), verify, operator, monitor, client)
    finally:
        process.stop()


def js(live: Live, calls: list[dict[str, Any]], *, user: str = OPERATOR_USER) -> list[dict[str, Any]]:
    """Each call through jolokia.js, in order: {"ok", "value", "type"} or {"ok": False, "error"}."""
    # Not skipped when missing: a test that cannot run must not pass for one that did.
    assert NODE_BIN is not None and (JS / "node_modules" / "@jolokia.js" / "simple").is_dir(), INSTALL
    password = live.operator if user == OPERATOR_USER else live.monitor
    payload = {"url": live.url, "username": user, "password": password, "calls": calls}
    done = subprocess.run(
        [NODE_BIN, str(DRIVER)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=JS,
        env={**os.environ, "NODE_EXTRA_CA_CERTS": str(live.ca)},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(calls)
    return results


def call(name: str, *args: Any) -> dict[str, Any]:
    return {"call": name, "args": list(args)}


def values(results: list[dict[str, Any]]) -> list[Any]:
    assert all(r["ok"] for r in results), results
    return [r["value"] for r in results]


# -- jolokia.js 2.6.1 and its simple API ------------------------------------------------------------------


def test_version_and_read_one_parse_as_json(live: Live) -> None:
    version, identity, role = js(
        live, [call("version"), call("getAttribute", NODE, "Identity"), call("getAttribute", NODE, "Role")]
    )
    # jolokia.js parses only application/json: a text/plain answer would arrive as a string.
    assert version["ok"] and version["type"] == "object", version
    assert version["value"]["protocol"] == "8.0" and version["value"]["agent"]
    assert version["value"]["details"]["agent_id"] == "ledger-agent"
    assert (identity["value"], role["value"]) == (A, "node")


def test_read_all_attributes_by_post_and_by_get_star(live: Live) -> None:
    listed, by_post, by_get = values(
        js(
            live,
            [
                call("list", "ledgeragent/type=Node/attr"),
                call("getAttribute", NODE),
                # jolokia.js's GET for "all attributes" is /read/<mbean>/*
                call("request", {"type": "read", "mbean": NODE}, {"method": "get"}),
            ],
        )
    )
    assert set(by_post) == set(listed) and "Identity" in listed
    assert by_get["status"] == 200 and set(by_get["value"]) == set(listed)
    assert by_get["request"]["mbean"] == NODE


def test_write_a_ledgersync_limit_and_the_log_level(live: Live) -> None:
    results = js(
        live,
        [
            call("setAttribute", SYNC, IBF, 7),
            call("getAttribute", SYNC, IBF),
            call("setAttribute", SYNC, IBF, 99),  # out of range: refused, nothing changes
            call("getAttribute", SYNC, IBF),
            call("setAttribute", SYNC, "TimeWindowForReconciliationRequestLimit", "30M"),
            call("setAttribute", SYNC, "TimeWindowForReconciliationRequestLimit", "soon"),
            call("getAttribute", SYNC, "TimeWindowForReconciliationRequestLimit"),
            call("setAttribute", LOGGING, "Level", "debug"),
            call("getAttribute", LOGGING, "Level"),
            call("setAttribute", LOGGING, "Level", "LOUD"),
            call("setAttribute", LOGGING, "Level", "INFO"),
            call("setAttribute", SYNC, IBF, 5),
        ],
    )
    assert results[0] == {"ok": True, "value": 5, "type": "number"}  # write answers the old value
    assert results[1]["value"] == 7
    assert not results[2]["ok"]
    assert "java.lang.IllegalArgumentException" in results[2]["error"]
    assert IBF in results[2]["error"] and "from 1 to 15" in results[2]["error"]
    assert results[3]["value"] == 7
    assert results[4]["value"] == "1H" and results[6]["value"] == "30M"
    assert not results[5]["ok"] and "TimeWindowForReconciliationRequestLimit" in results[5]["error"]
    assert results[7]["value"] == "INFO" and results[8]["value"] == "DEBUG"
    assert not results[9]["ok"] and "Level" in results[9]["error"] and "DEBUG, INFO" in results[9]["error"]
    assert results[10]["value"] == "DEBUG" and results[11]["value"] == 7
    entries = live.management.audit(action="write")
    targets = [(e["user"], e["target"], e["outcome"]) for e in entries]
    assert (OPERATOR_USER, f"{SYNC} {IBF} = 7", "done: was 5") in targets
    assert any(t == f"{SYNC} {IBF} = 99" and o.startswith("error:") for _, t, o in targets)
    assert all(e["surface"] == "jolokia" for e in entries)


def test_a_read_only_user_cannot_write(live: Live) -> None:
    refused, read = js(
        live, [call("setAttribute", SYNC, IBF, 3), call("getAttribute", SYNC, IBF)], user=MONITOR_USER
    )
    assert not refused["ok"] and "java.lang.SecurityException" in refused["error"]
    assert "operator role" in refused["error"] and MONITOR_USER in refused["error"]
    assert read["ok"] and read["value"] == 5
    entries = live.management.audit(user=MONITOR_USER, action="write")
    assert entries and entries[0]["outcome"].startswith("refused:")
    assert entries[0]["target"] == f"{SYNC} {IBF} = 3" and entries[0]["role"] == "read-only"


def test_exec_search_list_and_unknowns(live: Live) -> None:
    results = js(
        live,
        [
            call("execute", SYNC, "ReconciliationStatus", B),
            call("execute", SYNC, "GetReconciliationStatuses(boolean)", True),
            call("execute", SYNC, "NoSuchOperation"),
            call("request", {"type": "exec", "mbean": SYNC, "operation": "NoSuchOperation"}),
            call("search", "ledgeragent:*"),
            call("list", "ledgeragent/type=Node/attr/Role"),
            call("list", "nowhere/type=Nothing"),
            call("request", {"type": "list", "path": "nowhere"}, {"method": "get"}),
            call("request", {"type": "read", "mbean": "ledgeragent:type=Nothing", "attribute": "X"}),
        ],
    )
    assert results[0] == {"ok": True, "value": None, "type": "object"}
    assert results[1]["value"] == []
    assert not results[2]["ok"] and "java.lang.IllegalArgumentException" in results[2]["error"]
    unknown = results[3]["value"]
    assert (unknown["status"], unknown["error_type"]) == (400, "java.lang.IllegalArgumentException")
    assert NODE in results[4]["value"] and SYNC in results[4]["value"]
    assert results[5]["value"] == {
        "type": "java.lang.String",
        "desc": "node or notary",
        "rw": False,
        "r": True,
        "w": False,
        "is": False,
    }
    assert results[6] == {"ok": True, "value": {}, "type": "object"}
    assert (results[7]["value"]["status"], results[7]["value"]["value"]) == (200, {})
    missing = results[8]["value"]
    assert missing["status"] == 404
    assert missing["error_type"] == missing["error_type_jmx"] == "javax.management.InstanceNotFoundException"


def test_bulk_in_order(live: Live) -> None:
    (bulk,) = values(
        js(
            live,
            [
                call(
                    "request",
                    [
                        {"type": "read", "mbean": NODE, "attribute": "Role"},
                        {"type": "read", "mbean": NODE, "attribute": "Nothing"},
                        {"type": "version"},
                        {"type": "search", "mbean": "*:type=Node"},
                    ],
                )
            ],
        )
    )
    assert [r["status"] for r in bulk] == [200, 404, 200, 200]
    assert bulk[0]["value"] == "node" and bulk[3]["value"] == [NODE]


def test_list_if_modified_since_gives_304_when_nothing_changed(live: Live) -> None:
    first, unchanged, old = values(
        js(
            live,
            [
                call("request", {"type": "list"}, {"method": "post"}),
                call(
                    "request", {"type": "list"}, {"method": "post", "ifModifiedSince": int(time.time()) + 1}
                ),
                call("request", {"type": "list"}, {"method": "post", "ifModifiedSince": 1}),
            ],
        )
    )
    assert first["status"] == 200 and "ledgeragent" in first["value"]
    assert unchanged["status"] == 304 and "value" not in unchanged and unchanged["timestamp"]
    assert old["status"] == 200 and old["value"] == first["value"]


def test_notifications_are_refused_by_name(live: Live) -> None:
    register, listener = js(
        live,
        [
            call("request", {"type": "notification", "command": "register"}, {"method": "post"}),
            call("addNotificationListener", {"mbean": NODE, "callback": None}),
        ],
    )
    assert register["ok"]
    answer = register["value"]
    assert (answer["status"], answer["error_type"]) == (400, "java.lang.IllegalArgumentException")
    assert "notifications are not supported" in answer["error"]
    assert not listener["ok"] and "notifications are not supported" in listener["error"]


def test_protocol_8_parameters(live: Live) -> None:
    without, serialized, plain, keyed = values(
        js(
            live,
            [
                call("request", {"type": "version"}, {"includeRequest": False}),
                call("getAttribute", NODE, "Transactions", {"serializeLong": "string"}),
                call("getAttribute", NODE, "Transactions"),
                call(
                    "request",
                    {"type": "list", "path": "ledgeragent/type=Node", "config": {"listKeys": True}},
                    {"method": "post"},
                ),
            ],
        )
    )
    assert without["status"] == 200 and "request" not in without
    assert isinstance(plain, int) and serialized == str(plain)
    assert keyed["value"]["keys"] == {"type": "Node"}


# -- the Python clients, JSON by default and text/plain when asked ---------------------------------------


def test_jolokia_python_client(live: Live) -> None:
    client = JolokiaClient(live.url, OPERATOR_USER, live.operator)
    # requests lets REQUESTS_CA_BUNDLE override a session's verify unless it ignores the environment.
    client.session.trust_env = False
    client.session.verify = str(live.ca)
    assert client.get_attribute(mbean=NODE, attribute="Identity")["value"] == A
    assert client.set_attribute(mbean=SYNC, attr_value_pairs=(IBF, 6))["value"] == 5
    assert client.set_attribute(mbean=SYNC, attr_value_pairs=(IBF, 5))["value"] == 6
    assert client.version()["value"]["protocol"] == "8.0"
    r = httpx.post(
        live.url, json={"type": "version"}, auth=(OPERATOR_USER, live.operator), verify=live.verify
    )
    assert r.headers["content-type"].startswith("application/json")
    r = httpx.post(
        live.url + "?mimeType=text/plain",
        json={"type": "version"},
        auth=(OPERATOR_USER, live.operator),
        verify=live.verify,
    )
    assert r.headers["content-type"].startswith("text/plain") and r.json()["status"] == 200


def test_pyjolokia_with_json_and_with_text_plain(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    # pyjolokia's own auth() is broken (base64.encodestring): urllib sends the credentials instead,
    # over HTTPS checked against the network's root.
    passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
    passwords.add_password(None, live.url, OPERATOR_USER, live.operator, is_authenticated=True)
    context = ssl.create_default_context(cafile=str(live.ca))
    opener = urllib.request.build_opener(
        urllib.request.HTTPSHandler(context=context), urllib.request.HTTPBasicAuthHandler(passwords)
    )
    monkeypatch.setattr(pyjolokia, "urlopen", opener.open)
    for url in (live.url, live.url + "?mimeType=text/plain"):
        j = pyjolokia.Jolokia(url)
        assert j.request(type="read", mbean=NODE, attribute="Identity")["value"] == A
        assert j.request(type="version")["value"]["protocol"] == "8.0"
        j.add_request(type="read", mbean=NODE, attribute="Role")
        j.add_request(type="exec", mbean=SYNC, operation="NoSuchOperation", arguments=[])
        assert [r["status"] for r in j.getRequests()] == [200, 400]

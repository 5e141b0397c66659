"""Jolokia over the real management app on loopback, driven by clients others wrote (pyjolokia 0.3.1,
jolokia 0.4.0) and by raw GETs for the URL forms; and the pure parts (escaping, paths) on their own."""

from __future__ import annotations

import base64
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pyjolokia  # type: ignore[import-untyped]
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from jolokia import JolokiaClient  # type: ignore[import-untyped]
from werkzeug.serving import make_server

from agent.client.launcher import read_password
from agent.errors import ReconciliationAlreadyScheduledException
from agent.management.app import create_management_app
from agent.network.bootstrap import DEFAULT_NOTARY, MONITOR_PASSWORD_FILE, MONITOR_USER, init_network
from mbeans.access import Principal, Role
from mbeans.errors import AttributeNotFoundException, IllegalArgumentException
from mbeans.jolokia import (
    JolokiaAgent,
    get_request,
    jolokia_error,
    navigate,
    replace_at,
    split_path,
    split_raw_uri_path,
)
from mbeans.model import Impact, JavaType, MBean
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry
from tests.ledgersync.conftest import A, B, C, Net

NODE = "ledgeragent:type=Node"
SYNC = "ledgeragent:type=LedgerSync"
SETTINGS = "test:type=Settings"
SLASHED = 'test:name="a/b",type=Path'
BANG = "test:name=bang!,type=Path"


@dataclass
class Served:
    base: str  # http://127.0.0.1:port
    operator: str
    monitor: str
    registry: MBeanRegistry
    settings: dict[str, Any]

    @property
    def url(self) -> str:
        return f"{self.base}/jolokia"


def add_test_beans(registry: MBeanRegistry) -> dict[str, Any]:
    """Beans the agent lacks: writable attributes, a `/` and a `!` in names, refusals and a bug."""
    settings: dict[str, Any] = {"Limit": 5, "Tags": ["x", "y"], "Options": {"a/b": 1, "deep": {"n": [1, 2]}}}

    def setter(key: str) -> Any:
        return lambda value: settings.__setitem__(key, value)

    def refuse() -> None:
        raise ReconciliationAlreadyScheduledException(str(B))

    def bug() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    bean = MBean(ObjectName.parse(SETTINGS), "Writable settings for the tests")
    bean.attribute("Limit", JavaType.INT, "a limit", lambda: settings["Limit"], setter("Limit"))
    bean.attribute("Tags", JavaType.LIST, "tags", lambda: settings["Tags"], setter("Tags"))
    bean.attribute("Options", JavaType.MAP, "options", lambda: settings["Options"], setter("Options"))
    bean.attribute("Fixed", JavaType.STRING, "read-only", lambda: "fixed")
    bean.attribute("Broken", JavaType.STRING, "fails to read", bug)
    bean.operation("Refuse", [], JavaType.VOID, "a domain refusal", refuse, Impact.ACTION)
    bean.operation("Bug", [], JavaType.VOID, "a bug", bug)
    bean.operation("Echo", [("tags", JavaType.LIST, "a list")], JavaType.LIST, "echo", lambda t: t)
    registry.register(bean)
    registry.register(
        MBean(ObjectName.parse(SLASHED), "slash").attribute("Value", JavaType.STRING, "v", lambda: "slashed")
    )
    registry.register(
        MBean(ObjectName.parse(BANG), "bang").attribute("Value", JavaType.STRING, "v", lambda: "bang")
    )
    return settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("jolokia")
    layout = init_network(tmp / "net", [A, B, C], DEFAULT_NOTARY)
    net = Net(layout)
    try:
        for entry in layout.nodes:
            net.start(entry.name)
        app = create_management_app(net[A])
        registry: MBeanRegistry = app.extensions["ledger_agent.mbeans"]
        settings = add_test_beans(registry)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            folder = layout.node(A).folder
            monitor = (folder / MONITOR_PASSWORD_FILE).read_text().strip()
            yield Served(
                f"http://127.0.0.1:{server.port}", read_password(folder), monitor, registry, settings
            )
        finally:
            server.shutdown()
            thread.join(10)
            server.server_close()
    finally:
        net.stop()


@pytest.fixture
def client(served: Served) -> JolokiaClient:
    return JolokiaClient(served.url, "operator", served.operator)


@pytest.fixture
def monitor(served: Served) -> JolokiaClient:
    return JolokiaClient(served.url, MONITOR_USER, served.monitor)


@pytest.fixture
def pyj(served: Served, monkeypatch: pytest.MonkeyPatch) -> pyjolokia.Jolokia:
    """pyjolokia with working auth: its auth() calls base64.encodestring (gone in Python 3.9) and
    formats bytes into the header; a str-returning stand-in makes it send `Basic dTpw` as it meant to."""
    monkeypatch.setattr(base64, "encodestring", lambda b: base64.b64encode(b).decode() + "\n", raising=False)
    j = pyjolokia.Jolokia(served.url + "/")
    j.auth(httpusername="operator", httppassword=served.operator)
    return j


def get(served: Served, path: str, user: str = "operator", **kw: Any) -> requests.Response:
    password = served.operator if user == "operator" else served.monitor
    return requests.get(served.url + path, auth=(user, password), timeout=10, allow_redirects=False, **kw)


def post(served: Served, body: Any, user: str = "operator") -> requests.Response:
    password = served.operator if user == "operator" else served.monitor
    data = body if isinstance(body, bytes | str) else None
    json_body = None if data is not None else body
    return requests.post(
        served.url, data=data, json=json_body, auth=(user, password), timeout=10, allow_redirects=False
    )


# -- jolokia 0.4.0 -----------------------------------------------------------------------------------------


def test_read_one_attribute_with_path_and_all(client: JolokiaClient) -> None:
    r = client.get_attribute(mbean=NODE, attribute="Identity")
    assert r["status"] == 200 and r["value"] == str(A) and isinstance(r["timestamp"], int)
    assert r["request"]["mbean"] == NODE
    by_status = client.get_attribute(mbean=NODE, attribute="TransactionsByStatus")["value"]
    assert set(by_status) == {"VERIFIED", "UNVERIFIED", "IN_FLIGHT"}
    r = client.get_attribute(mbean=NODE, attribute="TransactionsByStatus", path="VERIFIED")
    assert (r["status"], r["value"]) == (200, by_status["VERIFIED"])
    r = client.get_attribute(mbean=NODE, attribute="TransactionsByStatus", path="NOPE")
    assert r["status"] == 404 and r["error_type"] == "javax.management.AttributeNotFoundException"
    bulk = client.get_attribute(mbean=NODE, attribute=["Identity", "Role"])  # a bulk of single reads
    assert [x["value"] for x in bulk] == [str(A), "node"]


def test_write_returns_the_old_value(client: JolokiaClient, served: Served) -> None:
    r = client.set_attribute(mbean=SETTINGS, attr_value_pairs=("Limit", 7))
    assert (r["status"], r["value"]) == (200, 5) and served.settings["Limit"] == 7
    r = client.set_attribute(mbean=SETTINGS, attr_value_pairs=("Options", 9), path="deep/n/1")
    assert (r["status"], r["value"]) == (200, 2) and served.settings["Options"]["deep"]["n"] == [1, 9]
    assert (
        client.set_attribute(mbean=SETTINGS, attr_value_pairs=("Options", 2), path="deep/n/1")["value"] == 9
    )
    r = client.set_attribute(mbean=SETTINGS, attr_value_pairs=("Limit", "many"))
    assert r["status"] == 400 and r["error_type"] == "java.lang.IllegalArgumentException"
    r = client.set_attribute(mbean=SETTINGS, attr_value_pairs=("Fixed", "x"))
    assert r["status"] == 404 and r["error_type"] == "javax.management.AttributeNotFoundException"
    assert "read-only" in r["error"]
    bulk = client.set_attribute(
        mbean=SETTINGS, attr_value_pairs=[("Limit", 5), ("Tags", ["x", "y"])], bulk=True
    )
    assert [x["value"] for x in bulk] == [7, ["x", "y"]] and served.settings["Limit"] == 5


def test_exec_signatures_and_overloads(client: JolokiaClient) -> None:
    r = client.execute(mbean=SYNC, operation="ReconciliationStatus(java.lang.String)", arguments=[str(B)])
    assert (r["status"], r["value"]) == (200, None)
    r = client.execute(mbean=SYNC, operation="ReconciliationStatus", arguments=[str(B)])
    assert (r["status"], r["value"]) == (200, None)
    r = client.execute(mbean=SYNC, operation="GetReconciliationStatuses(boolean)", arguments=[True])
    assert (r["status"], r["value"]) == (200, [])
    signature = "GetReconciliationStatuses(java.lang.String,java.lang.String,boolean)"
    r = client.execute(mbean=SYNC, operation=signature, arguments=[None, None, False])
    assert (r["status"], r["value"]) == (200, [])
    r = client.execute(mbean=SYNC, operation="GetReconciliationStatuses", arguments=[True])  # by arity
    assert r["status"] == 200
    # An unknown operation or signature: 400 IllegalArgumentException, as a Jolokia agent answers it.
    r = client.execute(mbean=SYNC, operation="GetReconciliationStatuses(int)", arguments=[1])
    assert r["status"] == 400 and r["error_type"] == "java.lang.IllegalArgumentException"
    assert "GetReconciliationStatuses(boolean)" in r["error"] and "error_type_jmx" not in r
    r = client.execute(mbean=SYNC, operation="NoSuchOperation", arguments=[])
    assert r["status"] == 400 and r["error_type"] == "java.lang.IllegalArgumentException"
    r = client.execute(mbean=SYNC, operation="ReconciliationStatus", arguments=["not a name"])
    assert r["status"] == 400 and r["error_type"] == "java.lang.IllegalArgumentException"


def test_search_list_version(client: JolokiaClient) -> None:
    r = client.search(mbean="ledgeragent:*")
    assert r["status"] == 200 and NODE in r["value"] and SYNC in r["value"] and SETTINGS not in r["value"]
    assert client.search(mbean="nothing:*")["value"] == []
    tree = client.list()["value"]
    sync = tree["ledgeragent"]["type=LedgerSync"]
    assert sync["class"] == "ledgeragent.LedgerSync" and sync["desc"]
    assert sync["attr"]["NumberOfFailedReconciliations"] == {
        "type": "int",
        "desc": "Reconciliations that failed",
        "rw": False,
        "r": True,
        "w": False,
        "is": False,
    }
    assert sync["attr"]["MaxNumberOfIbfFilterFlows"]["rw"] is True
    assert sync["attr"]["MaxNumberOfIbfFilterFlows"]["w"] is True
    assert tree["ledgeragent"]["type=LedgerGraph"]["attr"]["IsInitialized"]["is"] is True
    status = sync["op"]["ReconciliationStatus"]
    assert status["args"] == [{"name": "party", "type": "java.lang.String", "desc": "The party's X.500 name"}]
    assert status["ret"] == "java.util.Map"
    overloads = sync["op"]["GetReconciliationStatuses"]
    assert isinstance(overloads, list) and len(overloads) == 2
    assert tree["test"]['name="a/b",type=Path']["attr"]["Value"]["rw"] is False
    assert tree["test"]["type=Settings"]["attr"]["Limit"]["rw"] is True
    scheduling = client.list("ledgeragent/type=LedgerSync/op/ScheduleReconciliation")["value"]
    assert [o["ret"] for o in scheduling] == ["void", "void"]  # two overloads (bothDirections)
    assert (
        client.list("ledgeragent/type=LedgerSync/op/RefreshReconciliationStatuses")["value"]["ret"] == "int"
    )
    assert client.list('test/name="a!/b",type=Path/attr')["value"] == {
        "Value": {"type": "java.lang.String", "desc": "v", "rw": False, "r": True, "w": False, "is": False}
    }
    # A path that leads nowhere lists nothing, as Jolokia 2 answers it.
    for nowhere in ("nowhere", "ledgeragent/type=Nothing", "ledgeragent/type=Node/attr/Nothing"):
        assert (client.list(nowhere)["status"], client.list(nowhere)["value"]) == (200, {})
    version = client.version()
    assert version["status"] == 200 and version["value"]["protocol"] == "8.0"
    assert version["value"]["info"]["product"] == "ledger-agent" and version["value"]["agent"]


def test_domain_refusals_and_bugs(client: JolokiaClient) -> None:
    r = client.execute(mbean=SYNC, operation="ScheduleReconciliation", arguments=[[str(A)]])
    assert r["status"] == 500 and r["error_type"] == "agent.errors.CannotReconcileWithSelfException"
    assert "cannot reconcile with itself" in r["error"]
    r = client.execute(mbean=SETTINGS, operation="Refuse", arguments=[])
    assert r["status"] == 500 and r["error_type"] == "agent.errors.ReconciliationAlreadyScheduledException"
    for r in (
        client.execute(mbean=SETTINGS, operation="Bug", arguments=[]),
        client.get_attribute(mbean=SETTINGS, attribute="Broken"),
    ):
        assert r["status"] == 500 and r["error_type"] == "java.lang.RuntimeException"
        assert "secret" not in str(r) and "Traceback" not in str(r) and "stacktrace" not in r
    r = client.get_attribute(mbean="ledgeragent:type=Nothing", attribute="X")
    assert r["status"] == 404 and r["error_type"] == "javax.management.InstanceNotFoundException"
    r = client.get_attribute(mbean=NODE, attribute="Nothing")
    assert r["status"] == 404 and r["error_type"] == "javax.management.AttributeNotFoundException"
    r = client.get_attribute(mbean="no colon", attribute="X")
    assert r["status"] == 400 and r["error_type"] == "javax.management.MalformedObjectNameException"


def test_roles(monitor: JolokiaClient, served: Served) -> None:
    assert monitor.get_attribute(mbean=NODE, attribute="Identity")["value"] == str(A)
    assert monitor.execute(mbean=SYNC, operation="ReconciliationStatus", arguments=[str(B)])["status"] == 200
    assert monitor.list()["status"] == 200 and monitor.search(mbean="*:*")["status"] == 200
    denied = [
        monitor.execute(mbean=SYNC, operation="ScheduleReconciliation", arguments=[[str(B)]]),
        monitor.execute(mbean=SYNC, operation="killFlow", arguments=["x"]),
        monitor.set_attribute(mbean=SETTINGS, attr_value_pairs=("Limit", 1)),
    ]
    for r in denied:
        assert r["status"] == 403 and r["error_type"] == "java.lang.SecurityException"
        assert "operator role" in r["error"]
    assert (
        served.settings["Limit"] == 5
        and monitor.execute(mbean=SYNC, operation="IsReconciliationScheduledForParty", arguments=[str(B)])[
            "value"
        ]
        is False
    )
    # In a bulk request each entry is checked on its own.
    bulk = post(
        served,
        [
            {"type": "read", "mbean": NODE, "attribute": "Role"},
            {"type": "write", "mbean": SETTINGS, "attribute": "Limit", "value": 1},
            {
                "type": "exec",
                "mbean": SYNC,
                "operation": "IsReconciliationScheduledForParty",
                "arguments": [str(C)],
            },
        ],
        user=MONITOR_USER,
    ).json()
    assert [x["status"] for x in bulk] == [200, 403, 200]


def test_anonymous_and_wrong_credentials_get_401(served: Served) -> None:
    for client in (JolokiaClient(served.url), JolokiaClient(served.url, "operator", "wrong")):
        response = client.version()
        assert isinstance(response, requests.Response) or response["status"] == 401
    for auth in (None, ("operator", "wrong"), ("nobody", "x")):
        r = requests.post(served.url, json={"type": "version"}, auth=auth, timeout=10)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Basic realm="ledger-agent"'
        assert served.operator not in r.text
    j = pyjolokia.Jolokia(served.url)
    with pytest.raises(pyjolokia.JolokiaError, match="401"):
        j.request(type="version")


# -- pyjolokia 0.3.1 ----------------------------------------------------------------------------------------


def test_pyjolokia(pyj: pyjolokia.Jolokia, served: Served) -> None:
    assert pyj.request(type="read", mbean=NODE, attribute="Identity")["value"] == str(A)
    assert (
        pyj.request(type="read", mbean=NODE, attribute="TransactionsByStatus", path="IN_FLIGHT")["value"] == 0
    )
    both = pyj.request(type="read", mbean=NODE, attribute=["Identity", "Role"])
    assert both["value"] == {"Identity": str(A), "Role": "node"}
    everything = pyj.request(type="read", mbean=NODE)["value"]
    assert set(everything) == set(served.registry.get(NODE).attributes)
    pattern = pyj.request(type="read", mbean="ledgeragent:*", attribute="IsInitialized")["value"]
    assert pattern == {"ledgeragent:type=LedgerGraph": {"IsInitialized": True}}
    wild = pyj.request(
        type="read", mbean="ledgeragent:type=*", attribute=["Identity", "Size"], path="*/Identity"
    )
    assert wild["value"] == {NODE: str(A)}
    r = pyj.request(
        type="exec", mbean=SYNC, operation="GetReconciliationStatuses(boolean)", arguments=[False]
    )
    assert r["value"] == []
    assert pyj.request(type="write", mbean=SETTINGS, attribute="Limit", value=6)["value"] == 5
    assert pyj.request(type="write", mbean=SETTINGS, attribute="Limit", value=5)["value"] == 6
    assert NODE in pyj.request(type="search", mbean="*:type=Node")["value"]
    assert (
        pyj.request(type="list", path="ledgeragent/type=Node/attr/Role")["value"]["type"]
        == "java.lang.String"
    )
    assert pyj.request(type="version")["value"]["protocol"] == "8.0"
    pyj.add_request(type="read", mbean=NODE, attribute="Role")
    pyj.add_request(type="read", mbean=NODE, attribute="Nothing")
    pyj.add_request(type="version")
    assert [r["status"] for r in pyj.getRequests()] == [200, 404, 200]


def test_pyjolokia_config_and_urllib_auth(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    # The other way round its broken auth(): let urllib send the credentials (the note in the docs).
    passwords = urllib.request.HTTPPasswordMgrWithPriorAuth()
    passwords.add_password(None, served.url, "operator", served.operator, is_authenticated=True)
    monkeypatch.setattr(
        pyjolokia, "urlopen", urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(passwords)).open
    )
    j = pyjolokia.Jolokia(served.url)
    j.config(ignoreErrors=True)
    r = j.request(type="read", mbean=SETTINGS, attribute=["Limit", "Broken", "Nothing"])
    assert r["status"] == 200 and r["value"]["Limit"] == 5
    assert r["value"]["Broken"].startswith("ERROR:") and "secret" not in r["value"]["Broken"]
    assert "javax.management.AttributeNotFoundException" in r["value"]["Nothing"]
    j.config(ignoreErrors=False, maxDepth=1)
    assert j.request(type="list", path=None)["value"] == {"ledgeragent": 1, "test": 1}
    j.config(maxDepth=2)
    assert j.request(type="list", path=None)["value"]["ledgeragent"]["type=Node"] == 1
    assert j.request(type="read", mbean=SETTINGS, attribute=["Limit", "Broken"])["status"] == 500


# -- raw HTTP: URL forms, escaping, redirects, bad bodies -----------------------------------------------------


def test_get_url_forms(served: Served) -> None:
    assert get(served, "/read/ledgeragent:type=Node/Identity").json()["value"] == str(A)
    assert get(served, "/read/ledgeragent:type=Node/TransactionsByStatus/VERIFIED").json()["value"] == 0
    assert get(served, "/read/ledgeragent:type=Node/Identity,Role").json()["value"] == {
        "Identity": str(A),
        "Role": "node",
    }
    assert get(served, "/read/ledgeragent:type=Node").json()["value"]["Role"] == "node"
    assert (
        get(served, "/exec/ledgeragent:type=LedgerSync/GetReconciliationStatuses(boolean)/true").json()[
            "value"
        ]
        == []
    )
    party = quote(str(B), safe="")
    r = get(
        served, f"/exec/ledgeragent:type=LedgerSync/ReconciliationStatus(java.lang.String)/{party}"
    ).json()
    assert (r["status"], r["value"]) == (200, None)
    r = get(served, f"/exec/{SYNC}/GetReconciliationStatuses/[null]/[null]/false").json()
    assert (r["status"], r["value"]) == (200, [])
    # A list argument as JSON, since X.500 names hold the commas Jolokia's GET form splits on.
    names = quote(f'["{B}", "{C}"]', safe="")
    assert get(served, f"/exec/{SETTINGS}/Echo/{names}").json()["value"] == [str(B), str(C)]
    assert get(served, f"/exec/{SETTINGS}/Echo/a,b").json()["value"] == ["a", "b"]
    assert get(served, f"/write/{SETTINGS}/Limit/8").json()["value"] == 5
    assert get(served, f"/write/{SETTINGS}/Limit/5").json()["value"] == 8
    assert get(served, "/search/*:type=Node").json()["value"] == [NODE]
    assert get(served, "/list/ledgeragent/type=Node/attr/Role/rw").json()["value"] is False
    assert get(served, "/list?maxDepth=1").json()["value"] == {"ledgeragent": 1, "test": 1}
    for path in ("", "/", "/version"):
        r = get(served, path)
        assert r.status_code == 200 and r.json()["value"]["protocol"] == "8.0"
    assert get(served, "/?p=/read/ledgeragent:type=Node/Identity").json()["value"] == str(A)
    p = quote('/read/test:name="a!/b",type=Path/Value', safe="")
    assert get(served, f"?p={p}").json()["value"] == "slashed"
    r = get(served, "/unknown/x")
    assert r.status_code == 200 and r.json()["status"] == 400
    r = get(served, "/read")
    assert r.status_code == 200 and r.json()["status"] == 400 and "mbean" in r.json()["error"]


def test_get_escaping(served: Served) -> None:
    assert get(served, '/read/test:name="a!/b",type=Path/Value').json()["value"] == "slashed"
    assert get(served, "/read/test:name=%22a%2Fb%22,type=Path/Value").json()["value"] == "slashed"
    assert get(served, "/read/test:name=bang!!,type=Path/Value").json()["value"] == "bang"
    assert get(served, '/read/test:name=!"a!/b!",type=Path/Value').json()["value"] == "slashed"
    assert get(served, f"/read/{SETTINGS}/Options/a!/b").json()["value"] == 1
    assert get(served, f"/read/{SETTINGS}/Options/deep/n/*").json()["value"] == [1, 2]
    # `!//`: an element ending in `/`, then the separator; the double slash is neither merged nor redirected.
    r = get(served, f"/exec/{SETTINGS}/Echo/a!//")
    assert r.status_code == 200 and r.json()["value"] == ["a/"]
    r = get(served, f"/read/{SETTINGS}/Options/a/b").json()
    assert r["status"] == 404 and r["error_type"] == "javax.management.AttributeNotFoundException"


def test_content_type_and_no_redirects(served: Served) -> None:
    auth = ("operator", served.operator)
    for url in (served.url, served.url + "/"):
        r = httpx.post(url, json={"type": "version"}, auth=auth)
        assert r.status_code == 200 and r.json()["status"] == 200
        # JSON by default, as Jolokia agents answer since 2.1 (jolokia.js 2 parses nothing else).
        assert r.headers["content-type"].startswith("application/json")
        r = httpx.get(url, auth=auth)
        assert r.status_code == 200 and r.json()["value"]["agent"]
    for query, accept, mime in (
        ("?mimeType=application/json", None, "application/json"),
        ("?mimeType=text/plain", None, "text/plain"),  # what a Jolokia 1.x client may ask for
        ("?mimeType=text/plain", "application/json", "text/plain"),  # the parameter wins
        ("?mimeType=image/png", None, "application/json"),  # not one Jolokia offers: the default
        ("", "text/plain", "text/plain"),
        ("", "text/plain, */*;q=0.1", "application/json"),
        ("", "application/json, text/plain", "application/json"),
    ):
        headers = {"Accept": accept} if accept else {}
        r = httpx.get(served.url + "/version" + query, auth=auth, headers=headers)
        assert r.headers["content-type"].startswith(mime), (query, accept)
        assert r.json()["value"]["protocol"] == "8.0"
    r = httpx.post(served.url + "?mimeType=text/plain", json={"type": "version"}, auth=auth)
    assert r.headers["content-type"].startswith("text/plain") and r.json()["status"] == 200


def test_bad_bodies(served: Served) -> None:
    r = post(served, b"{not json")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == 400 and body["error_type"] == "java.lang.IllegalArgumentException"
    assert "not valid JSON" in body["error"]
    nulls: dict[str, Any] = {"type": "read", "mbean": NODE, "attribute": None, "path": "", "config": {}}
    assert post(served, nulls).json()["value"]["Role"] == "node"
    cases: list[tuple[Any, int]] = [
        ({"type": "read", "mbean": None}, 400),
        ({"type": "read", "mbean": ""}, 400),
        (
            {"type": "exec", "mbean": SYNC, "operation": "RefreshReconciliationStatuses", "arguments": None},
            200,
        ),
        ({"type": "exec", "mbean": SYNC, "operation": "RefreshReconciliationStatuses", "arguments": ""}, 200),
        ({"type": "exec", "mbean": SYNC, "operation": "ReconciliationStatus", "arguments": 3}, 400),
        ({"type": "exec", "mbean": "ledgeragent:*", "operation": "x", "arguments": []}, 400),
        ({"type": "write", "mbean": SETTINGS, "value": 1}, 400),
        ({"type": "frobnicate"}, 400),
        ({"type": "notification", "command": "register"}, 400),  # no notification backend
        ({"type": "read", "mbean": NODE, "target": {"url": "service:jmx:rmi://x"}}, 500),
        ("just a string", 400),
        ({"type": "read", "mbean": "ledgeragent:type=Nothing,*"}, 404),
    ]
    results = post(served, [c for c, _ in cases]).json()
    assert [r["status"] for r in results] == [s for _, s in cases]
    assert all("error" in r for r in results if r["status"] != 200)
    r = post(
        served,
        {"type": "read", "mbean": NODE, "attribute": "Nothing", "config": {"serializeException": True}},
    )
    assert r.json()["error_value"]["errorType"] == "javax.management.AttributeNotFoundException"


# -- the pure parts ------------------------------------------------------------------------------------------


def escape(part: str) -> str:
    return part.replace("!", "!!").replace("/", "!/").replace('"', '!"')


def test_split_path() -> None:
    assert split_path(None) == [] and split_path("") == []
    assert split_path("a/b") == ["a", "b"]
    assert split_path("a!/b/c") == ["a/b", "c"]
    assert split_path("a!!/b") == ["a!", "b"]
    assert split_path('!"x!"/y!z') == ['"x"', "yz"]
    assert split_path("a//b") == ["a", "", "b"]


def test_split_raw_uri_path() -> None:
    assert split_raw_uri_path("/read/d:k=v/A") == ["read", "d:k=v", "A"]
    assert split_raw_uri_path("/read/d:k=%22a%2Fb%22/A/") == ["read", 'd:k="a/b"', "A"]
    assert split_raw_uri_path("/read/d:k=a!%2Fb") == ["read", "d:k=a/b"]
    assert split_raw_uri_path("/x/%C3%A9!!") == ["x", "é!"]
    assert split_raw_uri_path("") == [] and split_raw_uri_path("/") == []
    assert split_raw_uri_path("/exec/d:k=v/op/a!//b") == ["exec", "d:k=v", "op", "a/", "b"]


@given(st.lists(st.text(), min_size=1))
def test_escaped_parts_split_back(parts: list[str]) -> None:
    joined = "/".join(escape(p) for p in parts)
    assert split_path(joined) == (parts if joined else [])


@given(st.lists(st.text(min_size=1), min_size=1))
def test_escaped_and_encoded_parts_split_back_from_a_uri(parts: list[str]) -> None:
    raw = "/" + "/".join(quote(escape(p), safe="!") for p in parts)
    assert split_raw_uri_path(raw) == parts


def test_get_request_forms() -> None:
    assert get_request([]) == {"type": "version"}
    assert get_request(["read", "d:k=v", "A,B", "x", "y"]) == {
        "type": "read",
        "mbean": "d:k=v",
        "attribute": ["A", "B"],
        "path": ["x", "y"],
    }
    assert get_request(["write", "d:k=v", "A", "[null]"])["value"] is None
    assert get_request(["exec", "d:k=v", "op", '""', "[null]", "1"])["arguments"] == ["", None, "1"]
    assert get_request(["list", "d", "k=v"]) == {"type": "list", "path": ["d", "k=v"]}
    with pytest.raises(IllegalArgumentException, match="mbean"):
        get_request(["exec", "d:k=v"])


def test_navigate_and_replace() -> None:
    value = {"a": {"x": 1, "y": [10, 20]}, "b": {"x": 2}, "c": 3}
    assert navigate(value, []) is value
    assert navigate(value, ["a", "y", "1"]) == 20
    assert navigate(value, ["*", "x"]) == {"a": 1, "b": 2}
    assert navigate(value, ["a", "y", "*"]) == [10, 20]
    with pytest.raises(AttributeNotFoundException):
        navigate(value, ["a", "z"])
    with pytest.raises(AttributeNotFoundException):
        navigate(value, ["a", "y", "2"])
    with pytest.raises(IllegalArgumentException):
        navigate(value, ["a", "y", "first"])
    with pytest.raises(AttributeNotFoundException):
        navigate(value, ["c", "deeper"])
    new, old = replace_at(value, ["a", "y", "0"], 11)
    assert old == 10 and new["a"]["y"] == [11, 20] and value["a"]["y"] == [10, 20]
    with pytest.raises(IllegalArgumentException):
        replace_at(value, ["*", "x"], 0)


def test_error_mapping_and_the_agent_without_http() -> None:
    assert jolokia_error(ReconciliationAlreadyScheduledException("O=B, L=X, C=GB"))[:2] == (
        500,
        "agent.errors.ReconciliationAlreadyScheduledException",
    )
    assert jolokia_error(KeyError("internal"))[2] == "internal error; see the agent's log"
    registry = MBeanRegistry()
    add_test_beans(registry)
    agent = JolokiaAgent(registry, clock=lambda: 1234.5)
    reader = Principal("m", Role.READ_ONLY)
    r = agent.handle({"type": "read", "mbean": SETTINGS, "attribute": "Limit"}, reader)
    assert r == {
        "request": {"type": "read", "mbean": SETTINGS, "attribute": "Limit"},
        "value": 5,
        "status": 200,
        "timestamp": 1234,
    }
    r = agent.handle({"type": "exec", "mbean": SETTINGS, "operation": "Refuse"}, reader)
    assert r["status"] == 403  # the role is checked before the operation runs
    r = agent.handle({"type": "list", "path": "test/type=Settings"}, reader, {"maxDepth": "1"})
    assert r["value"] == {
        "desc": "Writable settings for the tests",
        "class": "ledgeragent.MBean",
        "attr": 1,
        "op": 1,
    }
    # Keys in any order find the bean in a list path.
    r = agent.handle({"type": "list", "path": "test/type=Path,name=bang!!/desc"}, reader)
    assert r["value"] == "bang"

"""JSON-RPC over the MBeans: in process through jsonrpcserver's dispatch, and over HTTP against the real
management app with jsonrpcclient + requests (positional and named params, batches, notifications,
every error code, the roles)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonrpcclient import Error, Ok, notification, parse, request
from werkzeug.serving import make_server

from agent.client.launcher import read_password
from agent.errors import ReconciliationAlreadyScheduledException
from agent.management.app import create_management_app
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MONITOR_PASSWORD_FILE,
    NetworkLayout,
    NodeLayout,
    default_node_names,
    init_network,
)
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.runtime import AgentRuntime, build_runtime
from mbeans import jsonrpc
from mbeans.access import Principal, Role
from mbeans.jsonrpc import MethodTable, handle, method_prefix
from mbeans.model import Impact, JavaType, MBean
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry

A, B, C = default_node_names(3)
B_NAME = str(B)

# -- a served agent (also used by tests/test_shell.py and tests/test_check.py) ------------------------


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    layout: NetworkLayout
    node: NodeLayout
    runtime: AgentRuntime
    operator: tuple[str, str]
    monitor: tuple[str, str]

    @property
    def rpc(self) -> str:
        return f"{self.url}/rpc"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """PartyA's management app with LedgerSync, on a loopback port of its own."""
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    node = layout.node(A)
    # Few, short retries: a reconciliation with an unattached peer fails at once, and stop() is quick.
    retry = RetryPolicy(max_attempts=2, base_delay=0.01)
    runtime = build_runtime(
        open_node(node.config), InProcessTransport(InProcessNetwork()), retry=retry, ledgersync=True
    )
    server = make_server("127.0.0.1", 0, create_management_app(runtime), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="management", daemon=True)
    thread.start()
    try:
        yield Served(
            f"http://127.0.0.1:{server.server_port}",
            layout,
            node,
            runtime,
            ("operator", read_password(node.folder)),
            ("monitor", (node.folder / MONITOR_PASSWORD_FILE).read_text().strip()),
        )
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        runtime.stop(5)


def post(served: Served, body: Any, auth: tuple[str, str] | None = None, path: str = "/rpc") -> Any:
    response = requests.post(
        served.url + path, json=body, auth=auth if auth is not None else served.operator, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return response.json()


def call(served: Served, method: str, params: Any = None, auth: tuple[str, str] | None = None) -> Any:
    return parse(post(served, request(method, params=params), auth))


# -- in process ---------------------------------------------------------------------------------------

OPERATOR = Principal("op", Role.OPERATOR)
MONITOR = Principal("monitor", Role.READ_ONLY)


def toy_registry() -> tuple[MBeanRegistry, dict[str, Any]]:
    state: dict[str, Any] = {"limit": 3}
    bean = MBean(ObjectName.parse("ledgeragent:type=Toy"), "A bean for the tests")
    bean.attribute("Limit", JavaType.INT, "writable", lambda: state["limit"], lambda v: state.update(limit=v))
    bean.attribute("Name", JavaType.STRING, "read-only", lambda: "toy")
    bean.operation("Echo", [("text", JavaType.STRING, "")], JavaType.STRING, "", lambda t: t)
    bean.operation(
        "Echo",
        [("text", JavaType.STRING, ""), ("times", JavaType.INT, "")],
        JavaType.STRING,
        "",
        lambda t, n: t * n,
    )
    bean.operation("Fail", [], JavaType.VOID, "", lambda: 1 / 0)
    bean.operation("Odd", [], JavaType.OBJECT, "", lambda: {1, 2})  # not JSON
    bean.operation("Refuse", [], JavaType.VOID, "", refuse, Impact.ACTION)
    registry = MBeanRegistry()
    registry.register(bean)
    other = MBean(ObjectName.parse("other:name=x,type=Y"), "Not in our domain")
    other.attribute("Name", JavaType.STRING, "", lambda: "other")
    registry.register(other)
    return registry, state


def refuse() -> None:
    raise ReconciliationAlreadyScheduledException(B_NAME)


def rpc(table: MethodTable, method: str, params: Any = None, who: Principal = OPERATOR) -> Any:
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 7}
    if params is not None:
        body["params"] = params
    return handle(json.dumps(body), table, who)


def test_method_names_are_the_type_key_and_the_member() -> None:
    assert method_prefix(ObjectName.parse("ledgeragent:type=LedgerSync")) == "LedgerSync"
    assert method_prefix(ObjectName.parse("other:type=Y,name=x")) == "other:name=x,type=Y"
    registry, _ = toy_registry()
    names = set(MethodTable(registry).methods())
    assert {"Toy.Limit", "Toy.setLimit", "Toy.Name", "Toy.Echo", "other:name=x,type=Y.Name"} <= names
    assert "Toy.setName" not in names  # read-only attribute: no setter
    assert {"read", "write", "exec", "list_methods", "rpc.discover"} <= names


def test_getters_setters_and_overloads_in_process() -> None:
    registry, state = toy_registry()
    table = MethodTable(registry)
    assert rpc(table, "Toy.Limit")["result"] == 3
    assert rpc(table, "Toy.setLimit", [5])["result"] == 3  # the old value, as Jolokia's write
    assert state["limit"] == 5
    assert rpc(table, "Toy.setLimit", {"value": "6"})["result"] == 5  # coerced as the bean's type
    assert rpc(table, "Toy.Echo", ["a"])["result"] == "a"
    assert rpc(table, "Toy.Echo", ["a", 3])["result"] == "aaa"
    assert rpc(table, "Toy.Echo", {"times": 2, "text": "b"})["result"] == "bb"
    assert (
        rpc(table, "exec", ["ledgeragent:type=Toy", "Echo(java.lang.String,int)", ["c", 2]])["result"] == "cc"
    )
    assert rpc(table, "read", {"mbean": "ledgeragent:type=Toy", "attribute": "Name"})["result"] == "toy"


@pytest.mark.parametrize(
    ("method", "params", "code", "error_type"),
    [
        ("Toy.Echo", ["a", 1, 2], -32602, None),  # no overload takes 3
        ("Toy.Echo", {"txt": "a"}, -32602, None),
        ("Toy.Name", ["x"], -32602, None),  # a getter takes nothing
        ("Toy.setLimit", [], -32602, None),
        ("Toy.Nope", None, -32601, None),
        ("read", ["ledgeragent:type=Nope", "X"], -32001, "InstanceNotFoundException"),
        ("read", ["ledgeragent:type=Toy", "X"], -32001, "AttributeNotFoundException"),
        ("exec", ["ledgeragent:type=Toy", "Nope", []], -32001, "OperationNotFoundException"),
        ("write", ["ledgeragent:type=Toy", "Name", "x"], -32001, "AttributeNotWritableException"),
        ("read", ["not a name", "X"], -32002, "MalformedObjectNameException"),
        ("Toy.setLimit", ["lots"], -32002, "IllegalArgumentException"),
        ("Toy.Refuse", None, -32004, "ReconciliationAlreadyScheduledException"),
        ("Toy.Fail", None, -32603, None),
        ("Toy.Odd", None, -32603, None),
    ],
)
def test_each_error_has_its_code_a_readable_message_and_no_internals(
    method: str, params: Any, code: int, error_type: str | None
) -> None:
    registry, _ = toy_registry()
    error = rpc(MethodTable(registry), method, params)["error"]
    assert error["code"] == code
    assert error["message"] and "Traceback" not in error["message"]
    if error_type is not None:
        assert error["data"] == {"type": error_type}
    elif code == -32601:
        assert error["data"] == method
    else:
        assert "data" not in error
    if code == -32603:
        assert error["message"] == "internal error; see the agent's log"  # not "division by zero"


def test_the_read_only_role_may_read_but_not_act() -> None:
    registry, state = toy_registry()
    table = MethodTable(registry)
    assert rpc(table, "Toy.Limit", who=MONITOR)["result"] == 3
    for method, params in (
        ("Toy.setLimit", [9]),
        ("Toy.Refuse", None),
        ("write", ["ledgeragent:type=Toy", "Limit", 9]),
    ):
        error = rpc(table, method, params, MONITOR)["error"]
        assert error["code"] == -32003 and error["data"] == {"type": "SecurityException"}
        assert "operator role" in error["message"]
    assert state["limit"] == 3


def test_protocol_errors_batches_and_notifications_in_process() -> None:
    registry, _ = toy_registry()
    table = MethodTable(registry)
    assert handle("{not json", table, OPERATOR)["error"] == {
        "code": -32700,
        "message": "parse error: the body is not valid JSON",
    }
    for body in ("[]", '{"jsonrpc": "1.0", "method": "x", "id": 1}', '{"method": 3, "id": 1}'):
        reply = handle(body, table, OPERATOR)
        assert reply["error"]["code"] == -32600 and reply["id"] is None
    assert handle('{"jsonrpc": "2.0", "method": "Toy.Limit"}', table, OPERATOR) is None
    batch = [
        {"jsonrpc": "2.0", "method": "Toy.Limit", "id": 1},
        {"jsonrpc": "2.0", "method": "Toy.Name"},
        {"jsonrpc": "2.0", "method": "Toy.Nope", "id": 2},
    ]
    replies = handle(json.dumps(batch), table, OPERATOR)
    assert [r["id"] for r in replies] == [1, 2]
    assert replies[0]["result"] == 3 and replies[1]["error"]["code"] == -32601


def test_the_method_table_follows_the_registry() -> None:
    registry, _ = toy_registry()
    table = MethodTable(registry)
    assert "Later.Value" not in table.methods()
    later = MBean(ObjectName.parse("ledgeragent:type=Later"), "registered after the first call")
    later.attribute("Value", JavaType.INT, "", lambda: 1)
    registry.register(later)
    assert rpc(table, "Later.Value")["result"] == 1


def test_introspection_lists_every_member_with_its_role() -> None:
    registry, _ = toy_registry()
    table = MethodTable(registry)
    listed = {(m["name"], m["member"]): m for m in rpc(table, "list_methods")["result"]}
    assert listed[("Toy.setLimit", "Limit")]["role"] == "operator"
    assert listed[("Toy.Echo", "Echo(java.lang.String,int)")]["params"] == [
        {"name": "text", "type": "java.lang.String"},
        {"name": "times", "type": "int"},
    ]
    discovered = rpc(table, "rpc.discover")["result"]
    assert discovered["openrpc"] and any(m["name"] == "Toy.Limit" for m in discovered["methods"])


# -- over HTTP, the agent's own beans -----------------------------------------------------------------


def test_attributes_by_prefixed_and_bare_names(served: Served) -> None:
    counted = call(served, "LedgerSync.NumberOfFailedReconciliations")
    assert isinstance(counted, Ok) and counted.result == 0
    for method in ("FailedParties", "LedgerSync.FailedParties"):
        result = call(served, method)
        assert isinstance(result, Ok) and result.result == []
    assert call(served, "LedgerGraph.IsSelfConsistent").result is True
    assert call(served, "Node.Identity").result == str(A)
    # killFlow is on Flows and on LedgerSync: no bare alias, both prefixed names exist
    assert isinstance(call(served, "killFlow", ["x"]), Error)
    assert call(served, "Flows.killFlow", ["c243222b-1940-45df-8828-a8496196d274"]).result is False


def test_positional_and_named_params_and_the_rpc_slash_path(served: Served) -> None:
    assert call(served, "ReconciliationStatus", [B_NAME]).result is None
    assert call(served, "LedgerSync.ReconciliationStatus", {"party": B_NAME}).result is None
    named = {"party": B_NAME, "lastReconciliationStatus": None, "isRequester": True}
    assert call(served, "LedgerSync.GetReconciliationStatuses", named).result == []
    assert call(served, "LedgerSync.GetReconciliationStatuses", {"isRequester": False}).result == []
    assert call(served, "IsReconciliationScheduledForParty", [B_NAME]).result is False
    reply = post(served, request("LedgerSync.NumberOfScheduledReconciliations"), path="/rpc/")
    assert isinstance(parse(reply), Ok)


def test_scheduling_then_the_domain_refusal_named_in_data(served: Served) -> None:
    # PartyB is not attached to this in-process network: the reconciliation fails in the background.
    assert call(served, "ScheduleReconciliation", {"parties": [B_NAME]}).result is None
    result = call(served, "LedgerSync.ScheduleReconciliation", [[str(A)]])
    assert isinstance(result, Error) and result.code == -32004
    assert result.data == {"type": "CannotReconcileWithSelfException"}
    bad = call(served, "LedgerSync.ScheduleReconciliation", [["not a name"]])
    assert isinstance(bad, Error) and bad.code == -32002 and bad.data == {"type": "IllegalArgumentException"}


def test_batch_and_notification_over_http(served: Served) -> None:
    batch = [
        request("NumberOfReconciliationsInProgress"),
        notification("NumberOfFailedReconciliations"),
        request("Nope"),
        request("Node.Role"),
    ]
    replies = list(parse(post(served, batch)))
    assert len(replies) == 3
    assert isinstance(replies[0], Ok) and replies[0].result == 0
    assert isinstance(replies[1], Error) and replies[1].code == -32601
    assert isinstance(replies[2], Ok) and replies[2].result == "node"
    response = requests.post(served.rpc, json=notification("FailedParties"), auth=served.operator, timeout=30)
    assert response.status_code == 204 and response.content == b""
    only_notifications = [notification("FailedParties"), notification("Node.Role")]
    response = requests.post(served.rpc, json=only_notifications, auth=served.operator, timeout=30)
    assert response.status_code == 204 and response.content == b""


def test_an_invalid_element_of_a_batch_over_http_gets_its_own_answer(served: Served) -> None:
    batch = [1, request("Node.Role", id=2), {"method": "Node.Role", "id": 3}, notification("FailedParties")]
    replies = post(served, batch)
    assert [(r["id"], r.get("error", {}).get("code")) for r in replies] == [
        (None, -32600),
        (2, None),
        (None, -32600),
    ]
    assert replies[1]["result"] == "node" and replies[1]["jsonrpc"] == "2.0"
    assert [r["id"] for r in post(served, [1, 2, 3])] == [None, None, None]


def test_every_standard_code_over_http(served: Served) -> None:
    def raw(body: str) -> Any:
        response = requests.post(
            served.rpc,
            data=body,
            auth=served.operator,
            timeout=30,
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200
        return response.json()

    assert raw("{oops")["error"]["code"] == -32700
    assert raw("[]")["error"]["code"] == -32600
    assert raw('{"jsonrpc": "2.0", "id": 1}')["error"]["code"] == -32600
    assert call(served, "NoSuchMethod").code == -32601
    assert call(served, "FailedParties", ["extra"]).code == -32602
    assert call(served, "read", ["ledgeragent:type=Nope", "X"]).code == -32001


def test_an_unexpected_failure_is_logged_and_answered_without_detail(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sync = served.runtime.ledgersync
    assert sync is not None

    def broken(*args: Any) -> Any:
        raise RuntimeError("the database password is hunter2")

    monkeypatch.setattr(sync.statuses, "_count", broken)  # the store failing under the bean
    with caplog.at_level("ERROR", logger=jsonrpc.log.name):
        result = call(served, "NumberOfFailedReconciliations")
    assert isinstance(result, Error) and result.code == -32603
    assert result.message == "internal error; see the agent's log" and result.data is None
    assert "hunter2" in caplog.text  # in the log, not in the reply


def test_roles_over_http(served: Served) -> None:
    assert call(served, "NumberOfFailedReconciliations", auth=served.monitor).result == 0
    assert call(served, "ReconciliationStatus", [B_NAME], auth=served.monitor).result is None
    for method, params in (
        ("ScheduleReconciliation", [[B_NAME]]),
        ("RefreshReconciliationStatuses", None),
        ("Flows.killFlow", ["c243222b-1940-45df-8828-a8496196d274"]),
        ("LedgerGraph.CheckConsistency", None),
    ):
        result = call(served, method, params, auth=served.monitor)
        assert isinstance(result, Error) and result.code == -32003, method
        assert result.data == {"type": "SecurityException"} and "monitor" in result.message
    assert call(served, "IsReconciliationScheduledForParty", [B_NAME]).result is False  # nothing scheduled


@pytest.mark.parametrize("auth", [None, ("operator", "wrong"), ("nobody", "x")])
def test_anonymous_or_wrong_credentials_get_401_with_a_challenge(
    served: Served, auth: tuple[str, str] | None
) -> None:
    response = requests.post(served.rpc, json=request("FailedParties"), auth=auth, timeout=30)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    reply = parse(response.json())
    assert isinstance(reply, Error) and reply.code == -32005

"""The agent's writable settings (LedgerSync's limits, the log levels) through Jolokia and JSON-RPC on the
real management app in process, and the protocol 8 details the live tests (tests/management/
test_jolokia_js.py) reach only from outside: when list's tree counts as changed, serializeLong,
includeRequest, error_type_jmx."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from agent.client.launcher import read_password
from agent.logs.setup import LIBRARY_LOGGERS
from agent.management.app import create_management_app
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MONITOR_PASSWORD_FILE,
    MONITOR_USER,
    OPERATOR_USER,
    init_network,
)
from agent.runtime import AgentRuntime
from mbeans.access import Principal, Role
from mbeans.jolokia import JolokiaAgent
from mbeans.model import JavaType, MBean
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry
from tests.ledgersync.conftest import A, B, Net

SYNC = "ledgeragent:type=LedgerSync"
LOGGING = "ledgeragent:type=Logging"
OPERATOR = Principal("op", Role.OPERATOR)


@dataclass
class App:
    client: FlaskClient
    runtime: AgentRuntime
    operator: str
    monitor: str

    def jolokia(self, body: Any, user: str = OPERATOR_USER, query: str = "") -> Any:
        return self.client.post("/jolokia" + query, json=body, headers=self._auth(user)).get_json(force=True)

    def rpc(self, method: str, params: Any, user: str = OPERATOR_USER) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        return self.client.post("/rpc", json=body, headers=self._auth(user)).get_json(force=True)

    def _auth(self, user: str) -> dict[str, str]:
        password = self.operator if user == OPERATOR_USER else self.monitor
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def audit(self, **filters: Any) -> list[Any]:
        return list(self.runtime.node.store.audit.entries(action="write", **filters))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    layout = init_network(tmp_path_factory.mktemp("settings") / "net", [A, B], DEFAULT_NOTARY)
    net = Net(layout)
    try:
        net.start(A)
        folder = layout.node(A).folder
        monitor = (folder / MONITOR_PASSWORD_FILE).read_text().strip()
        flask_app = create_management_app(net[A])
        yield App(flask_app.test_client(), net[A], read_password(folder), monitor)
    finally:
        net.stop()


@pytest.fixture
def levels() -> Iterator[None]:
    """The root and library loggers' levels put back after the test (they are the process's)."""
    names = ["", *LIBRARY_LOGGERS]
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def write(attribute: str, value: Any, mbean: str = SYNC) -> dict[str, Any]:
    return {"type": "write", "mbean": mbean, "attribute": attribute, "value": value}


def test_a_limit_written_reaches_every_part_of_ledgersync(app: App) -> None:
    sync = app.runtime.ledgersync
    assert sync is not None
    r = app.jolokia(write("MaxNumberOfParallelReconciliationRequests", 7))
    assert (r["status"], r["value"]) == (200, 3)
    for part in (sync, sync.incoming, sync.service, sync.scheduler):
        assert part.config.max_number_of_parallel_reconciliation_requests == 7
    assert sync.scheduler.slots.capacity == 7
    r = app.jolokia(write("MaxReconciliationRetryAttemptTimeout", "5h3m2s"))
    assert (r["status"], r["value"]) == (200, "1H")
    assert sync.scheduler.config.max_reconciliation_retry_attempt_timeout.total_seconds() == 5 * 3600 + 182
    assert app.jolokia({"type": "read", "mbean": SYNC, "attribute": "MaxReconciliationRetryAttemptTimeout"})[
        "value"
    ] == ("5H3M2S")
    entry = app.audit(user=OPERATOR_USER)[0]
    assert (entry.target, entry.outcome, entry.surface) == (
        f"{SYNC} MaxReconciliationRetryAttemptTimeout = '5h3m2s'",
        "done: was '1H'",
        "jolokia",
    )
    app.jolokia(write("MaxNumberOfParallelReconciliationRequests", 3))
    app.jolokia(write("MaxReconciliationRetryAttemptTimeout", "1H"))
    assert sync.scheduler.slots.capacity == 3


@pytest.mark.parametrize(
    ("attribute", "value", "allowed"),
    [
        ("MaxNumberOfIbfFilterFlows", 16, "an integer from 1 to 15"),
        ("MaxNumberOfIbfFilterFlows", 0, "an integer from 1 to 15"),
        ("MaxNumberOfParallelReconciliationRequests", 11, "an integer from 1 to 10"),
        ("TransactionReaderPoolSize", 4, "an integer from 5 to 1000"),
        ("MaxAllowedReconciliationRequestsPerTimeWindow", -1, "an integer from 0 to 2147483647"),
        ("MaxNumberOfIbfFilterFlows", "many", "an integer (int)"),
        ("TimeWindowForReconciliationRequestLimit", "1 H", "a duration"),
        ("TimeWindowForReconciliationRequestLimit", "-1H", "a duration"),
    ],
)
def test_a_value_out_of_range_names_the_attribute_and_changes_nothing(
    app: App, attribute: str, value: Any, allowed: str
) -> None:
    sync = app.runtime.ledgersync
    assert sync is not None
    before = sync.config
    r = app.jolokia(write(attribute, value))
    assert (r["status"], r["error_type"]) == (400, "java.lang.IllegalArgumentException")
    assert attribute in r["error"] and allowed in r["error"], r["error"]
    assert sync.config is before and sync.scheduler.config is before and sync.incoming.config is before


def test_a_read_only_user_is_refused_by_name_and_audited(app: App) -> None:
    sync = app.runtime.ledgersync
    assert sync is not None
    before = sync.config
    r = app.jolokia(write("MaxNumberOfIbfFilterFlows", "not even a number"), user=MONITOR_USER)
    # Refused before the value is looked at: the answer is the role, not the value.
    assert (r["status"], r["error_type"]) == (403, "java.lang.SecurityException")
    assert "operator role" in r["error"] and repr(MONITOR_USER) in r["error"]
    assert sync.config is before
    entry = app.audit(user=MONITOR_USER)[0]
    assert entry.role == "read-only" and entry.outcome.startswith("refused:")
    refused_before = len(app.audit(user=MONITOR_USER))
    r = app.rpc("LedgerSync.setMaxNumberOfIbfFilterFlows", [7], user=MONITOR_USER)
    assert "error" in r and sync.config is before
    # Through JSON-RPC too, the refusal is audited with the caller.
    assert len(app.audit(user=MONITOR_USER)) == refused_before + 1
    # The role before anything else, an attribute that does not exist included.
    r = app.jolokia(write("NoSuchSetting", 1), user=MONITOR_USER)
    assert r["status"] == 403
    assert app.jolokia(write("NoSuchSetting", 1))["status"] == 404


def test_json_rpc_writes_the_same_attributes(app: App) -> None:
    sync = app.runtime.ledgersync
    assert sync is not None
    r = app.rpc("LedgerSync.setMaxNumberOfIbfFilterFlows", [9])
    assert r["result"] == 5 and sync.config.max_number_of_ibf_filter_flows == 9
    r = app.rpc("write", {"mbean": SYNC, "attribute": "MaxNumberOfIbfFilterFlows", "value": 99})
    assert "MaxNumberOfIbfFilterFlows" in r["error"]["message"] and "1 to 15" in r["error"]["message"]
    assert sync.config.max_number_of_ibf_filter_flows == 9
    assert app.rpc("LedgerSync.setMaxNumberOfIbfFilterFlows", [5])["result"] == 9
    # Audited with the caller, as through Jolokia.
    assert {e.user for e in app.audit(user=OPERATOR_USER)} == {OPERATOR_USER}
    assert not app.audit(user="(in-process)")


def test_the_log_levels_are_writable(app: App, levels: None) -> None:
    del levels
    logging.getLogger().setLevel(logging.INFO)
    r = app.jolokia(write("Level", "debug", LOGGING))
    assert (r["status"], r["value"]) == (200, "INFO") and logging.getLogger().level == logging.DEBUG
    r = app.jolokia(write("LibraryLevel", "ERROR", LOGGING))
    assert r["status"] == 200
    assert all(logging.getLogger(name).level == logging.ERROR for name in LIBRARY_LOGGERS)
    r = app.jolokia(write("Level", "LOUD", LOGGING))
    assert r["status"] == 400 and "Level" in r["error"] and "DEBUG, INFO, WARNING, ERROR" in r["error"]
    assert logging.getLogger().level == logging.DEBUG
    r = app.jolokia(write("Level", "INFO", LOGGING), user=MONITOR_USER)
    assert r["status"] == 403 and logging.getLogger().level == logging.DEBUG
    listed = app.jolokia({"type": "list", "path": "ledgeragent/type=Logging/attr/Level"})["value"]
    assert (listed["rw"], listed["w"], listed["type"]) == (True, True, "java.lang.String")


# -- protocol 8, in process ------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_list_is_not_modified_until_a_bean_comes_or_goes() -> None:
    registry = MBeanRegistry()
    registry.register(MBean(ObjectName.parse("t:type=One"), "one"))
    clock = Clock(1000.0)
    agent = JolokiaAgent(registry, clock=clock)
    clock.now = 1010.0
    assert agent.handle({"type": "list"}, OPERATOR, {"ifModifiedSince": 1005})["status"] == 304
    assert agent.handle({"type": "list"}, OPERATOR, {"ifModifiedSince": 999})["status"] == 200
    clock.now = 1020.5
    registry.register(MBean(ObjectName.parse("t:type=Two"), "two"))
    r = agent.handle({"type": "list"}, OPERATOR, {"ifModifiedSince": 1010})
    assert r["status"] == 200 and set(r["value"]["t"]) == {"type=One", "type=Two"}
    clock.now = 1030.0
    assert agent.handle({"type": "list"}, OPERATOR, {"ifModifiedSince": 1021})["status"] == 304
    registry.unregister("t:type=Two")
    assert agent.handle({"type": "list"}, OPERATOR, {"ifModifiedSince": 1021})["status"] == 200
    not_modified = agent.handle(
        {"type": "list"}, OPERATOR, {"ifModifiedSince": 1031, "includeRequest": "false"}
    )
    assert not_modified == {"status": 304, "timestamp": 1030}
    # Only list honours it (as Jolokia): a read answers its value.
    read = agent.handle({"type": "version"}, OPERATOR, {"ifModifiedSince": 2000})
    assert read["status"] == 200


def test_serialize_long_include_request_and_error_fields() -> None:
    registry = MBeanRegistry()
    bean = MBean(ObjectName.parse("t:type=Numbers"), "numbers")
    bean.attribute("Big", JavaType.LONG, "a long", lambda: 2**60)
    bean.attribute("Small", JavaType.INT, "an int", lambda: 7)
    bean.attribute("Counts", JavaType.MAP, "counts", lambda: {"a": 2**60, "ok": True, "name": "x"})
    registry.register(bean)
    agent = JolokiaAgent(registry, clock=lambda: 5.0)
    read = {"type": "read", "mbean": "t:type=Numbers"}
    r = agent.handle(read, OPERATOR, {"serializeLong": "string"})
    assert r["value"] == {"Big": str(2**60), "Small": 7, "Counts": {"a": str(2**60), "ok": True, "name": "x"}}
    assert agent.handle(read, OPERATOR)["value"]["Big"] == 2**60
    assert agent.handle({**read, "config": {"serializeLong": "hex"}}, OPERATOR)["status"] == 400
    assert "request" not in agent.handle(read, OPERATOR, {"includeRequest": False})
    assert agent.handle(read, OPERATOR, {"includeRequest": "true"})["request"] == read
    missing = agent.handle({"type": "read", "mbean": "t:type=None"}, OPERATOR, {"includeRequest": "false"})
    assert missing["error_type_jmx"] == "javax.management.InstanceNotFoundException"
    assert "request" not in missing
    bad = agent.handle({"type": "exec", "mbean": "t:type=Numbers", "operation": "nope"}, OPERATOR)
    assert bad["status"] == 400 and "error_type_jmx" not in bad
    star = agent.handle({"type": "read", "mbean": "t:type=Numbers", "attribute": "*"}, OPERATOR)
    assert set(star["value"]) == {"Big", "Small", "Counts"}
    listed = agent.handle({"type": "list", "path": "t/type=Numbers"}, OPERATOR, {"listKeys": "true"})
    assert listed["value"]["keys"] == {"type": "Numbers"}
    assert "keys" not in agent.handle({"type": "list", "path": "t/type=Numbers"}, OPERATOR)["value"]

"""Logins on the management endpoint: a back-off per client address answered 429 on every surface, the
same PBKDF2 for an unknown user as for a known one, and each failure in the log and the audit log."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import Authorization
from werkzeug.test import TestResponse

from agent.client.launcher import read_password
from agent.clock import ManualClock
from agent.config import ManagementUser
from agent.errors import TooManyLoginAttemptsError
from agent.login_throttle import LoginThrottle, LoginThrottleSettings
from agent.management.app import create_management_app
from agent.management.auth import ManagementAuth
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.node import open_node
from agent.operator_api.layout import MONITOR_PASSWORD_FILE
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.passwords import ITERATIONS, hash_password
from agent.runtime import AgentRuntime, build_runtime
from agent.store.ledger_store import LedgerStore
from mbeans.jsonrpc import TOO_MANY_LOGINS, UNAUTHENTICATED

LIMITS = "\nmanagementLogins { maxFailures = 3, failureWindow = 1m, backOff = 2m }\n"
GUESS = "correct-horse-battery-guess"  # a wrong password: it must appear in no log line, no audit entry


@dataclass
class Node:
    runtime: AgentRuntime
    operator: tuple[str, str]
    monitor: tuple[str, str]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    layout = init_network(tmp_path_factory.mktemp("logins") / "net", default_node_names(3), DEFAULT_NOTARY)
    entry = layout.nodes[1]
    with entry.config.open("a") as conf:
        conf.write(LIMITS)
    runtime = build_runtime(open_node(entry.config), InProcessTransport(InProcessNetwork()))
    try:
        yield Node(
            runtime,
            ("operator", read_password(entry.folder)),
            ("monitor", (entry.folder / MONITOR_PASSWORD_FILE).read_text().strip()),
        )
    finally:
        runtime.stop(5)


@pytest.fixture
def app(node: Node) -> Flask:
    """A fresh management app (so a fresh throttle) over the module's node."""
    return create_management_app(node.runtime)


@pytest.fixture
def pbkdf2_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The iterations of every PBKDF2 the test runs (hashlib's own function, counted on the way)."""
    calls: list[int] = []
    real = hashlib.pbkdf2_hmac

    def counted(name: str, password: bytes, salt: bytes, iterations: int, dklen: int | None = None) -> bytes:
        calls.append(iterations)
        return real(name, password, salt, iterations, dklen)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counted)
    return calls


def call(app: Flask, surface: str, address: str, auth: tuple[str, str] | None) -> TestResponse:
    client = app.test_client()
    environ = {"REMOTE_ADDR": address}
    if surface == "rest":
        return client.get("/api/vault", auth=auth, environ_base=environ)
    if surface == "jolokia":
        return client.get("/jolokia/version", auth=auth, environ_base=environ)
    if surface == "jsonrpc":
        body = {"jsonrpc": "2.0", "method": "list_methods", "id": 1}
        return client.post("/rpc", json=body, auth=auth, environ_base=environ)
    assert surface == "metrics"
    return client.get("/metrics", auth=auth, environ_base=environ)


def check_throttled(surface: str, answer: TestResponse) -> None:
    """The 429 in the surface's own shape."""
    assert answer.status_code == 429
    assert 1 <= int(answer.headers["Retry-After"]) <= 120
    body: dict[str, Any] = json.loads(answer.get_data(as_text=True))
    if surface in ("rest", "metrics"):
        assert body["error"] == "TooManyLoginAttempts"
        assert "too many failed logins from" in body["message"]
    elif surface == "jolokia":
        assert body["status"] == 429
        assert body["error_type"] == "java.lang.SecurityException"
        assert body["error"].startswith("java.lang.SecurityException : too many failed logins from")
    else:
        assert body["error"]["code"] == TOO_MANY_LOGINS
        assert body["error"]["data"] == {"type": "TooManyLoginAttemptsError"}
        assert body["id"] is None and body["jsonrpc"] == "2.0"


@pytest.mark.parametrize("surface", ["rest", "jolokia", "jsonrpc", "metrics"])
def test_a_backed_off_address_gets_429_without_pbkdf2_and_others_get_in(
    surface: str, app: Flask, node: Node, pbkdf2_calls: list[int]
) -> None:
    attacker = f"192.0.2.{10 + ['rest', 'jolokia', 'jsonrpc', 'metrics'].index(surface)}"
    for _ in range(3):
        refused = call(app, surface, attacker, (node.operator[0], GUESS))
        assert refused.status_code == 401
        if surface == "jsonrpc":
            assert refused.get_json()["error"]["code"] == UNAUTHENTICATED
    assert pbkdf2_calls == [ITERATIONS] * 3
    for auth in ((node.operator[0], GUESS), node.operator, None):
        # a correct password too: from this address nothing is checked until the back-off ends
        check_throttled(surface, call(app, surface, attacker, auth))
    assert pbkdf2_calls == [ITERATIONS] * 3  # no password was checked for the 429s
    assert call(app, surface, "198.51.100.7", node.monitor).status_code == 200
    assert call(app, surface, "198.51.100.7", node.operator).status_code == 200


def test_failed_logins_are_logged_and_audited_without_the_password(
    app: Flask, node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ledger_agent")
    address = "203.0.113.5"
    assert call(app, "rest", address, ("operator", GUESS)).status_code == 401
    assert call(app, "jsonrpc", address, ("nobody", GUESS)).status_code == 401
    assert call(app, "jolokia", address, ("monitor", GUESS)).status_code == 401
    assert call(app, "rest", address, node.operator).status_code == 429
    lines = [r.getMessage() for r in caplog.records if r.name == "ledger_agent.management.logins"]
    assert lines == [
        f"failed management login from {address}: user 'operator' (bad credentials)",
        f"management logins from {address} backed off for 120 s after 3 failed within 60 s "
        "(users tried: 'operator', 'nobody', 'monitor')",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records if r.name.endswith(".logins"))
    assert GUESS not in caplog.text and node.operator[1] not in caplog.text
    entries = [e.as_dict() for e in node.runtime.node.store.audit.entries(action="login")]
    mine = sorted((e for e in entries if e["target"] == address), key=lambda e: e["id"])
    assert [(e["user"], e["role"], e["surface"], e["outcome"], e["reason"]) for e in mine] == [
        ("operator", "-", "rest", "refused: bad credentials", None),
        ("nobody", "-", "jsonrpc", "refused: bad credentials", None),
        ("monitor", "-", "jolokia", f"refused: bad credentials; {address} backed off for 120 s", None),
    ]
    assert GUESS not in json.dumps(entries) and node.operator[1] not in json.dumps(entries)
    # the audit log is readable where it always was
    listed = app.test_client().get("/api/audit?action=login", auth=node.monitor)
    assert {e["target"] for e in listed.get_json()} >= {address}


def test_an_unknown_user_costs_the_same_pbkdf2_as_a_known_one(
    app: Flask, node: Node, pbkdf2_calls: list[int]
) -> None:
    assert call(app, "rest", "203.0.113.20", ("no-such-user", GUESS)).status_code == 401
    assert pbkdf2_calls == [ITERATIONS]
    assert call(app, "rest", "203.0.113.21", ("operator", GUESS)).status_code == 401
    assert pbkdf2_calls == [ITERATIONS, ITERATIONS]
    assert call(app, "rest", "203.0.113.22", ("", GUESS)).status_code == 401
    assert pbkdf2_calls == [ITERATIONS] * 3


def test_a_missing_password_is_not_a_failed_login(app: Flask, node: Node) -> None:
    for _ in range(5):  # more than maxFailures: a client's first, unauthenticated request is normal
        assert call(app, "rest", "203.0.113.30", None).status_code == 401
    assert call(app, "rest", "203.0.113.30", node.monitor).status_code == 200


# The gate itself, in simulated time and with cheap hashes.


@pytest.fixture
def auth(tmp_path: Path) -> Iterator[tuple[ManagementAuth, ManualClock, LedgerStore]]:
    clock = ManualClock()
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db", clock=clock)
    users = [ManagementUser("operator", hash_password("right", iterations=1000), "operator")]
    settings = LoginThrottleSettings(max_failures=2, failure_window_s=60, back_off_s=30)
    try:
        yield ManagementAuth(users, LoginThrottle(settings, clock), store.audit), clock, store
    finally:
        store.close()


def basic(username: str, password: str) -> Authorization:
    return Authorization("basic", {"username": username, "password": password})


def test_a_correct_password_from_a_backed_off_address_waits_for_the_back_off(
    auth: tuple[ManagementAuth, ManualClock, LedgerStore], pbkdf2_calls: list[int]
) -> None:
    gate, clock, store = auth
    here = {"address": "10.9.9.9", "surface": "rest"}
    assert gate.principal(basic("operator", "wrong"), **here) is None
    assert gate.principal(basic("ghost", "wrong"), **here) is None
    assert pbkdf2_calls == [1000, 1000]  # the dummy hash has the users' iterations
    with pytest.raises(TooManyLoginAttemptsError) as refused:
        gate.principal(basic("operator", "right"), **here)
    assert refused.value.retry_after_s == 30
    assert pbkdf2_calls == [1000, 1000]
    elsewhere = gate.principal(basic("operator", "right"), address="10.9.9.10", surface="jolokia")
    assert elsewhere is not None and elsewhere.username == "operator"
    clock.advance(timedelta(seconds=30))
    principal = gate.principal(basic("operator", "right"), **here)
    assert principal is not None and principal.role.value == "operator"
    entries = store.audit.entries(action="login")
    assert [(e.at, e.user, e.target, e.outcome) for e in reversed(entries)] == [
        (clock.now() - timedelta(seconds=30), "operator", "10.9.9.9", "refused: bad credentials"),
        (
            clock.now() - timedelta(seconds=30),
            "ghost",
            "10.9.9.9",
            "refused: bad credentials; 10.9.9.9 backed off for 30 s",
        ),
    ]

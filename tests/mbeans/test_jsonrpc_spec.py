"""The JSON-RPC 2.0 specification's own examples (section 7, https://www.jsonrpc.org/specification),
each answered with exactly the ids, codes and results the specification gives. Its methods (`sum`,
`subtract`, `get_data`, ...) are operations of a LedgerSync bean of these tests, which the agent also
serves by their bare names. Messages are the agent's own (readable), so only codes are compared."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mbeans.access import Principal, Role
from mbeans.jsonrpc import MethodTable, handle
from mbeans.limits import MAX_BULK
from mbeans.model import Impact, JavaType, MBean
from mbeans.names import LEDGER_SYNC
from mbeans.registry import MBeanRegistry

OPERATOR = Principal("op", Role.OPERATOR)
MONITOR = Principal("monitor", Role.READ_ONLY)
INT = JavaType.INT


def spec_table() -> tuple[MethodTable, list[tuple[str, tuple[Any, ...]]]]:
    """The specification's server: its methods, and a record of every call that ran."""
    calls: list[tuple[str, tuple[Any, ...]]] = []

    def recorded(name: str, result: Any) -> Any:
        def call(*args: Any) -> Any:
            calls.append((name, args))
            return result(*args)

        return call

    bean = MBean(LEDGER_SYNC, "The JSON-RPC specification's example methods")
    three = [("a", INT, ""), ("b", INT, ""), ("c", INT, "")]
    bean.operation("sum", three, INT, "", recorded("sum", lambda a, b, c: a + b + c))
    bean.operation(
        "subtract",
        [("minuend", INT, ""), ("subtrahend", INT, "")],
        INT,
        "",
        recorded("subtract", lambda m, s: m - s),
    )
    bean.operation("get_data", [], JavaType.LIST, "", recorded("get_data", lambda: ["hello", 5]))
    bean.operation(
        "notify_hello", [("n", INT, "")], JavaType.VOID, "", recorded("notify_hello", lambda n: None)
    )
    bean.operation("notify_sum", three, JavaType.VOID, "", recorded("notify_sum", lambda a, b, c: None))
    five = [(name, INT, "") for name in "abcde"]
    bean.operation("update", five, JavaType.VOID, "", recorded("update", lambda *a: None), Impact.ACTION)
    registry = MBeanRegistry()
    registry.register(bean)
    return MethodTable(registry), calls


def answer(body: str, who: Principal = OPERATOR) -> Any:
    table, _ = spec_table()
    return handle(body, table, who)


def shape(reply: Any) -> Any:
    """A reply without its messages: what the specification fixes (id, result, error code)."""
    if reply is None:
        return None
    if isinstance(reply, list):
        return [shape(r) for r in reply]
    assert reply["jsonrpc"] == "2.0"
    assert set(reply) in ({"jsonrpc", "result", "id"}, {"jsonrpc", "error", "id"}), reply
    if "error" in reply:
        assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
        return {"error": reply["error"]["code"], "id": reply["id"]}
    return {"result": reply["result"], "id": reply["id"]}


def ok(result: Any, id: Any) -> dict[str, Any]:
    return {"result": result, "id": id}


def error(code: int, id: Any = None) -> dict[str, Any]:
    return {"error": code, "id": id}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # rpc call with positional parameters
        ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}', ok(19, 1)),
        ('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}', ok(-19, 2)),
        # rpc call with named parameters
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
            ok(19, 3),
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
            ok(19, 4),
        ),
        # a Notification
        ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
        ('{"jsonrpc": "2.0", "method": "foobar"}', None),
        # rpc call of non-existent method
        ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', error(-32601, "1")),
        # rpc call with invalid JSON
        ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', error(-32700)),
        # rpc call with invalid Request object
        ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}', error(-32600)),
        # rpc call Batch, invalid JSON
        (
            '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
            '  {"jsonrpc": "2.0", "method"\n]',
            error(-32700),
        ),
        # rpc call with an empty Array
        ("[]", error(-32600)),
        # rpc call with an invalid Batch (but not empty)
        ("[1]", [error(-32600)]),
        # rpc call with invalid Batch
        ("[1,2,3]", [error(-32600), error(-32600), error(-32600)]),
        # rpc call Batch
        (
            """[
                {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
            ]""",
            [ok(7, "1"), ok(19, "2"), error(-32600), error(-32601, "5"), ok(["hello", 5], "9")],
        ),
        # rpc call Batch (all notifications)
        (
            """[
                {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
            ]""",
            None,
        ),
    ],
)
def test_the_specifications_examples(body: str, expected: Any) -> None:
    assert shape(answer(body)) == expected


def test_the_valid_calls_of_a_batch_run_beside_its_invalid_elements() -> None:
    table, calls = spec_table()
    batch = [
        {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        1,
        {"foo": "boo"},
        [{"jsonrpc": "2.0", "method": "sum", "params": [1, 1, 1], "id": "nested"}],  # not run
        {"jsonrpc": "1.0", "method": "sum", "params": [1, 1, 1], "id": "old"},
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1, 2, 4]},
    ]
    answered = handle(json.dumps(batch), table, OPERATOR)
    assert shape(answered) == [ok(7, "1"), error(-32600), error(-32600), error(-32600), error(-32600)]
    assert [r["error"]["message"] for r in answered[1:]] == [
        f"invalid request: element {n} of the batch is not a JSON-RPC 2.0 request object"
        for n in (3, 4, 5, 6)
    ]
    assert calls == [("sum", (1, 2, 4)), ("notify_hello", (7,)), ("notify_sum", (1, 2, 4))]


def test_a_batch_of_only_notifications_runs_them_and_answers_nothing() -> None:
    table, calls = spec_table()
    batch = [{"jsonrpc": "2.0", "method": "notify_hello", "params": [n]} for n in range(3)]
    assert handle(json.dumps(batch), table, OPERATOR) is None
    assert calls == [("notify_hello", (0,)), ("notify_hello", (1,)), ("notify_hello", (2,))]


def test_an_erring_notification_is_not_answered() -> None:
    batch = [
        {"jsonrpc": "2.0", "method": "subtract", "params": [1]},  # wrong params, still a notification
        {"jsonrpc": "2.0", "method": "nope"},
        {"jsonrpc": "2.0", "method": "get_data", "id": None},  # id null is a call, not a notification
    ]
    assert shape(answer(json.dumps(batch))) == [ok(["hello", 5], None)]


def test_roles_are_checked_per_element_of_a_batch() -> None:
    table, calls = spec_table()
    batch = [
        {"jsonrpc": "2.0", "method": "update", "params": [1, 2, 3, 4, 5], "id": 1},  # ACTION: operator only
        {"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 3], "id": 2},
    ]
    assert shape(handle(json.dumps(batch), table, MONITOR)) == [error(-32003, 1), ok(6, 2)]
    assert calls == [("sum", (1, 2, 3))]


def test_a_batch_past_the_limit_is_refused_whole_and_runs_nothing() -> None:
    table, calls = spec_table()
    batch = [{"jsonrpc": "2.0", "method": "sum", "params": [1, 2, 3], "id": n} for n in range(MAX_BULK + 1)]
    reply = handle(json.dumps(batch), table, OPERATOR)
    assert shape(reply) == error(-32600)
    assert f"at most {MAX_BULK}" in reply["error"]["message"]
    assert calls == []
    full = handle(json.dumps(batch[:MAX_BULK]), table, OPERATOR)
    assert [r["id"] for r in full] == list(range(MAX_BULK))

"""Answers of the management endpoint to requests it must refuse, over HTTP on loopback against the
real management app of a node.

What one request may ask of the agent (issue 16, item 3): bulks and batches, bodies, nesting and
answers past mbeans.limits' bounds are refused with each protocol's named error, before the work is
done; a 500 was the answer to deep nesting, and a read-only user's 1 MiB bulk ran for 72 s. And the
answers README promises (item 11): 400 for a malformed id, 405 with its Allow header."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from agent.client.launcher import read_password
from agent.management.app import create_management_app
from agent.network.bootstrap import DEFAULT_NOTARY, MONITOR_PASSWORD_FILE, MONITOR_USER, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.runtime import build_runtime
from mbeans.limits import MAX_BODY_BYTES, MAX_BULK, MAX_JSON_DEPTH, MAX_RESPONSE_BYTES, depth
from mbeans.model import JavaType, MBean
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry
from tests.ledgersync.conftest import A, B, C

BIG = "test:type=Big"
NODE = "ledgeragent:type=Node"


@dataclass
class Served:
    url: str
    monitor: tuple[str, str]
    operator: tuple[str, str]
    reads: list[int]  # one entry a read of BIG's Value


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    layout = init_network(tmp_path_factory.mktemp("limits") / "net", [A, B, C], DEFAULT_NOTARY)
    node = layout.node(A)
    runtime = build_runtime(open_node(node.config), InProcessTransport(InProcessNetwork()))
    app = create_management_app(runtime)
    registry: MBeanRegistry = app.extensions["ledger_agent.mbeans"]
    reads: list[int] = []
    value = "x" * (1024 * 1024)

    def read_big() -> str:
        reads.append(1)
        return value

    registry.register(
        MBean(ObjectName.parse(BIG), "one MiB").attribute("Value", JavaType.STRING, "v", read_big)
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="management", daemon=True)
    thread.start()
    try:
        yield Served(
            f"http://127.0.0.1:{server.server_port}",
            (MONITOR_USER, (node.folder / MONITOR_PASSWORD_FILE).read_text().strip()),
            ("operator", read_password(node.folder)),
            reads,
        )
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        runtime.stop(5)


def post(served: Served, path: str, body: str | bytes) -> requests.Response:
    return requests.post(
        served.url + path,
        data=body,
        auth=served.monitor,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


READ = {"type": "read", "mbean": NODE, "attribute": "Identity"}


# -- Jolokia -------------------------------------------------------------------------------------------


def test_a_jolokia_bulk_of_the_limit_runs_and_one_more_is_refused_by_name(served: Served) -> None:
    answers = post(served, "/jolokia", json.dumps([READ] * MAX_BULK)).json()
    assert [a["status"] for a in answers] == [200] * MAX_BULK

    refused = post(served, "/jolokia", json.dumps([READ] * (MAX_BULK + 1))).json()
    assert refused["status"] == 400
    assert refused["error_type"] == "java.lang.IllegalArgumentException"
    assert f"at most {MAX_BULK} requests" in refused["error"] and str(MAX_BULK + 1) in refused["error"]


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 100_000])
def test_deeply_nested_json_on_jolokia_is_a_named_error_not_500(served: Served, levels: int) -> None:
    response = post(served, "/jolokia", nested(levels))
    assert response.status_code == 200  # Jolokia's errors travel in the body
    answer = response.json()
    assert answer["status"] == 400
    assert f"deeper than {MAX_JSON_DEPTH} levels" in answer["error"]


def test_a_jolokia_body_past_the_limit_is_refused_by_name(served: Served) -> None:
    body = json.dumps([{"type": "version", "pad": "x" * MAX_BODY_BYTES}])
    answer = post(served, "/jolokia", body).json()
    assert answer["status"] == 400
    assert f"larger than {MAX_BODY_BYTES} bytes" in answer["error"]


def test_a_bulk_stops_running_requests_once_its_answers_pass_the_limit(served: Served) -> None:
    served.reads.clear()
    count = 20  # 20 MiB of answers asked, the limit 8 MiB
    answers = post(served, "/jolokia", json.dumps([{"type": "read", "mbean": BIG}] * count)).json()
    ran = [a for a in answers if a["status"] == 200]
    skipped = [a for a in answers if a["status"] != 200]
    assert len(answers) == count
    # Each answer is a little over 1 MiB: the 8th passes 8 MiB, and is the last run.
    assert len(ran) == MAX_RESPONSE_BYTES // (1024 * 1024)
    assert len(served.reads) == len(ran)  # the skipped ones were not read at all
    assert all(a["status"] == 400 and "was not run" in a["error"] for a in skipped)
    assert all(a["request"]["mbean"] == BIG for a in skipped)  # each echoes its request


# -- JSON-RPC ------------------------------------------------------------------------------------------


def rpc_call(i: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "read", "params": [NODE, "Identity"], "id": i}


def test_a_json_rpc_batch_of_the_limit_runs_and_one_more_is_refused_before_any_call(served: Served) -> None:
    answers = post(served, "/rpc", json.dumps([rpc_call(i) for i in range(MAX_BULK)])).json()
    assert sorted(a["id"] for a in answers) == list(range(MAX_BULK))
    assert all("result" in a for a in answers)

    served.reads.clear()
    batch = [
        {"jsonrpc": "2.0", "method": "read", "params": [BIG, "Value"], "id": i} for i in range(MAX_BULK + 1)
    ]
    refused = post(served, "/rpc", json.dumps(batch)).json()
    assert refused["error"]["code"] == -32600
    assert f"at most {MAX_BULK} requests" in refused["error"]["message"]
    assert served.reads == []


def test_deeply_nested_json_on_json_rpc_is_a_parse_error_naming_the_depth(served: Served) -> None:
    answer = post(served, "/rpc", nested(100_000)).json()
    assert answer["error"]["code"] == -32700
    assert f"deeper than {MAX_JSON_DEPTH} levels" in answer["error"]["message"]
    params = json.loads(nested(MAX_JSON_DEPTH))
    answer = post(served, "/rpc", json.dumps({"jsonrpc": "2.0", "method": "read", "params": params, "id": 1}))
    assert answer.json()["error"]["code"] == -32700


def test_a_json_rpc_body_past_the_limit_is_413_with_a_json_rpc_error(served: Served) -> None:
    response = post(served, "/rpc", json.dumps({"jsonrpc": "2.0", "method": "x" * MAX_BODY_BYTES, "id": 1}))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == -32600
    assert f"larger than {MAX_BODY_BYTES} bytes" in response.json()["error"]["message"]


# -- REST ----------------------------------------------------------------------------------------------


def test_deeply_nested_json_on_the_rest_api_is_400_not_500(served: Served) -> None:
    response = requests.post(
        served.url + "/api/flows/start/IssueTokensFlow",
        data=nested(100_000),
        auth=served.operator,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "JsonTooDeepError"


def test_a_rest_body_past_the_limit_is_413_named(served: Served) -> None:
    response = requests.post(
        served.url + "/api/flows/start/IssueTokensFlow",
        data=json.dumps({"pad": "x" * MAX_BODY_BYTES}),
        auth=served.operator,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "RequestTooLargeError"


def test_depth_counts_arrays_and_objects_and_stops_early() -> None:
    assert depth(1) == 0
    assert depth([]) == 1
    assert depth({"a": [1, {"b": []}]}) == 4
    assert depth(json.loads(nested(MAX_JSON_DEPTH))) == MAX_JSON_DEPTH
    assert depth(json.loads(nested(500))) == MAX_JSON_DEPTH + 1  # stops once past the limit


# -- as README says ------------------------------------------------------------------------------------


def test_a_malformed_transaction_id_is_400_naming_the_field(served: Served) -> None:
    for bad in ("XYZ", "Z" * 64):
        response = requests.get(f"{served.url}/api/transactions/{bad}", auth=served.monitor, timeout=30)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "SerializationError"
        assert response.json()["message"].startswith("tx_id:")


def test_a_malformed_transaction_id_is_an_illegal_argument_on_jolokia_and_json_rpc(served: Served) -> None:
    ops = "ledgeragent:type=NodeFlowStatusRpcOps"
    call = {"type": "exec", "mbean": ops, "operation": "getFlowTransactionByTxnId", "arguments": ["XYZ"]}
    answer = post(served, "/jolokia", json.dumps(call)).json()
    assert (answer["status"], answer["error_type"]) == (400, "java.lang.IllegalArgumentException"), answer
    rpc = {
        "jsonrpc": "2.0",
        "method": "NodeFlowStatusRpcOps.getFlowTransactionByTxnId",
        "params": ["XYZ"],
        "id": 1,
    }
    assert post(served, "/rpc", json.dumps(rpc)).json()["error"]["code"] == -32002


def test_a_method_not_allowed_says_which_are(served: Served) -> None:
    response = requests.delete(f"{served.url}/api/transactions/{'A' * 64}", auth=served.monitor, timeout=30)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}
    assert response.json()["error"] == "MethodNotAllowed"


def test_a_jolokia_get_path_with_a_newline_is_answered_by_jolokia(served: Served) -> None:
    # Found by tests/fuzz: werkzeug's path converter stops at a newline, and Flask answered its own 404.
    response = requests.get(f"{served.url}/jolokia/read/%0A", auth=served.monitor, timeout=30)
    answer = json.loads(response.text)
    assert answer["status"] in (400, 404) and "error_type" in answer, answer

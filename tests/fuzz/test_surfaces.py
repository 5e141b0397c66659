"""A live agent's surfaces, fuzzed as their clients reach them: JSON-RPC, Jolokia (POST and GET) and the
REST /api over HTTPS (checked against the node's network root), and the peer endpoint over mutual TLS
as a member of the network, PartyB with its own TLS certificate (random bytes, and messages sealed by
PartyB with any topic and payload, which pass the envelope's checks and reach the handlers).

What must hold for every input: no 5xx but for a domain refusal named by its class, an answer in the
surface's own error shape, and, after each test, the agent alive and its RSS bounded. The agent is a
real `ledger-agent run` process, stopped by its PID at the end.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.clock import SystemClock
from agent.errors import AgentError
from agent.ledger.keys import KeyPair
from agent.ledger.serialization import decode
from agent.network.bootstrap import (
    CERTIFICATES_DIR,
    DEFAULT_NOTARY,
    IDENTITY_KEY_FILE,
    init_network,
)
from agent.network.network_map import SignedNetworkMap
from agent.network.pki import read_certificate
from agent.operator_api.layout import OPERATOR_USER
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.envelope import parse_error_payload
from agent.p2p.http import HttpTransport
from tests.conftest import count_fuzzed
from tests.endpoints import management, member_transport
from tests.fuzz import fuzz_settings
from tests.fuzz.test_decoders import CBOR_VALUES
from tests.p2p.conftest import PARTY_A, PARTY_B

RSS_LIMIT_MB = 400  # the agent idles at about 90 MB; a leak per request would pass this within a run
TOPICS = [
    "ledgersync.begin",
    "ledgersync.symbols",
    "ledgersync.ids",
    "ledgersync.end",
    "finality.transaction",
    "finality.backchain",
    "finality.signatures",
    "finality.abort",
    "finality.outcome",
    "finality.killed",
    "finality.recovery.finalise",
    "finality.recovery.abort",
    "notary.notarise",
    "recovery.windowHashes",
    "recovery.records",
    "recovery.transactions",
    "recovery.push",
    "flow.session.rejected",
]
API_WORDS = [
    "flows",
    "start",
    "transactions",
    "vault",
    "finality",
    "recovery",
    "bulk",
    "jobs",
    "ledgersync",
    "kill",
    "retry",
    "pause",
    "resume",
    "IssueTokensFlow",
    "PayTokensFlow",
    "LedgerRecoveryFlow",
    "recoverFinalityFlowByTxnId",
    "A" * 64,
    "heldByNoPeer",
    "network",
    "peers",
]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)


@dataclass
class Live:
    process: AgentProcess
    base: str  # https://127.0.0.1:port
    http: httpx.Client  # checks the management certificate against the network's root
    peer: str  # host:port, from the network map
    transport: HttpTransport  # PartyB's: mutual TLS with its TLS certificate
    auth: tuple[str, str]
    member: MessageAuthenticator  # PartyB's, which the agent (PartyA) knows from its map
    methods: list[str]
    mbeans: list[str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-live")
    layout = init_network(tmp / "net", [PARTY_A, PARTY_B], DEFAULT_NOTARY, base_port=free_port_range(6))
    node = layout.node(PARTY_A)
    auth = (OPERATOR_USER, read_password(node.folder))
    client = ManagementClient.for_node(node.config, *auth)
    process = AgentProcess(node.config, node.folder / "agent.log", client)
    process.start()
    try:
        process.wait_ready()
        network_map = SignedNetworkMap.load(
            layout.network_map, read_certificate(layout.root_certificate), SystemClock()
        )
        b_key = KeyPair.read_pem(layout.node(PARTY_B).folder / CERTIFICATES_DIR / IDENTITY_KEY_FILE)
        member = MessageAuthenticator(network_map.node(PARTY_B).party, b_key, network_map, SystemClock())
        base, verify = management(node.config)
        assert base.startswith("https://"), base
        with (
            httpx.Client(verify=verify, trust_env=False) as http,
            member_transport(layout.node(PARTY_B).config) as transport,
        ):
            listed = http.post(
                f"{base}/rpc",
                json={"jsonrpc": "2.0", "method": "list_methods", "id": 1},
                auth=auth,
                timeout=30,
            ).json()["result"]
            methods = sorted({m["name"] if isinstance(m, dict) else str(m) for m in listed})
            beans = http.get(f"{base}/jolokia/search/*:*", auth=auth, timeout=30).json()["value"]
            yield Live(process, base, http, node.p2p_address, transport, auth, member, methods, sorted(beans))
    finally:
        process.stop()


def alive_and_bounded(live: Live) -> None:
    assert live.http.get(f"{live.base}/health", timeout=30).status_code == 200
    pid = live.process.pid
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            assert int(line.split()[1]) / 1024 < RSS_LIMIT_MB, line


# -- JSON-RPC ------------------------------------------------------------------------------------------


def rpc_calls(live_methods: list[str]) -> st.SearchStrategy[Any]:
    call = st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "method": st.sampled_from(live_methods) | st.text(max_size=20),
            "params": st.lists(JSON, max_size=4) | st.dictionaries(st.text(max_size=10), JSON, max_size=4),
            "id": st.integers(0, 1000),
        }
    )
    return call | st.lists(call, min_size=1, max_size=4) | JSON


def test_json_rpc_answers_every_input_without_an_internal_error(live: Live) -> None:
    @fuzz_settings()
    @given(body=st.data())
    def fuzz(body: st.DataObject) -> None:
        payload = body.draw(rpc_calls(live.methods))
        count_fuzzed("live JSON-RPC /rpc")
        reply = live.http.post(f"{live.base}/rpc", content=json.dumps(payload), auth=live.auth, timeout=60)
        assert reply.status_code < 500, reply.text
        if reply.status_code == 204:
            return
        answers = reply.json()
        for answer in answers if isinstance(answers, list) else [answers]:
            assert answer["jsonrpc"] == "2.0"
            if "error" in answer:
                assert answer["error"]["code"] != -32603, (payload, answer)  # "internal error"

    fuzz()
    alive_and_bounded(live)


# -- Jolokia -------------------------------------------------------------------------------------------


def jolokia_requests(beans: list[str]) -> st.SearchStrategy[Any]:
    request = st.fixed_dictionaries(
        {
            "type": st.sampled_from(["read", "write", "exec", "search", "list", "version"])
            | st.text(max_size=8)
        },
        optional={
            "mbean": st.sampled_from(beans) | st.text(max_size=30),
            "attribute": st.text(max_size=20) | st.lists(st.text(max_size=10), max_size=3),
            "operation": st.text(max_size=20),
            "arguments": st.lists(JSON, max_size=4),
            "value": JSON,
            "path": st.text(max_size=20),
            "config": st.dictionaries(st.sampled_from(["maxDepth", "ignoreErrors", "mimeType", "x"]), JSON),
        },
    )
    return request | st.lists(request, max_size=4) | JSON


def jolokia_ok(answer: Any, sent: Any) -> None:
    assert isinstance(answer, dict) and "status" in answer, (sent, answer)
    # A bug answers java.lang.RuntimeException "internal error"; a domain refusal names its class.
    assert answer.get("error_type") != "java.lang.RuntimeException", (sent, answer)


def test_jolokia_answers_every_post_without_an_internal_error(live: Live) -> None:
    @fuzz_settings()
    @given(body=st.data())
    def fuzz(body: st.DataObject) -> None:
        payload = body.draw(jolokia_requests(live.mbeans))
        count_fuzzed("live Jolokia POST /jolokia")
        reply = live.http.post(
            f"{live.base}/jolokia", content=json.dumps(payload), auth=live.auth, timeout=60
        )
        assert reply.status_code < 500, reply.text
        answers = json.loads(reply.text)
        for answer in answers if isinstance(answers, list) else [answers]:
            jolokia_ok(answer, payload)

    fuzz()
    alive_and_bounded(live)


def test_jolokia_answers_every_get_url_without_an_internal_error(live: Live) -> None:
    segment = st.text(alphabet=string.printable, max_size=20)

    @fuzz_settings()
    @given(
        parts=st.lists(segment, max_size=5),
        kind=st.sampled_from(["read", "exec", "list", "search", "version", "x"]),
    )
    def fuzz(parts: list[str], kind: str) -> None:
        path = "/".join([kind, *(quote(p, safe="!*'();:@&=+$,") for p in parts)])
        count_fuzzed("live Jolokia GET /jolokia/...")
        reply = live.http.get(f"{live.base}/jolokia/{path}", auth=live.auth, timeout=60)
        assert reply.status_code < 500, reply.text
        jolokia_ok(json.loads(reply.text), path)

    fuzz()
    alive_and_bounded(live)


# -- REST ----------------------------------------------------------------------------------------------


def test_the_rest_api_answers_every_request_without_an_internal_error(live: Live) -> None:
    word = st.sampled_from(API_WORDS) | st.text(
        alphabet=string.ascii_letters + string.digits + "-_.", max_size=12
    )

    @fuzz_settings()
    @given(
        method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
        words=st.lists(word, min_size=1, max_size=4),
        query=st.dictionaries(
            st.text(alphabet=string.ascii_letters, min_size=1, max_size=8), st.text(max_size=12), max_size=3
        ),
        body=JSON,
    )
    def fuzz(method: str, words: list[str], query: dict[str, str], body: Any) -> None:
        count_fuzzed("live REST /api")
        reply = live.http.request(
            method,
            f"{live.base}/api/" + "/".join(words),
            params=query,
            content=json.dumps(body) if method != "GET" else None,
            auth=live.auth,
            timeout=120,
        )
        assert reply.status_code < 500 or reply.status_code == 503, (method, words, query, body, reply.text)
        if reply.status_code >= 400:
            assert "error" in reply.json(), reply.text

    fuzz()
    alive_and_bounded(live)


# -- the peer endpoint ---------------------------------------------------------------------------------


def test_the_peer_endpoint_refuses_random_bytes_by_name(live: Live) -> None:
    @fuzz_settings()
    @given(body=st.binary(max_size=2048))
    def fuzz(body: bytes) -> None:
        count_fuzzed("live peer endpoint, random bytes")
        status, reply = live.transport.post(live.peer, body, 60)
        assert 400 <= status < 500, reply[:300]
        # An answer in the peer protocol's terms (CBOR), whatever was sent.
        error_type, _, _ = parse_error_payload(decode(reply, "reply"))
        assert error_type.endswith("Error"), error_type

    fuzz()
    alive_and_bounded(live)


def test_the_peer_handlers_answer_a_member_s_any_payload_without_an_internal_error(live: Live) -> None:
    """Messages from PartyB, sealed with its key: they pass the envelope's checks and reach each handler."""

    @fuzz_settings()
    @given(topic=st.sampled_from(TOPICS), payload=CBOR_VALUES)
    def fuzz(topic: str, payload: Any) -> None:
        try:
            sealed = live.member.seal(PARTY_A, topic, payload)
        except AgentError:
            return  # what the sender itself will not seal (a float, too deep): nothing goes out
        count_fuzzed("live peer endpoint, sealed by a member")
        status, reply = live.transport.post(live.peer, sealed, 120)
        assert status < 500, reply[:300]
        # Every answer, a refusal or not, is a message sealed by PartyA for PartyB.
        opened = live.member.open(reply, expect_sender=PARTY_A)
        if status >= 400:
            assert opened.topic == "error"
            error_type, _, _ = parse_error_payload(opened.payload)
            assert error_type != "InternalError", (topic, payload, opened.payload)

    fuzz()
    alive_and_bounded(live)

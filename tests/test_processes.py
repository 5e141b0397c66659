"""Real agent processes on loopback HTTP: finality, crashes at named steps, refusals on the wire.

Every process a test starts it stops by its own PID (AgentProcess.stop); readiness and outcomes are
waited on with deadlines, never with sleeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agent.client.launcher import (
    AgentProcess,
    AgentProcessError,
    ManagementClient,
    free_port_range,
    read_password,
    scratch_postgres_databases,
)
from agent.clock import SystemClock
from agent.errors import PeerRequestError, UnknownSenderError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.vault import TransactionStatus
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    OPERATOR_USER,
    NetworkLayout,
    default_node_names,
    init_network,
)
from agent.network.network_map import SignedNetworkMap
from agent.network.pki import read_certificate
from agent.node import open_node
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.client import PeerClient
from agent.p2p.http import HttpTransport
from agent.store.ledger_store import LedgerStore
from tests.conftest import PG_ADMIN_URL

A, B, C = (str(n) for n in default_node_names(3))
CRASHED = 70


@dataclass
class Network:
    layout: NetworkLayout
    processes: dict[str, AgentProcess]

    def client(self, name: str) -> ManagementClient:
        return self.processes[name].management

    def store(self, name: str) -> LedgerStore:
        node = next(n for n in self.layout.nodes if str(n.name) == name)
        return open_node(node.config).store


def _start(
    tmp_path: Path, faults: dict[str, list[str]], database_url_for: Callable[[X500Name], str] | None
) -> Network:
    layout = init_network(
        tmp_path / "net",
        default_node_names(3),
        DEFAULT_NOTARY,
        base_port=free_port_range(8),
        database_url_for=database_url_for,
    )
    processes = {}
    for node in layout.nodes:
        if faults.get(str(node.name)):
            with node.config.open("a") as conf:
                conf.write("faultInjection = [" + ", ".join(f'"{f}"' for f in faults[str(node.name)]) + "]\n")
        client = ManagementClient(node.management_address, OPERATOR_USER, read_password(node.folder))
        processes[str(node.name)] = AgentProcess(node.config, node.folder / "agent.log", client)
    return Network(layout, processes)


@pytest.fixture
def network_factory(tmp_path: Path) -> Iterator[Callable[..., Network]]:
    started: list[Network] = []

    def make(
        faults: dict[str, list[str]] | None = None, database_url_for: Callable[[X500Name], str] | None = None
    ) -> Network:
        net = _start(tmp_path, faults or {}, database_url_for)
        started.append(net)
        for proc in net.processes.values():
            proc.start()
        for proc in net.processes.values():
            proc.wait_ready()
        return net

    yield make
    for net in started:
        for proc in net.processes.values():
            proc.stop()


@pytest.fixture
def pg_databases() -> Iterator[Callable[[object], str]]:
    with scratch_postgres_databases(PG_ADMIN_URL) as url_for:
        yield url_for


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_finality_among_three_nodes_with_an_observer(
    network_factory: Callable[..., Network], backend: str, request: pytest.FixtureRequest
) -> None:
    url_for = request.getfixturevalue("pg_databases") if backend == "postgresql" else None
    net = network_factory(database_url_for=url_for)
    issued = net.client(A).issue([(A, 100), (B, 50)], "GBP", observers=[C])
    paid = net.client(B).pay(C, 20, "GBP", A, observers=[A])
    for name in (A, B, C):
        for tx in (issued, paid):
            info = net.client(name).transaction(tx)
            assert info is not None and info["status"] == "VERIFIED", (name, tx, info)
    holdings = {h["currency"]: h["amount"] for h in net.client(C).vault()["holdings"]}
    assert holdings == {"GBP": 20}
    assert {h["amount"] for h in net.client(B).vault()["holdings"]} == {30}
    # An SQLite node does without the PostgreSQL driver (10 MB of RSS); a PostgreSQL node has it.
    pid = net.processes[A].pid
    assert pid is not None
    driver_mapped = "_psycopg" in Path(f"/proc/{pid}/maps").read_text()
    assert driver_mapped == (backend == "postgresql")


def test_management_calls_need_credentials(network_factory: Callable[..., Network]) -> None:
    net = network_factory()
    address = net.client(A).address
    assert httpx.get(f"http://{address}/health").status_code == 200
    anonymous = httpx.get(f"http://{address}/api/vault")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    wrong = httpx.get(f"http://{address}/api/vault", auth=(OPERATOR_USER, "not-the-password"))
    assert wrong.status_code == 401
    bad = httpx.post(
        f"http://{address}/api/flows/pay",
        json={"to": "O=Nobody"},
        auth=(OPERATOR_USER, net.client(A).password),
    )
    assert bad.status_code == 400 and bad.json()["error"] in ("InvalidNameError", "BadRequestError")
    assert "Traceback" not in bad.text
    auth = (OPERATOR_USER, net.client(A).password)
    for body in (b"{not json", b"[1, 2]", b'{"holdings": [1], "currency": "GBP"}'):
        reply = httpx.post(f"http://{address}/api/flows/issue", content=body, auth=auth)
        assert reply.status_code == 400, (body, reply.text)
        assert reply.json()["error"] == "BadRequestError"


@pytest.mark.parametrize(
    ("step", "at_initiator", "at_receiver"),
    [
        ("AFTER_RECORD", TransactionStatus.IN_FLIGHT, None),
        ("AFTER_NOTARISE", TransactionStatus.IN_FLIGHT, TransactionStatus.IN_FLIGHT),
        ("AFTER_SEND_SIGNATURE", TransactionStatus.IN_FLIGHT, TransactionStatus.VERIFIED),
    ],
)
def test_a_crash_at_a_finality_step_leaves_the_records_the_reference_describes(
    network_factory: Callable[..., Network],
    step: str,
    at_initiator: TransactionStatus,
    at_receiver: TransactionStatus | None,
) -> None:
    net = network_factory(faults={A: [f"FinalityFlow.{step}=crash"]})
    # An issuance finishes without reaching the notary steps, so it is not affected by the fault above
    # unless the step is AFTER_RECORD; issue from B instead, then let A pay.
    net.client(B).issue([(A, 100)], "GBP")
    with pytest.raises((httpx.HTTPError, AgentProcessError)):
        net.client(A).pay(C, 10, "GBP", B)
    assert net.processes[A].wait_exit(30) == CRASHED
    flow_tx = _crashed_transaction(net)
    store_a, store_c = net.store(A), net.store(C)
    assert store_a.transaction_status(flow_tx) is at_initiator
    assert store_c.transaction_status(flow_tx) is at_receiver
    assert [r.peer for r in store_a.sender_records(flow_tx)] == [X500Name.parse(C)]
    assert len(store_c.receiver_records(flow_tx)) == (0 if at_receiver is None else 1)
    store_a.close()
    store_c.close()
    # After a restart the node knows the flow and where it stopped.
    net.processes[A].start()
    net.processes[A].wait_ready()
    (failed,) = [f for f in net.client(A).flows("FAILED") if f["flowName"] == "FinalityFlow"]
    assert failed["step"] == step and "stopped" in failed["error"]


def _crashed_transaction(net: Network) -> SecureHash:
    store = net.store(A)
    try:
        (cp,) = [
            c
            for c in store.iter_checkpoints()
            if c.flow_name == "FinalityFlow"
            and c.tx_id is not None
            and store.transaction_status(c.tx_id) is not TransactionStatus.VERIFIED
        ]
        assert cp.tx_id is not None
        return cp.tx_id
    finally:
        store.close()


def test_a_sender_from_another_network_is_refused_on_the_wire(
    network_factory: Callable[..., Network], tmp_path: Path
) -> None:
    net = network_factory()
    stranger_net = init_network(
        tmp_path / "stranger",
        [X500Name.parse("O=Mallory Ltd, L=Oslo, C=NO")],
        DEFAULT_NOTARY,
        base_port=free_port_range(4),
    )
    stranger = stranger_net.nodes[-1]
    clock = SystemClock()
    ours = SignedNetworkMap.load(net.layout.network_map, read_certificate(net.layout.root_certificate), clock)
    key = KeyPair.read_pem(stranger.folder / "certificates" / "identity-key.pem")
    stranger_node = open_node(stranger.config)
    mallory = stranger_node.identity
    stranger_node.close()
    with HttpTransport() as transport:
        client = PeerClient(MessageAuthenticator(mallory, key, ours, clock), ours, transport)
        with pytest.raises(PeerRequestError, match=r"UnknownSenderError.*Mallory") as err:
            client.request(X500Name.parse(A), "finality.backchain", {"tx_id": "00" * 32, "ids": []})
    assert err.value.error_type == UnknownSenderError.__name__


def _as_node(net: Network, name: str) -> tuple[object, MessageAuthenticator]:
    """The test speaks for a node of the network with that node's own key (as a misbehaving peer would)."""
    entry = next(n for n in net.layout.nodes if str(n.name) == name)
    node = open_node(entry.config)
    node.close()
    return node, MessageAuthenticator(node.identity, node.key, node.network_map, SystemClock())


def test_a_double_spend_is_refused_by_the_notary_process(network_factory: Callable[..., Network]) -> None:
    from agent.errors import NotaryConflictError
    from agent.ledger import token
    from agent.ledger.transactions import StateRef
    from agent.services.finality import TOPIC_NOTARISE

    net = network_factory()
    net.client(A).issue([(A, 100)], "GBP")
    paid = SecureHash.parse(net.client(A).pay(B, 10, "GBP", A))
    node, auth = _as_node(net, A)
    store = net.store(A)
    spent = store.require_transaction(paid)
    producer = store.require_transaction(spent.tx.inputs[0].txhash)
    store.close()
    notary = next(n for n in node.network_map.notaries).party
    again = token.move(
        [producer.tx.out_ref(spent.tx.inputs[0].index)],
        [(node.network_map.node(C).party, 5)],
        node.identity,
        notary,
    )
    stx = again.sign([node.key])
    with HttpTransport() as transport:
        client = PeerClient(auth, node.network_map, transport)
        with pytest.raises(NotaryConflictError) as err:
            client.request(notary.name, TOPIC_NOTARISE, {"tx": stx.serialize()})
    assert err.value.conflicts == {
        str(StateRef(spent.tx.inputs[0].txhash, spent.tx.inputs[0].index)): str(paid)
    }
    for name in (A, B, C):
        assert net.client(name).transaction(str(stx.id)) is None


def test_replayed_forged_and_oversize_messages_are_refused_by_a_running_agent(
    network_factory: Callable[..., Network],
) -> None:
    from agent.ledger import token
    from agent.services.finality import TOPIC_TRANSACTION

    net = network_factory()
    net.client(A).issue([(B, 5)], "GBP")
    flows_before = len(net.client(B).flows())
    node, auth = _as_node(net, A)
    b = X500Name.parse(B)
    notary = next(n for n in node.network_map.notaries).party
    fresh = token.issue(node.identity, notary, [(node.network_map.node(B).party, 7)], "GBP").sign([node.key])
    address = node.network_map.node(B).addresses[0]

    def refusal(status_and_body: tuple[int, bytes]) -> tuple[int, str]:
        status, body = status_and_body
        reply = auth.open(body, expect_sender=b)
        assert reply.topic == "error"
        return status, reply.payload["type"]

    with HttpTransport() as transport:
        sealed = auth.seal(b, "no.such.topic", {})
        assert refusal(transport.post(address, sealed, 10)) == (404, "UnknownTopicError")
        assert refusal(transport.post(address, sealed, 10)) == (400, "ReplayedMessageError")
        forged = bytearray(auth.seal(b, TOPIC_TRANSACTION, {"tx": fresh.serialize()}))
        forged[-5] ^= 0x01  # inside the signature
        assert refusal(transport.post(address, bytes(forged), 10)) == (400, "BadMessageSignatureError")
    huge = httpx.post(
        f"http://{address}/p2p/v1/message",
        content=b"\0" * (node.network_map.parameters.max_message_size + 1),
        headers={"Content-Type": "application/cbor"},
        timeout=30,
    )
    assert huge.status_code == 413
    assert net.client(B).transaction(str(fresh.id)) is None
    assert len(net.client(B).flows()) == flows_before


def test_an_agent_stops_cleanly_on_sigterm(network_factory: Callable[..., Network]) -> None:
    net = network_factory()
    net.client(A).issue([(A, 1)], "GBP")
    assert net.processes[A].stop() == 0
    assert "stopped" in net.processes[A].log_tail()

"""Real agent processes on loopback HTTP: finality, crashes at named steps, refusals on the wire.

Every process a test starts it stops by its own PID (AgentProcess.stop); readiness and outcomes are
waited on with deadlines, never with sleeps.
"""

from __future__ import annotations

import time
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
from agent.config import load_node_config
from agent.errors import PeerUnreachableError, SenderCertificateMismatchError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.serialization import decode
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    OPERATOR_USER,
    NetworkLayout,
    NodeLayout,
    default_node_names,
    init_network,
)
from agent.network.network_map import SignedNetworkMap
from agent.network.pki import read_certificate
from agent.network.tls import TlsFiles
from agent.node import open_node
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.client import PeerClient
from agent.p2p.envelope import parse_error_payload
from agent.p2p.http import tls_transport
from agent.p2p.retry import RetryPolicy
from agent.store.ledger_store import LedgerStore
from tests.conftest import PG_ADMIN_URL
from tests.endpoints import management, member_transport

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
        client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
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
    base, verify = management(node_of_name(net, A).config)
    with httpx.Client(verify=verify) as http:
        assert http.get(f"{base}/health").status_code == 200
        anonymous = http.get(f"{base}/api/vault")
        assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
        wrong = http.get(f"{base}/api/vault", auth=(OPERATOR_USER, "not-the-password"))
        assert wrong.status_code == 401
        bad = http.post(
            f"{base}/api/flows/pay",
            json={"to": "O=Nobody"},
            auth=(OPERATOR_USER, net.client(A).password),
        )
        assert bad.status_code == 400 and bad.json()["error"] in ("InvalidNameError", "BadRequestError")
        assert "Traceback" not in bad.text
        auth = (OPERATOR_USER, net.client(A).password)
        for body in (b"{not json", b"[1, 2]", b'{"holdings": [1], "currency": "GBP"}'):
            reply = http.post(f"{base}/api/flows/issue", content=body, auth=auth)
            assert reply.status_code == 400, (body, reply.text)
            assert reply.json()["error"] == "BadRequestError"


def test_the_management_endpoint_speaks_only_https(network_factory: Callable[..., Network]) -> None:
    net = network_factory()
    address = net.client(A).address
    # The password would cross in clear: plain HTTP gets no answer, the connection is dropped.
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        httpx.get(f"http://{address}/api/vault", auth=(OPERATOR_USER, net.client(A).password))
    # A client that does not trust the network's root refuses the endpoint's certificate.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://{address}/health")


INITIATOR_STEPS = [
    "VERIFIED",
    "AFTER_RECORD",
    "AFTER_BROADCAST",
    "AFTER_NOTARISE",
    "BEFORE_SEND_SIGNATURE",
    "AFTER_SEND_SIGNATURE",
    "FINALISED",
]
RECEIVER_STEPS = ["RECEIVED", "BACKCHAIN_RESOLVED", "RECORDED", "BEFORE_FINALISE", "FINALISED"]
# A pays C with B as observer: the payer runs FinalityFlow, the payee and the observer ReceiveFinalityFlow.
CRASH_CASES = (
    [("payer", A, "FinalityFlow", step, "crash") for step in INITIATOR_STEPS]
    + [("payee", C, "ReceiveFinalityFlow", step, "crash") for step in RECEIVER_STEPS]
    + [("observer", B, "ReceiveFinalityFlow", step, "crash") for step in RECEIVER_STEPS]
    # Between a step's sends and its commit: the restarted flow sends again (to the receivers, the
    # notary), and each answers the repeat as the first.
    + [
        ("payer", A, "FinalityFlow", step, "crash-before")
        for step in ("AFTER_BROADCAST", "AFTER_NOTARISE", "AFTER_SEND_SIGNATURE", "FINALISED")
    ]
    + [("payee", C, "ReceiveFinalityFlow", step, "crash-before") for step in ("RECORDED", "FINALISED")]
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("role", "crashed", "flow", "step", "action"),
    CRASH_CASES,
    ids=[f"{c[0]}-{c[3]}" + ("-before-commit" if c[4] == "crash-before" else "") for c in CRASH_CASES],
)
def test_a_payment_cut_by_a_crash_at_any_step_finishes_once_the_crashed_agent_restarts(
    network_factory: Callable[..., Network], role: str, crashed: str, flow: str, step: str, action: str
) -> None:
    net = network_factory(faults={crashed: [f"{flow}.{step}={action}"]})
    net.client(B).issue([(A, 100)], "GBP")  # B's own FinalityFlow, to A alone: meets none of the faults
    try:
        net.client(A).pay(C, 10, "GBP", B, observers=[B], wait=3)
    except (httpx.HTTPError, AgentProcessError):
        assert role == "payer"  # the payer's own process died under the call
    assert net.processes[crashed].wait_exit(60) == CRASHED
    paid = _latest_payment(net)

    # The crashed agent comes back as it was, without the fault; nobody runs a command.
    _drop_faults(net, crashed)
    net.processes[crashed].start()
    net.processes[crashed].wait_ready()

    def settled() -> bool:
        return all(
            (net.client(n).transaction(str(paid)) or {}).get("status") == "VERIFIED"
            and not [f for f in net.client(n).flows() if f["status"] in ("RUNNABLE", "FAILED")]
            for n in (A, B, C)
        )

    _wait_until(settled, 120, lambda: {n: net.client(n).flows() for n in (A, B, C)})
    for name in (A, B, C):
        assert net.client(name).vault()["transactions"]["IN_FLIGHT"] == 0, name
    assert {h["amount"] for h in net.client(C).vault()["holdings"]} == {10}
    assert [h["amount"] for h in net.client(A).vault()["holdings"]] == [90]  # the change, spendable:
    again = net.client(A).pay(C, 90, "GBP", B)
    assert (net.client(C).transaction(again) or {}).get("status") == "VERIFIED"
    assert net.client(A).vault()["holdings"] == []


def _wait_until(condition: Callable[[], bool], deadline_s: float, describe: Callable[[], object]) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not settled within {deadline_s} s: {describe()}")
        time.sleep(0.2)  # polling a condition with a deadline, not a synchronisation sleep


def _drop_faults(net: Network, name: str) -> None:
    node = next(n for n in net.layout.nodes if str(n.name) == name)
    lines = node.config.read_text().splitlines(keepends=True)
    node.config.write_text("".join(line for line in lines if not line.startswith("faultInjection")))


def _latest_payment(net: Network) -> SecureHash:
    """The payment's id, from the payer's checkpoints (read from its store; it may be down)."""
    store = net.store(A)
    try:
        flows = [
            c for c in store.checkpoints.iter_checkpoints(flow_name="FinalityFlow") if c.tx_id is not None
        ]
        latest = max(flows, key=lambda c: c.started_at)
        assert latest.tx_id is not None
        return latest.tx_id
    finally:
        store.close()


def test_a_sender_from_another_network_is_refused_on_the_wire(
    network_factory: Callable[..., Network], tmp_path: Path
) -> None:
    """Mallory, of another network, trusts ours (its root is public) and presents her own node's TLS
    certificate: the handshake fails, so no message of hers is read, whatever it claims."""
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
    files = load_node_config(stranger.config).p2p_tls_files
    theirs_trusting_ours = TlsFiles(files.certificate, files.key, net.layout.root_certificate)
    with tls_transport(theirs_trusting_ours, ours) as transport:
        client = PeerClient(
            MessageAuthenticator(mallory, key, ours, clock), ours, transport, RetryPolicy(max_attempts=2)
        )
        with pytest.raises(PeerUnreachableError, match=r"(?i)certificate|alert"):
            client.request(X500Name.parse(A), "finality.backchain", {"tx_id": "00" * 32, "ids": []})


def test_a_member_cannot_send_another_members_message_over_its_own_connection(
    network_factory: Callable[..., Network],
) -> None:
    """C's TLS certificate, a message sealed with A's key (as if C held a copy of one): refused by
    name before its signature is checked, so not even its nonce is spent."""
    net = network_factory()
    node, auth = _as_node(net, A)
    b = X500Name.parse(B)
    address = node.network_map.node(B).addresses[0]
    sealed = auth.seal(b, "finality.backchain", {"tx_id": "00" * 32, "ids": []})
    with member_transport(node_of_name(net, C).config) as as_c:
        status, body = as_c.post(address, sealed, 10)
    refused = auth.open(body, expect_sender=b)
    assert (status, refused.payload["type"]) == (400, SenderCertificateMismatchError.__name__)
    assert refused.payload["details"] == {"sender": A, "certificate": C}
    with member_transport(node_of_name(net, A).config) as as_a:
        status, body = as_a.post(address, sealed, 10)
    assert status != 400, auth.open(body, expect_sender=b).payload


def node_of_name(net: Network, name: str) -> NodeLayout:
    return next(n for n in net.layout.nodes if str(n.name) == name)


def _as_node(net: Network, name: str) -> tuple[object, MessageAuthenticator]:
    """The test speaks for a node of the network with that node's own key (as a misbehaving peer would)."""
    entry = next(n for n in net.layout.nodes if str(n.name) == name)
    node = open_node(entry.config)
    node.close()
    return node, MessageAuthenticator(node.identity, node.key, node.network_map, SystemClock())


def test_a_double_spend_is_refused_by_the_notary_process(network_factory: Callable[..., Network]) -> None:
    from agent.errors import NotaryConflictError
    from agent.finality.flows import TOPIC_NOTARISE
    from agent.ledger import token
    from agent.ledger.transactions import StateRef

    net = network_factory()
    net.client(A).issue([(A, 100)], "GBP")
    paid = SecureHash.parse(net.client(A).pay(B, 10, "GBP", A))
    node, auth = _as_node(net, A)
    store = net.store(A)
    spent = store.transactions.require_transaction(paid)
    producer = store.transactions.require_transaction(spent.tx.inputs[0].txhash)
    store.close()
    notary = next(n for n in node.network_map.notaries).party
    again = token.move(
        [producer.tx.out_ref(spent.tx.inputs[0].index)],
        [(node.network_map.node(C).party, 5)],
        node.identity,
        notary,
    )
    stx = again.sign([node.key])
    with member_transport(node_of_name(net, A).config) as transport:
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
    from agent.finality.flows import TOPIC_TRANSACTION
    from agent.ledger import token

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

    with member_transport(node_of_name(net, A).config) as transport:
        sealed = auth.seal(b, "no.such.topic", {})
        # A topic B lacks is kept for observation, not refused (docs/hospital.md): one flow keeps it.
        assert refusal(transport.post(address, sealed, 10)) == (409, "KeptForObservationError")
        assert refusal(transport.post(address, sealed, 10)) == (400, "ReplayedMessageError")
        forged = bytearray(auth.seal(b, TOPIC_TRANSACTION, {"tx": fresh.serialize()}))
        forged[-5] ^= 0x01  # inside the signature
        assert refusal(transport.post(address, bytes(forged), 10)) == (400, "BadMessageSignatureError")
        huge = transport.post(address, b"\0" * (node.network_map.parameters.max_message_size + 1), 30)
    assert huge[0] == 413
    # Refused from its Content-Length, before the body is read: in the protocol's terms.
    error_type, _, details = parse_error_payload(decode(huge[1], "reply"))
    assert error_type == "MessageTooLargeError"
    assert details["limit"] == node.network_map.parameters.max_message_size
    assert net.client(B).transaction(str(fresh.id)) is None
    assert len(net.client(B).flows()) == flows_before + 1
    _wait_until(
        lambda: [f["flowName"] for f in net.client(B).flows("HOSPITALIZED")] == ["UnhandledSessionFlow"],
        30,
        lambda: net.client(B).flows(),
    )


def test_an_agent_stops_cleanly_on_sigterm(network_factory: Callable[..., Network]) -> None:
    net = network_factory()
    net.client(A).issue([(A, 1)], "GBP")
    assert net.processes[A].stop() == 0
    assert "stopped" in net.processes[A].log_tail()


@pytest.mark.slow
@pytest.mark.parametrize("victim", [A, C], ids=["payer", "payee"])
def test_kill_9_under_load_leaves_every_payment_finished_once_the_agent_restarts(
    network_factory: Callable[..., Network], victim: str
) -> None:
    import os
    import signal
    import threading

    net = network_factory()
    net.client(B).issue([(A, 1000)], "GBP")
    started: list[str] = []
    done = threading.Event()

    def load() -> None:
        # A's payments to C one after another, each waiting 2 s at most: some are cut by the kill.
        for _ in range(40):
            if done.is_set():
                return
            try:
                started.append(net.client(A).pay(C, 5, "GBP", B, wait=2))
            except (httpx.HTTPError, AgentProcessError):
                if net.processes[A].process is not None and net.processes[A].process.poll() is not None:
                    return  # the payer itself is down

    worker = threading.Thread(target=load)
    worker.start()
    _wait_until(lambda: len(started) >= 5, 60, lambda: started)
    pid = net.processes[victim].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # by its own PID, mid-load
    assert net.processes[victim].wait_exit(30) == -signal.SIGKILL
    done.set()
    worker.join(120)
    net.processes[victim].start()
    net.processes[victim].wait_ready()

    def settled() -> bool:
        return all(
            net.client(n).vault()["transactions"]["IN_FLIGHT"] == 0
            and not [f for f in net.client(n).flows() if f["status"] in ("RUNNABLE", "FAILED")]
            for n in (A, B, C)
        )

    _wait_until(settled, 120, lambda: {n: net.client(n).flows("RUNNABLE") for n in (A, B, C)})
    paid_to_c = sum(h["amount"] for h in net.client(C).vault()["holdings"])
    held_by_a = sum(h["amount"] for h in net.client(A).vault()["holdings"])
    assert paid_to_c + held_by_a == 1000  # nothing lost, nothing spent twice, nothing frozen
    assert paid_to_c >= 5 * len(started)  # every acknowledged payment arrived
    for tx in started:
        assert (net.client(C).transaction(tx) or {}).get("status") == "VERIFIED"
    again = net.client(A).pay(C, held_by_a, "GBP", B)  # everything A holds is spendable
    assert (net.client(C).transaction(again) or {}).get("status") == "VERIFIED"


def test_an_operator_lists_pauses_and_resumes_a_payment_waiting_for_the_notary(
    network_factory: Callable[..., Network],
) -> None:
    import subprocess
    import sys

    net = network_factory()
    net.client(A).issue([(A, 100)], "GBP")
    notary = str(DEFAULT_NOTARY)
    assert net.processes[notary].stop() == 0
    paid = net.client(A).pay(B, 10, "GBP", A, wait=1)  # 202: the flow waits for the notary
    config = next(n for n in net.layout.nodes if str(n.name) == A).config

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent", "flow", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = cli("list", "--status", "RUNNABLE", "--flow-name", "FinalityFlow")
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if paid in line]
    assert "AFTER_BROADCAST" in row and f"{notary} (notary not answering)" in row
    flow_id = row.split()[0]
    paused = cli("pause", flow_id)
    assert (paused.returncode, paused.stdout.strip()) == (0, f"Paused flow [{flow_id}]")
    _wait_until(
        lambda: [f["status"] for f in net.client(A).flows() if f["flowId"] == flow_id] == ["PAUSED"],
        30,
        lambda: net.client(A).flows(),
    )
    net.processes[notary].start()
    net.processes[notary].wait_ready()
    assert (net.client(A).transaction(paid) or {}).get("status") == "IN_FLIGHT"  # paused: it waits
    assert cli("pause", flow_id).returncode == 1  # already paused: said so, exit 1
    resumed = cli("resume", flow_id)
    assert (resumed.returncode, resumed.stdout.strip()) == (0, f"Resumed flow [{flow_id}]")
    _wait_until(
        lambda: all((net.client(n).transaction(paid) or {}).get("status") == "VERIFIED" for n in (A, B)),
        60,
        lambda: net.client(A).flows(),
    )

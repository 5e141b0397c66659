"""The flow hospital on real agent processes, with real failures:

- FinalityDoctor: the payee's database role loses its INSERT and UPDATE grants on node_transactions,
  so its ReceiveFinalityFlow fails for real and is kept; the payer waits for it. A restart (killed by
  PID) retries the kept flow from its checkpoint; once the grant is back and the payee restarted,
  every party ends VERIFIED. The same refusal in the node's own FinalityFlow is the
  DatabaseEndocrinologist's.
- DoctorTimeout: the notary's process is stopped by its PID; a payment waits for it and finishes once
  it is started again.
- UnknownFlowSpecialist: PartyA reconciles with peers that have LedgerSync switched off. One peer's
  operator kills the kept flow: PartyA is told and its reconciliation fails at once, and later ones
  are refused. The other peer is restarted with LedgerSync on: its kept flow completes and PartyA's
  reconciliation, paused meanwhile by its operator, finishes once resumed.

Every process a test starts it stops by its own PID; every wait is on a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from agent.client.launcher import (
    AgentProcess,
    ManagementClient,
    free_port_range,
    read_password,
    scratch_postgres_databases,
)
from agent.hospital.records import MedicalRecord
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    OPERATOR_USER,
    NetworkLayout,
    NodeLayout,
    default_node_names,
    init_network,
)
from agent.node import open_node
from agent.store.ledger_store import LedgerStore
from tests.conftest import PG_ADMIN_URL
from tests.hospital.test_real_failures import restricted_url

__all__ = ["restricted_url"]  # the fixture, shared with test_real_failures

A, B, C = (str(n) for n in default_node_names(3))
NOTARY = str(DEFAULT_NOTARY)
DEADLINE = 90.0  # a loaded CI machine; a passing run waits far less


def until(condition: Callable[[], bool], what: Callable[[], object], deadline: float = DEADLINE) -> None:
    """Poll condition until it holds; fail with what() after deadline seconds."""
    tick = threading.Event()
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline} s: {what()}")
        tick.wait(0.1)  # the polling interval of a wait on a condition, not a synchronisation sleep


@dataclass
class Net:
    layout: NetworkLayout
    processes: dict[str, AgentProcess]

    def node(self, name: str) -> NodeLayout:
        return next(n for n in self.layout.nodes if str(n.name) == name)

    def client(self, name: str) -> ManagementClient:
        return self.processes[name].management

    def flows(self, name: str, **filters: str) -> list[dict[str, Any]]:
        return self.client(name).flows(**filters)

    def flow(self, name: str, flow_id: str) -> dict[str, Any]:
        (found,) = [f for f in self.flows(name) if f["flowId"] == flow_id]
        return found

    @contextmanager
    def store(self, name: str) -> Iterator[LedgerStore]:
        """The node's store, opened beside its running agent (to read its hospital's records)."""
        node = open_node(self.node(name).config)
        try:
            yield node.store
        finally:
            node.close()

    def records(self, name: str, flow_id: str) -> list[MedicalRecord]:
        with self.store(name) as store:
            return store.hospital.records([flow_id])

    def configure(self, name: str, *, drop: str | None = None, add: tuple[str, ...] = ()) -> None:
        """Edit node.conf: drop the lines starting with drop, append add."""
        config = self.node(name).config
        lines = config.read_text().splitlines(keepends=True)
        kept = [line for line in lines if drop is None or not line.startswith(drop)]
        config.write_text("".join(kept) + "".join(f"{line}\n" for line in add))

    def stop(self, name: str, *, kill: bool = False) -> int | None:
        """SIGTERM (or SIGKILL) by the process's own PID; its exit code."""
        process = self.processes[name]
        if not kill:
            return process.stop()
        pid = process.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return process.wait_exit(30)

    def start(self, name: str) -> None:
        self.processes[name].start()
        self.processes[name].wait_ready()


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Callable[..., Net]]:
    """make(nodes, conf={name: [node.conf lines]}, database_url_for=...): a started network."""
    started: list[Net] = []

    def make(
        nodes: int,
        conf: dict[str, list[str]] | None = None,
        database_url_for: Callable[[Any], str] | None = None,
    ) -> Net:
        layout = init_network(
            tmp_path / f"net{len(started)}",
            default_node_names(nodes),
            DEFAULT_NOTARY,
            base_port=free_port_range(2 * (nodes + 1)),
            database_url_for=database_url_for,
        )
        processes = {}
        for node in layout.nodes:
            lines = (conf or {}).get(str(node.name), [])
            if lines:
                with node.config.open("a") as config:
                    config.write("".join(f"{line}\n" for line in lines))
            client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
            processes[str(node.name)] = AgentProcess(node.config, node.folder / "agent.log", client)
        net = Net(layout, processes)
        started.append(net)
        for process in processes.values():
            process.start()
        for process in processes.values():
            process.wait_ready()
        return net

    yield make
    for net in started:
        for process in net.processes.values():
            process.stop()


def verified(net: Net, tx_id: str, *names: str) -> bool:
    return all((net.client(n).transaction(tx_id) or {}).get("status") == "VERIFIED" for n in names)


# -- UnknownFlowSpecialist: a peer that speaks a topic we lack ------------------------------------------


def reconciliation_status(client: ManagementClient, party: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.start_flow(
        "GetReconciliationStatusForPartyFlow", party=party, isRequester=True
    )["result"]
    return found


def test_a_peer_without_ledgersync_keeps_the_session_until_killed_or_upgraded(
    network: Callable[..., Net],
) -> None:
    off = ["ledgerSync.enabled = false"]
    net = network(3, conf={B: off, C: off})
    a = net.client(A)
    a.wait_ledgersync_ready()
    a.start_flow("ScheduleReconciliationFlow", parties=[B, C])

    def reconciliation(party: str) -> dict[str, Any]:
        (found,) = [f for f in a.flows(flowName="ReconcileWithPartyFlow") if party in f["counterparties"]]
        return found

    def kept(name: str) -> list[dict[str, Any]]:
        return net.flows(name, flowName="UnhandledSessionFlow")

    # Each peer keeps A's session for observation; A's reconciliations wait, saying so.
    for peer in (B, C):
        until(lambda p=peer: [f["status"] for f in kept(p)] == ["HOSPITALIZED"], lambda p=peer: kept(p))
        (held,) = kept(peer)
        assert held["counterparties"] == [A] and "UnknownTopicError" in held["error"]
        (record,) = net.records(peer, held["flowId"])
        assert (record.staff, record.diagnosis) == ("UnknownFlowSpecialist", "OVERNIGHT_OBSERVATION")
        until(
            lambda p=peer: reconciliation(p)["waitingFor"] == f"{p} (keeps it for observation)",
            lambda p=peer: reconciliation(p),
        )
        assert reconciliation(peer)["status"] == "RUNNABLE"
        assert (reconciliation_status(a, peer) or {}).get("lastReconciliationStatus") == "IN_PROGRESS"

    # (b) B's operator kills the kept flow: A is told, and its reconciliation fails now, not at its
    # next retry. Wait until A asks B no more often than every 2 s, so "now" can be told from that.
    waiting = reconciliation(B)
    until(
        lambda: sum(r.outcome == "RETRY" for r in net.records(A, waiting["flowId"])) >= 3,
        lambda: net.records(A, waiting["flowId"]),
    )
    retries = [r for r in net.records(A, waiting["flowId"]) if r.outcome == "RETRY"]
    assert {r.staff for r in retries} == {"UnreachablePeerNurse"}
    assert all(r.step == "RUNNING" for r in retries)
    assert retries[-1].delay_s is not None and retries[-1].delay_s >= 1.5  # the back-off grows
    assert net.client(B).kill_flow(kept(B)[0]["flowId"])
    until(
        lambda: net.flow(A, waiting["flowId"])["status"] == "FAILED", lambda: net.flow(A, waiting["flowId"])
    )
    interrupted = [r for r in net.records(A, waiting["flowId"]) if r.outcome == "RETRY"][-1]
    assert interrupted.delay_s is not None
    due_ms = (interrupted.at.timestamp() + interrupted.delay_s) * 1000
    failed = reconciliation_status(a, B)
    assert failed is not None and failed["lastReconciliationStatus"] == "FAILED"
    assert "UnknownTopicError" in failed["lastReconciliationError"]
    assert failed["lastReconciliationTimeFinished"] < due_ms  # told, not found out at the next retry
    # From now on B refuses A's sessions at once: a new reconciliation fails, and B keeps nothing new.
    a.start_flow("ScheduleReconciliationFlow", parties=[B])
    until(lambda: not a.flows("RUNNABLE", flowName="ReconcileWithPartyFlow", counterparty=B), a.flows)
    again = reconciliation_status(a, B)
    assert again is not None and again["lastReconciliationStatus"] == "FAILED"
    assert (
        again["stateMachineRunId"] != waiting["flowId"]
        and "UnknownTopicError" in again["lastReconciliationError"]
    )
    assert [f["status"] for f in kept(B)] == ["KILLED"]

    # (a) C is upgraded (LedgerSync on) and restarted after a crash (killed by its PID): its kept flow
    # is RUNNABLE again, runs from its checkpoint, finds the topic handled and completes; A's next
    # attempt is served and its reconciliation finishes. A's operator pauses that reconciliation
    # meanwhile and resumes it once C's ledger graph is ready: a peer refuses sessions until then
    # (LedgerGraphNotReadyException, which fails a reconciliation at once: docs/ledgersync.md), and
    # A, asking C again and again while it is down, may ask in that window (about 80 ms here).
    (held,) = kept(C)
    held_reconciliation = reconciliation(C)["flowId"]
    assert a.pause_flow(held_reconciliation)
    until(lambda: reconciliation(C)["status"] == "PAUSED", lambda: reconciliation(C))
    net.configure(C, drop="ledgerSync.enabled")
    assert net.stop(C, kill=True) == -signal.SIGKILL
    net.start(C)
    until(lambda: [f["status"] for f in kept(C)] == ["COMPLETED"], lambda: kept(C))
    assert kept(C)[0]["flowId"] == held["flowId"]
    assert f"resuming flow {held['flowId']} (UnhandledSessionFlow)" in net.processes[C].log_path.read_text()
    net.client(C).wait_ledgersync_ready()
    assert a.resume_flow(held_reconciliation)
    until(lambda: reconciliation(C)["status"] == "COMPLETED", lambda: reconciliation(C))
    assert reconciliation(C)["flowId"] == held_reconciliation
    done = reconciliation_status(a, C)
    assert done is not None and done["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND", done


# -- FinalityDoctor: a payee whose database refuses its writes --------------------------------------------


@pytest.fixture
def pg_databases() -> Iterator[Callable[[object], str]]:
    with scratch_postgres_databases(PG_ADMIN_URL) as url_for:
        yield url_for


def test_a_payee_whose_database_refuses_writes_keeps_the_payment_until_put_right(
    network: Callable[..., Net], pg_databases: Callable[[object], str], restricted_url: str
) -> None:
    # The payee's agent logs in as a role of its own, which owns its database (and so migrates it).
    net = network(2, database_url_for=lambda n: restricted_url if str(n) == B else pg_databases(n))
    role = restricted_url.split("//", 1)[1].split("@", 1)[0]
    superuser = psycopg2.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + restricted_url.rsplit("/", 1)[1])
    superuser.autocommit = True
    try:
        net.client(A).issue([(A, 100)], "GBP")
        execute(superuser, f'REVOKE INSERT, UPDATE ON node_transactions FROM "{role}"')
        paid = net.client(A).pay(B, 10, "GBP", A, wait=2)  # 202: the payment waits for the payee

        def receiver() -> dict[str, Any]:
            (found,) = net.flows(B, flowName="ReceiveFinalityFlow", txId=paid)
            return found

        def payment() -> dict[str, Any]:
            (found,) = net.flows(A, flowName="FinalityFlow", txId=paid)
            return found

        until(lambda: receiver()["status"] == "HOSPITALIZED", receiver)
        kept = receiver()
        assert "permission denied for table node_transactions" in kept["error"], kept
        (record,) = net.records(B, kept["flowId"])
        assert (record.staff, record.diagnosis, record.error_type) == (
            "FinalityDoctor",
            "OVERNIGHT_OBSERVATION",
            "DatabaseError",
        )
        step = record.step  # its last checkpoint: the back-chain it fetched could not be recorded
        assert step == kept["step"] == "RECEIVED"
        until(lambda: payment()["waitingFor"] == f"{B} (keeps it for observation)", payment)
        assert (payment()["status"], payment()["step"]) == ("RUNNABLE", "AFTER_RECORD")
        retried = net.records(A, payment()["flowId"])
        assert {(r.staff, r.error_type) for r in retried} == {
            ("UnreachablePeerNurse", "PeerRequestError(KeptForObservationError)")
        }
        assert (net.client(A).transaction(paid) or {}).get("status") == "IN_FLIGHT"
        assert net.client(B).transaction(paid) is None

        # The payee crashes (killed by its PID) before anyone put the cause right: at restart the kept
        # flow is RUNNABLE again, retried from its checkpoint, and kept again (the grant is still gone).
        assert net.stop(B, kill=True) == -signal.SIGKILL
        net.start(B)
        assert f"resuming flow {kept['flowId']} (ReceiveFinalityFlow) from step {step}" in (
            net.processes[B].log_path.read_text()
        )
        until(lambda: len(net.records(B, kept["flowId"])) == 2, lambda: net.records(B, kept["flowId"]))
        until(lambda: receiver()["status"] == "HOSPITALIZED", receiver)
        again = net.records(B, kept["flowId"])[1]
        assert (again.staff, again.step, again.attempt) == ("FinalityDoctor", step, 1)  # a new stay
        assert again.at > record.at

        # The operator grants the writes back and restarts the payee: every party ends VERIFIED.
        execute(superuser, f'GRANT INSERT, UPDATE ON node_transactions TO "{role}"')
        assert net.stop(B) == 0
        net.start(B)
        until(lambda: verified(net, paid, A, B), lambda: (payment(), receiver()))
        until(lambda: receiver()["status"] == "COMPLETED", receiver)
        until(lambda: payment()["status"] == "COMPLETED", payment)
        assert receiver()["flowId"] == kept["flowId"]  # the kept flow finished, no other
        assert [h["amount"] for h in net.client(B).vault()["holdings"]] == [10]
        assert [h["amount"] for h in net.client(A).vault()["holdings"]] == [90]

        # The same refusal in B's own FinalityFlow (not a receiver): the DatabaseEndocrinologist's.
        execute(superuser, f'REVOKE INSERT ON node_transactions FROM "{role}"')
        back = net.client(B).pay(A, 4, "GBP", A, wait=2)
        (own,) = net.flows(B, flowName="FinalityFlow", txId=back)
        until(
            lambda: net.flow(B, own["flowId"])["status"] == "HOSPITALIZED", lambda: net.flow(B, own["flowId"])
        )
        (endocrine,) = net.records(B, own["flowId"])
        assert (endocrine.staff, endocrine.diagnosis, endocrine.step) == (
            "DatabaseEndocrinologist",
            "OVERNIGHT_OBSERVATION",
            "VERIFIED",  # its IN_FLIGHT row (AFTER_RECORD) could not be written
        )
        assert (
            net.flow(B, own["flowId"])["waitingFor"]
            == "the flow hospital (DatabaseEndocrinologist: DatabaseError)"
        )
        execute(superuser, f'GRANT INSERT ON node_transactions TO "{role}"')
        assert net.stop(B) == 0
        net.start(B)
        until(lambda: verified(net, back, A, B), lambda: net.flow(B, own["flowId"]))
        assert [h["amount"] for h in net.client(B).vault()["holdings"]] == [6]
    finally:
        superuser.close()


# -- DoctorTimeout: a notary that does not answer --------------------------------------------------------


def test_a_payment_waits_for_a_stopped_notary_and_finishes_once_it_is_back(
    network: Callable[..., Net],
) -> None:
    net = network(2, conf={A: ["flowTimeout { timeout = 1s }"]})  # the notary's first wait: 1 to 1.5 s
    net.client(A).issue([(A, 100)], "GBP")
    assert net.stop(NOTARY) == 0
    paid = net.client(A).pay(B, 10, "GBP", A, wait=1)  # 202: the flow waits for the notary

    def payment() -> dict[str, Any]:
        (found,) = net.flows(A, flowName="FinalityFlow", txId=paid)
        return found

    flow_id = payment()["flowId"]
    until(lambda: len(net.records(A, flow_id)) >= 2, lambda: net.records(A, flow_id))
    first, second = net.records(A, flow_id)[:2]
    assert {(r.staff, r.diagnosis, r.error_type, r.step) for r in (first, second)} == {
        ("DoctorTimeout", "DISCHARGE", "PeerUnreachableError", "AFTER_BROADCAST")
    }
    # flowTimeout: timeout * backoffBase^n * U[1, 1.5], n the retries before at this checkpoint.
    assert first.delay_s is not None and 1.0 <= first.delay_s <= 1.5
    assert second.delay_s is not None and 1.8 <= second.delay_s <= 2.7
    waiting = payment()
    assert (waiting["status"], waiting["step"]) == ("RUNNABLE", "AFTER_BROADCAST")
    assert waiting["waitingFor"] == f"{NOTARY} (notary not answering)"
    assert (net.client(B).transaction(paid) or {}).get("status") == "IN_FLIGHT"

    net.start(NOTARY)
    until(lambda: verified(net, paid, A, B), payment)
    until(lambda: payment()["status"] == "COMPLETED", payment)
    assert [h["amount"] for h in net.client(B).vault()["holdings"]] == [10]


def execute(conn: Any, sql: str) -> None:
    with conn.cursor() as cur:
        cur.execute(sql)

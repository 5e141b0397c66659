"""Finality recovery on real agent processes (issue 14's "Done when"), through the REST routes (the
catalogue's FlowRPCOps commands, run through the gate; every other surface: tests.management.
test_recovery_surfaces).

For every named finality step and role, A pays C 10 (B, the issuer, observes) and the flow fails
there (`fail` in node.conf's faultInjection); for the payee, its store is also restored from a copy of
its SQLite file taken at that step (the agent crashed there, so the copy is exact). Then one recovery
call on the side the reference names, and every party ends VERIFIED with the same transaction or none
holds it, nothing is left IN_FLIGHT, the vaults agree with the notary, and the payer spends its change.

Each group of cases shares one network (restarting only the node whose faults change) and each case
trades in a currency of its own, so that the cases' vaults do not mix. Every process is stopped by
its PID (AgentProcess.stop); outcomes are polled with deadlines, never slept for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.client.launcher import AgentProcessError, read_password
from agent.client.nodeconf import read_node_conf
from agent.network.bootstrap import MONITOR_PASSWORD_FILE, MONITOR_USER
from agent.store.database import backup_sqlite
from tests.agent_processes import flows_of, holdings, notarised, recover, restart, status
from tests.endpoints import management
from tests.test_processes import CRASHED, Network, _latest_payment, _start, _wait_until

A, B, C = "O=PartyA, L=London, C=GB", "O=PartyB, L=New York, C=US", "O=PartyC, L=Paris, C=FR"
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
BEFORE_RECORDING = ("RECEIVED", "BACKCHAIN_RESOLVED")
SETTLE_S = 90.0


class Networks:
    """One network per group of cases, started on first use and stopped (by PID) at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: dict[str, Network] = {}
        self.currencies = 0

    def get(self, group: str) -> Network:
        if group not in self.started:
            net = _start(self.root / group, {}, None)
            self.started[group] = net
            for proc in net.processes.values():
                proc.start()
            for proc in net.processes.values():
                proc.wait_ready()
        return self.started[group]

    def currency(self) -> str:
        self.currencies += 1
        return f"R{self.currencies:02d}"

    def stop(self) -> None:
        for net in self.started.values():
            for proc in net.processes.values():
                proc.stop()


@pytest.fixture(scope="module")
def networks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Networks]:
    shared = Networks(tmp_path_factory.mktemp("recovery"))
    yield shared
    shared.stop()


def pay(net: Network, currency: str) -> str:
    """B issues 100 to A; A pays C 10 with B observing. The payment's id, however it ended."""
    net.client(B).issue([(A, 100)], currency)
    try:
        return net.client(A).pay(C, 10, currency, B, observers=[B], wait=1)
    except (httpx.HTTPError, AgentProcessError):
        return str(_latest_payment(net))  # the flow failed under the call: its id from A's checkpoints


def settle(net: Network, tx: str, final: bool, currency: str, spend_to: str) -> None:
    """Every party holds it VERIFIED (or none does), nothing IN_FLIGHT, vaults as the notary says,
    and A's change (all it holds of the currency) is spendable."""
    expected = "VERIFIED" if final else None
    assert {n: status(net, n, tx) for n in (A, B, C)} == dict.fromkeys((A, B, C), expected)
    for name in (A, B, C):
        assert net.client(name).vault()["transactions"]["IN_FLIGHT"] == 0, name
    assert notarised(net, tx) is final
    assert holdings(net, C, currency) == ([10] if final else [])
    change = 90 if final else 100
    assert holdings(net, A, currency) == [change]
    spent = net.client(A).pay(spend_to, change, currency, B)
    assert status(net, spend_to, spent) == "VERIFIED"
    assert holdings(net, A, currency) == []


# -- the payer (initiator) fails at each step; it recovers by the failed flow's id ----------------

# What recovery returns: nothing recorded before AFTER_RECORD, every party VERIFIED after FINALISED.
PAYER_RECOVERS = dict.fromkeys(INITIATOR_STEPS, True) | {"VERIFIED": False, "FINALISED": False}


@pytest.mark.slow
@pytest.mark.parametrize("step", INITIATOR_STEPS)
def test_a_payer_whose_finality_failed_at_a_step_recovers_it_by_flow_id(
    networks: Networks, step: str
) -> None:
    net = networks.get("payer")
    currency = networks.currency()
    restart(net, A, [f"FinalityFlow.{step}=fail"])
    tx = pay(net, currency)
    _wait_until(
        lambda: bool(flows_of(net, A, tx, status="FAILED", flowName="FinalityFlow")),
        SETTLE_S,
        lambda: flows_of(net, A, tx),
    )
    (failed,) = flows_of(net, A, tx, status="FAILED", flowName="FinalityFlow")
    assert failed["step"] == step and "InjectedFaultError" in failed["error"]
    if step == "AFTER_NOTARISE":
        _queries_and_roles(net, failed["flowId"], tx)
    answer = recover(net, A, "recoverFinalityFlow", id=failed["flowId"])
    assert answer["recovered"] is PAYER_RECOVERS[step], answer
    assert answer["text"] == (
        f"Recovered finality flow [{failed['flowId']}]"
        if PAYER_RECOVERS[step]
        else f"Failed to recover finality flow {failed['flowId']}"
    )
    if step == "FINALISED":
        assert "Recovery not possible for transaction with status VERIFIED" in net.processes[A].log_tail(200)
    restart(net, A, [])  # A's fault is armed for every new FinalityFlow: its change is spent without it
    settle(net, tx, step != "VERIFIED", currency, C)


def _queries_and_roles(net: Network, flow_id: str, tx: str) -> None:
    """flowStatus queryFinalityById / ByTxnId on both sides, and who may call what."""
    at_a = net.client(A).call("GET", f"/api/finality/getFlowTransaction/{flow_id}")
    assert (at_a["stateMachineRunId"], at_a["txId"], at_a["status"]) == (flow_id, tx, "IN_FLIGHT")
    assert (at_a["initiator"], at_a["peers"]) == (A, [B, C])
    at_c = net.client(C).call("GET", f"/api/finality/getFlowTransactionByTxnId/{tx}")
    assert (at_c["status"], at_c["initiator"], at_c["peers"]) == ("IN_FLIGHT", A, None)
    node = next(n for n in net.layout.nodes if str(n.name) == A)
    base, verify = management(node.config)
    monitor = (MONITOR_USER, (node.folder / MONITOR_PASSWORD_FILE).read_text().strip())
    operator = (net.client(A).username, read_password(node.folder))
    with httpx.Client(base_url=base, verify=verify, trust_env=False) as http:
        url = "/api/finality/recoverFinalityFlow"
        assert http.post(url, json={"id": flow_id}).status_code == 401
        refused = http.post(url, json={"id": flow_id}, auth=monitor)
        assert (refused.status_code, refused.json()["error"]) == (403, "SecurityException")
        read = http.get(f"/api/finality/getFlowTransaction/{flow_id}", auth=monitor)
        assert read.status_code == 200
        empty = http.post("/api/finality/recoverFinalityFlowsMatching", json={}, auth=operator)
        assert empty.status_code == 400 and "at least one criterion" in empty.json()["message"]
    # C may not recover it without forceRecover: its ReceiveFinalityFlow still waits for the signature.
    with pytest.raises(AgentProcessError, match="FlowRecoveryException: the finality of transaction"):
        recover(net, C, "recoverFinalityFlowByTxnId", txnId=tx)
    # Every recovery call is in the audit log: the read-only user's refusal and the operator's call.
    entries = [e for e in net.client(A).audit() if e["action"] == "recoverFinalityFlowsMatching"]
    assert entries and entries[0]["outcome"].startswith("error: FlowArgumentError")
    assert entries[0]["surface"] == "rest"
    (refusal,) = [
        e for e in net.client(A).audit() if e["action"] == "recoverFinalityFlow" and e["user"] == MONITOR_USER
    ]
    assert refusal["outcome"].startswith("refused") and refusal["target"] == flow_id


# -- a receiver (payee C, observer B) fails at each step ------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("step", RECEIVER_STEPS)
@pytest.mark.parametrize(("role", "receiver"), [("payee", C), ("observer", B)], ids=["payee", "observer"])
def test_a_receiver_whose_finality_failed_at_a_step_is_recovered_on_the_side_the_reference_names(
    networks: Networks, role: str, receiver: str, step: str
) -> None:
    net = networks.get(role)
    currency = networks.currency()
    restart(net, receiver, [f"ReceiveFinalityFlow.{step}=fail"])
    tx = pay(net, currency)
    other = B if receiver == C else C
    if step in BEFORE_RECORDING:
        # Kept in the receiver's hospital before it recorded: A's flow waits for it, nothing notarised.
        # The reference: not notarised, so the initiator recovers (forced: its flow still runs).
        _wait_until(
            lambda: any(
                "keeps it for observation" in (f["waitingFor"] or "")
                for f in flows_of(net, A, tx, status="RUNNABLE", flowName="FinalityFlow")
            ),
            SETTLE_S,
            lambda: flows_of(net, A, tx),
        )
        assert status(net, receiver, tx) is None and not notarised(net, tx)
        answer = recover(net, A, "recoverFinalityFlowByTxnId", txnId=tx, forceRecover=True)
        assert answer["recovered"] is True, answer
        killed = [f["status"] for f in flows_of(net, receiver, tx, flowName="ReceiveFinalityFlow")]
        assert killed == ["KILLED"]
    else:
        # It had recorded: the sender went on, and its signature finalised the receiver's copy. The
        # kept flow is the receiver's; forcing its recovery finds nothing to do.
        _wait_until(
            lambda: all(status(net, n, tx) == "VERIFIED" for n in (A, B, C)),
            SETTLE_S,
            lambda: {n: flows_of(net, n, tx) for n in (A, B, C)},
        )
        (kept,) = flows_of(net, receiver, tx, status="HOSPITALIZED")
        answer = recover(net, receiver, "recoverFinalityFlow", id=kept["flowId"], forceRecover=True)
        assert answer["recovered"] is False, answer
    # Its fault stays armed for new ReceiveFinalityFlows there: the change goes to the other party.
    settle(net, tx, True, currency, other)


# -- the payee's store restored from a copy taken at each step ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("step", RECEIVER_STEPS)
def test_a_payee_restored_from_a_copy_of_its_store_taken_at_a_step_is_recovered(
    networks: Networks, step: str, tmp_path: Path
) -> None:
    net = networks.get("backup")
    currency = networks.currency()
    restart(net, C, [f"ReceiveFinalityFlow.{step}=crash"])
    net.client(B).issue([(A, 100)], currency)
    tx = net.client(A).pay(C, 10, currency, B, observers=[B], wait=1)  # C dies under it: 202, the id
    assert net.processes[C].wait_exit(60) == CRASHED
    node = next(n for n in net.layout.nodes if str(n.name) == C)
    db = Path(read_node_conf(node.config).database_url.removeprefix("sqlite:///"))
    copy = tmp_path / "PartyC-at-step.db"
    backup_sqlite(db, copy)  # C stopped right after that step's commit: the copy is that moment
    restart(net, C, [])
    _wait_until(
        lambda: all(status(net, n, tx) == "VERIFIED" for n in (A, B, C)),
        SETTLE_S,
        lambda: {n: flows_of(net, n, tx) for n in (A, B, C)},
    )
    assert net.processes[C].stop() == 0
    backup_sqlite(copy, db)  # the disaster: C's store as it was at that step
    net.processes[C].start()
    net.processes[C].wait_ready()
    if step in BEFORE_RECORDING:
        # C's restored flow starts over (it waits for a signature that came long ago); A finalised:
        # the reference's "recover failed peers" by transaction id, at the initiator.
        answer = recover(net, A, "recoverFinalityFlowByTxnId", txnId=tx)
        assert answer["recovered"] is True, answer
    elif step == "RECORDED":
        # C holds it IN_FLIGHT and its flow waits for the signature: notarised, so C recovers alone.
        assert status(net, C, tx) == "IN_FLIGHT"
        answer = recover(net, C, "recoverFinalityFlowByTxnId", txnId=tx, forceRecover=True)
        assert answer["recovered"] is True, answer
        (check,) = flows_of(net, C, tx, flowName="FinalityRecoveryFlow")
        assert (check["status"], check["step"]) == ("COMPLETED", "FINALISED")
    else:
        # The copy holds the signature (or the final row): C finishes at start; nothing to recover.
        _wait_until(lambda: status(net, C, tx) == "VERIFIED", SETTLE_S, lambda: flows_of(net, C, tx))
        answer = recover(net, A, "recoverFinalityFlowByTxnId", txnId=tx)
        assert answer["recovered"] is False, answer
    settle(net, tx, True, currency, C)

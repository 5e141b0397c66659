"""Ledger Recovery on real agent processes (issue 15's "Done when"), through the REST routes.

A node is restored from a copy of its SQLite store taken while it ran (SQLite's online backup API) and
recovers from its peers with LedgerRecoveryFlow. What it must get back is what it held before the
disaster, read from its store; the checks compare transactions, vault rows (consumed ones too) and
distribution records. Failures are real: a peer stopped by its PID, the recovering agent killed at
a named step of the flow (faultInjection's crash), a distribution list changed in the peer's store.
Every process is stopped by its PID; waits poll with deadlines.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.client.launcher import AgentProcessError
from agent.config import load_node_config
from agent.errors import PeerRequestError
from agent.ledger.identity import X500Name
from agent.p2p.client import PeerClient
from agent.recovery.protocol import TOPIC_TRANSACTIONS
from agent.store.database import backup_sqlite
from tests.agent_processes import configure, node_of
from tests.endpoints import member_transport
from tests.recovery.snapshot import ledger_of, without
from tests.test_processes import CRASHED, Network, _as_node, _start, _wait_until

A, B, C = "O=PartyA, L=London, C=GB", "O=PartyB, L=New York, C=US", "O=PartyC, L=Paris, C=FR"
FROM = {"timeWindow": {"fromTime": "2020-01-01T00:00:00Z"}}
WAIT_S = 120.0

pytestmark = pytest.mark.slow


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    network = _start(tmp_path, {}, None)
    try:
        for proc in network.processes.values():
            proc.start()
        for proc in network.processes.values():
            proc.wait_ready()
        yield network
    finally:
        for proc in network.processes.values():
            proc.stop()


def db_of(net: Network, name: str) -> Path:
    return Path(load_node_config(node_of(net, name).config).database_url.removeprefix("sqlite:///"))


def snapshot(net: Network, name: str) -> dict[str, Any]:
    store = net.store(name)
    try:
        return ledger_of(store)
    finally:
        store.close()


def restore(net: Network, name: str, backup: Path) -> None:
    """The disaster: the agent stopped by its PID, its store replaced by the copy, started again."""
    proc = net.processes[name]
    proc.stop()
    backup_sqlite(backup, db_of(net, name))
    proc.start()
    proc.wait_ready()


def trade(net: Network, rounds: int, currency: str = "GBP") -> None:
    """Payments every way, some with an observer; B is the issuer of what they move."""
    for i in range(rounds):
        net.client(A).pay(C, 3, currency, B, observers=[B] if i % 2 else [])
        net.client(C).pay(A, 2, currency, B)
        net.client(B).pay(A, 1, currency, B, observers=[C])


def ledger_recovery(net: Network, name: str, **body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = net.client(name).call(
        "POST", "/api/recovery/ledgerRecovery", {"timeout": WAIT_S, **body}
    )
    return answer


def synchronised(answer: dict[str, Any]) -> set[str]:
    return {r["transactionId"] for r in answer["results"] if r["synchronised"]}


def _setup(net: Network, tmp_path: Path, rounds_after: int = 3) -> tuple[dict[str, Any], set[str], set[str]]:
    """B issues to everyone, they trade, A's store is copied, they trade more, A issues to itself.
    Then A is restored: what it held before, what it lost, and what no peer holds (its issuance)."""
    net.client(B).issue([(A, 500), (C, 500), (B, 500)], "GBP")
    trade(net, 2)
    backup = tmp_path / "A-backup.db"
    backup_sqlite(db_of(net, A), backup)
    trade(net, rounds_after)
    alone = net.client(A).issue([(A, 50)], "EUR")  # A alone: no peer holds it
    before = snapshot(net, A)
    restore(net, A, backup)
    lost = set(before["transactions"]) - set(snapshot(net, A)["transactions"])
    return before, lost, {alone}


def test_a_restored_node_gets_its_ledger_back_and_a_second_run_finds_nothing(
    net: Network, tmp_path: Path
) -> None:
    before, lost, alone = _setup(net, tmp_path)
    assert len(lost) >= 9

    restored = snapshot(net, A)
    dry = ledger_recovery(net, A, recoveryPeers=[B, C], dryRun=True, **FROM)
    assert {r["transactionId"] for r in dry["results"]} == lost - alone
    assert snapshot(net, A) == restored  # a dry run writes nothing

    answer = ledger_recovery(net, A, recoveryPeers=[B, C], **FROM)
    assert answer["totalErrors"] == 0 and synchronised(answer) == lost - alone
    assert answer["totalRecoveredTransactions"] == len(lost - alone)
    assert snapshot(net, A) == without(before, alone)
    some = sorted(lost - alone)[0]
    assert net.client(A).transaction(some)["recovered"] is True  # not new business

    again = ledger_recovery(net, A, recoveryPeers=[B, C], **FROM)
    assert (again["totalRecoveredTransactions"], again["totalRecoveredRecords"], again["results"]) == (
        0,
        0,
        [],
    )
    # A trades again: its vault offers no spent state.
    net.client(A).pay(C, 1, "GBP", B)


def test_a_peer_down_is_named_and_the_next_run_resumes_when_it_is_back(net: Network, tmp_path: Path) -> None:
    before, _, alone = _setup(net, tmp_path)
    net.processes[C].stop()
    with pytest.raises(AgentProcessError, match=r"LedgerRecoveryException.*PartyC"):
        ledger_recovery(net, A, recoveryPeers=[B, C], **FROM)
    net.processes[C].start()
    net.processes[C].wait_ready()
    answer = ledger_recovery(net, A, recoveryPeers=[B, C], **FROM)
    assert answer["totalErrors"] == 0
    assert snapshot(net, A) == without(before, alone)
    results = net.client(A).call("GET", f"/api/recovery/results/{answer['flowId']}")
    # One result per transaction and peer whose record named it: nothing twice.
    pairs = [(r["transactionId"], r["recoveryPeer"]) for r in results["results"]]
    assert len(pairs) == len(set(pairs))


def test_an_agent_killed_during_recovery_resumes_and_does_nothing_twice(net: Network, tmp_path: Path) -> None:
    before, lost, alone = _setup(net, tmp_path, rounds_after=4)
    proc = net.processes[A]
    proc.stop()
    configure(net, A, ["LedgerRecoveryFlow.RECOVERED_2=crash"])  # the second batch of 3
    proc.start()
    proc.wait_ready()
    with pytest.raises((httpx.HTTPError, AgentProcessError)):
        ledger_recovery(net, A, recoveryPeers=[B, C], recoveryBatchSize=3, **FROM)
    assert proc.wait_exit(30) == CRASHED
    configure(net, A, [])
    proc.start()
    proc.wait_ready()

    def finished() -> bool:
        return any(f["status"] == "COMPLETED" for f in net.client(A).flows(flowName="LedgerRecoveryFlow"))

    _wait_until(finished, WAIT_S, lambda: net.client(A).flows(flowName="LedgerRecoveryFlow"))
    assert snapshot(net, A) == without(before, alone)
    (run,) = net.client(A).flows(flowName="LedgerRecoveryFlow")
    results = net.client(A).call("GET", f"/api/recovery/results/{run['flowId']}")
    pairs = [(r["transactionId"], r["recoveryPeer"]) for r in results["results"] if r["synchronised"]]
    assert len(pairs) == len(set(pairs)) and {t for t, _ in pairs} == lost - alone


def test_a_tampered_distribution_list_is_refused(net: Network, tmp_path: Path) -> None:
    _setup(net, tmp_path)
    proc = net.processes[C]
    proc.stop()
    with sqlite3.connect(db_of(net, C)) as db:  # C keeps A's lists: change one byte of one of them
        tx_id, blob = db.execute(
            "SELECT r.transaction_id, r.distribution_list FROM node_receiver_distr_recs r "
            "JOIN node_recovery_party_info p ON p.party_id = r.peer_party_id WHERE p.party_name = ? "
            "ORDER BY r.timestamp DESC LIMIT 1",
            (A,),
        ).fetchone()
        changed = bytearray(blob)
        changed[5] ^= 0x01  # inside the key id: the list no longer opens
        db.execute(
            "UPDATE node_receiver_distr_recs SET distribution_list = ? WHERE transaction_id = ?",
            (bytes(changed), tx_id),
        )
    proc.start()
    proc.wait_ready()
    answer = ledger_recovery(net, A, recoveryPeers=[C], transactionRole="INITIATOR", **FROM)
    (refused,) = [r for r in answer["results"] if r["transactionId"] == tx_id]
    assert refused["synchronised"] is False and "DistributionListError" in refused["failureCause"]
    assert answer["totalErrors"] == 1
    assert tx_id not in {r[0] for r in snapshot(net, A)["sent"]}


def test_two_nodes_restored_over_overlapping_windows_are_both_whole_again(
    net: Network, tmp_path: Path
) -> None:
    net.client(B).issue([(A, 500), (C, 500), (B, 500)], "GBP")
    trade(net, 1)
    backups = {name: tmp_path / f"{name[2:8]}.db" for name in (A, B)}
    for name, path in backups.items():
        backup_sqlite(db_of(net, name), path)
    net.client(B).issue([(A, 40)], "USD")  # neither C's business nor in any record C keeps
    net.client(A).pay(B, 5, "USD", B, observers=[C])  # initiated by A, with B and C
    trade(net, 2)
    before = {name: snapshot(net, name) for name in (A, B)}
    for name, path in backups.items():
        restore(net, name, path)
    a = ledger_recovery(net, A, recoveryPeers=[B, C], optimisticInitiatorRecovery=True, **FROM)
    assert a["totalErrors"] == 0
    b = net.client(B).call(
        "POST",
        "/api/recovery/recover",
        {"recoveryPeers": [A, C], "dryRun": False, "optimisticInitiatorRecovery": True, "timeout": WAIT_S},
    )
    assert b["totalErrors"] == 0
    for name in (A, B):
        after = snapshot(net, name)
        assert after["transactions"] == before[name]["transactions"], name
        assert after["vault"] == before[name]["vault"], name
    net.client(A).pay(B, 1, "GBP", B)
    net.client(B).pay(A, 1, "GBP", B)


def test_a_peer_refuses_a_transaction_the_requester_is_not_entitled_to(net: Network) -> None:
    issued = net.client(B).issue([(C, 100)], "CHF")
    paid = net.client(C).pay(B, 10, "CHF", B)
    node, authenticator = _as_node(net, A)  # A's own key, asking B for what is B's and C's alone
    with member_transport(node_of(net, A).config) as transport:  # over A's own TLS certificate
        client = PeerClient(authenticator, node.network_map, transport)
        reply = client.request(X500Name.parse(B), TOPIC_TRANSACTIONS, {"ids": [issued, paid], "roots": []})
        assert reply["txs"] == [] and [d[0] for d in reply["denied"]] == [issued, paid]
        assert "O=PartyA, L=London, C=GB is not entitled" in reply["denied"][0][1]
        assert "refused 2 transaction(s) to O=PartyA" in net.processes[B].log_tail(100)
        with pytest.raises(PeerRequestError):
            client.request(X500Name.parse(B), TOPIC_TRANSACTIONS, {"ids": ["not an id"], "roots": []})

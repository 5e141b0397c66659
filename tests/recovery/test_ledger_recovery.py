"""LedgerRecoveryFlow among real node runtimes on the in-process network.

A node is restored from a copy of its store taken half way through the trading (SQLite's backup API),
then recovers from its peers. What it must get back is what it had before the disaster, found by
reading its store before and after; what no peer holds (an exit it made alone) stays lost.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigurationError
from agent.ledger.identity import X500Name
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.p2p.inprocess import InProcessNetwork
from agent.recovery.protocol import TOPIC_TRANSACTIONS
from agent.runtime import AgentRuntime
from agent.store.database import backup_sqlite
from tests.inprocess_net import InProcessNet
from tests.recovery.snapshot import ledger_of

A, B, C = default_node_names(3)
WAIT = 60.0


Net = InProcessNet


@pytest.fixture(params=[False], ids=["records"])
def net(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Net]:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    n = Net(layout, InProcessNetwork(), ledgersync=request.param)
    try:
        for entry in layout.nodes:
            n.start(entry.name)
        yield n
    finally:
        n.stop_all()


def ledger(runtime: AgentRuntime) -> dict[str, Any]:
    return ledger_of(runtime.node.store)


def trade(net: Net, rounds: int) -> None:
    for i in range(rounds):
        net[A].tokens.pay(C, 3, "GBP", B, observers=[B] if i % 2 else [])
        net[C].tokens.pay(A, 2, "GBP", B)
        net[B].tokens.pay(A, 1, "GBP", B, observers=[C])


def window() -> dict[str, Any]:
    return {"timeWindow": {"fromTime": "2020-01-01T00:00:00Z"}}


# Batches of 2: many steps, each asking for the next batch ahead while it records, with back-chains that
# cross batches (what the ahead request guessed is then partly recorded already).
@pytest.mark.parametrize("batch", [1000, 2], ids=["one-batch", "batches-of-2"])
def test_a_restored_node_recovers_everything_its_peers_hold_and_a_second_run_finds_nothing(
    net: Net, tmp_path: Path, batch: int
) -> None:
    net[B].tokens.issue([(A, 100), (C, 100), (B, 100)], "GBP", [])
    trade(net, 3)
    backup = tmp_path / "A-backup.db"
    backup_sqlite(net.db(A), backup)
    trade(net, 4)
    alone = net[A].tokens.issue([(A, 50)], "EUR", [])  # A alone: no peer holds it
    before = ledger(net[A])
    # Told before the disaster: what nothing could recover.
    assert [t["transactionId"] for t in net[A].ledger_recovery.held_by_no_peer()] == [str(alone.id)]
    net.restore(A, backup)
    lost = set(before["transactions"]) - set(ledger(net[A])["transactions"])
    assert len(lost) >= 12

    # A dry run says what is missing and writes nothing.
    dry = net[A].ledger_recovery.recover(
        {"recoveryPeers": [str(B), str(C)], "dryRun": True, **window()}, timeout=WAIT
    )
    assert dry["dryRun"] and all(r["synchronised"] is False for r in dry["results"])
    assert {r["transactionId"] for r in dry["results"]} == lost - {_eur_issue(before)}
    assert ledger(net[A]) != before and net[A].node.store.recovery.pending() == []

    result = net[A].ledger_recovery.recover(
        {"recoveryPeers": [str(B), str(C)], "recoveryBatchSize": batch, **window()}, timeout=WAIT
    )
    assert result["totalErrors"] == 0
    after = ledger(net[A])
    eur = _eur_issue(before)
    expected = {k: v for k, v in before["transactions"].items() if k != eur}
    assert after["transactions"] == expected
    assert after["sent"] == before["sent"] and after["received"] == before["received"]
    assert after["vault"] == [v for v in before["vault"] if not v[0].startswith(eur)]
    assert {r["transactionId"] for r in result["results"] if r["synchronised"]} == lost - {eur}
    assert result["totalRecoveredTransactions"] == len(lost - {eur})
    # A can trade again: its vault offers no spent state.
    net[A].tokens.pay(C, 1, "GBP", B)

    again = net[A].ledger_recovery.recover({"recoveryPeers": [str(B), str(C)], **window()}, timeout=WAIT)
    assert again["totalRecoveredTransactions"] == 0 and again["results"] == []


def _eur_issue(before: dict[str, Any]) -> str:
    # The only transaction A holds that has no distribution record at all: its issuance to itself.
    with_records = {r[0] for r in before["sent"]} | {r[0] for r in before["received"]}
    (eur,) = [t for t in before["transactions"] if t not in with_records]
    return eur


def test_a_peer_refuses_a_transaction_the_requester_is_not_entitled_to(net: Net) -> None:
    issued = net[B].tokens.issue([(C, 100)], "GBP", [])
    paid = net[C].tokens.pay(B, 10, "GBP", B)
    reply = net[A].peers.request(B, TOPIC_TRANSACTIONS, {"ids": [str(issued.id), str(paid.id)], "roots": []})
    assert reply["txs"] == []
    assert [d[0] for d in reply["denied"]] == [str(issued.id), str(paid.id)]
    assert "O=PartyA" in reply["denied"][0][1] and "not entitled" in reply["denied"][0][1]
    # An id B does not hold gets the same answer as one A is not entitled to: asking tells A nothing.
    absent = "AB" * 32
    both = net[A].peers.request(B, TOPIC_TRANSACTIONS, {"ids": [str(issued.id), absent], "roots": []})
    (held, _), (not_held, _) = both["denied"]
    assert both["unknown"] == [] and (held, not_held) == (str(issued.id), absent)
    assert both["denied"][0][1].replace(str(issued.id), "X") == both["denied"][1][1].replace(absent, "X")
    # C, a participant, is served.
    reply = net[C].peers.request(B, TOPIC_TRANSACTIONS, {"ids": [str(paid.id)], "roots": []})
    assert [t[0] for t in reply["txs"]] == [str(paid.id)]


def test_bad_parameters_are_named(net: Net) -> None:
    service = net[A].ledger_recovery
    with pytest.raises(ConfigurationError, match="timeWindow"):
        service.parameters({"recoveryPeers": [str(B)]})
    with pytest.raises(ConfigurationError, match="recoveryBatchSize"):
        service.parameters({"recoveryPeers": [str(B)], "recoveryBatchSize": 0, **window()})
    with pytest.raises(ConfigurationError, match="recoveryPeers"):
        service.parameters({"recoveryPeers": ["O=Nobody, L=Nowhere, C=GB"], **window()})
    with pytest.raises(ConfigurationError, match="transactionRole"):
        service.parameters({"recoveryPeers": [str(B)], "transactionRole": "BOSS", **window()})
    shipped = service.parameters(
        {"parameters": {"recoveryPeers": [str(B)], "recoveryBatchSize": 10, **window()}}
    )
    assert shipped.recovery_batch_size == 10 and shipped.use_time_window_narrowing
    every = service.parameters({"useAllNetworkNodes": True, **window()})
    assert set(every.recovery_peers) == {B, C}
    assert service.parameters(
        {
            "recoveryPeers": [str(B)],
            "timeWindow": {"fromTime": "2026-01-01T00:00:00Z", "untilTime": "2026-01-02T00:00:00Z"},
        }
    ).time_window.until_time - service.parameters(
        {
            "recoveryPeers": [str(B)],
            "timeWindow": {"fromTime": "2026-01-01T00:00:00Z", "untilTime": "2026-01-02T00:00:00Z"},
        }
    ).time_window.from_time == timedelta(days=1)


@pytest.mark.parametrize("net", [True], ids=["ledgersync"], indirect=True)
def test_recover_reconciles_first_and_fetches_what_no_record_names(net: Net, tmp_path: Path) -> None:
    net[B].tokens.issue([(A, 100), (C, 100)], "GBP", [])
    backup = tmp_path / "A-backup.db"
    backup_sqlite(net.db(A), backup)
    net[C].tokens.pay(A, 7, "GBP", B)
    # A transaction from before distribution records: recorded on both sides with none.
    old = _unrecorded_issue(net, to=A, amount=11)
    before = ledger(net[A])
    net.restore(A, backup)
    service = net[A].ledger_recovery

    records_only = service.recover(
        {"recoveryPeers": [str(B), str(C)], "dryRun": True, **window()}, timeout=WAIT
    )
    assert str(old.id) not in {r["transactionId"] for r in records_only["results"]}

    plan = service.start(
        service.reconcile_then_recover_parameters({"recoveryPeers": [str(B), str(C)]})
    ).result(WAIT)
    assert plan["dryRun"] and plan["ledgerSync"] is not None
    assert str(old.id) in {r["transactionId"] for r in plan["results"]}
    assert plan["plan"]["transactions"] == 2 and plan["plan"]["bytes"] > 0
    assert ledger(net[A])["transactions"] != before["transactions"]

    applied = service.start(
        service.reconcile_then_recover_parameters({"recoveryPeers": [str(B), str(C)], "dryRun": False})
    ).result(WAIT)
    assert applied["totalErrors"] == 0
    assert ledger(net[A])["transactions"] == before["transactions"]
    assert ledger(net[A])["vault"] == before["vault"]


def _unrecorded_issue(net: Net, *, to: X500Name, amount: int) -> Any:
    from agent.ledger import token

    issuer = net[B].node
    notary = net[DEFAULT_NOTARY].node.identity
    stx = token.issue(issuer.identity, notary, [(net[to].node.identity, amount)], "USD").sign([issuer.key])
    for name in (B, to):
        net[name].node.ledger.record(stx)
    return stx


def test_a_failed_run_leaves_its_missing_rows_to_the_next_and_new_flows_wait_if_asked(
    net: Net, tmp_path: Path
) -> None:
    from agent.errors import LedgerRecoveryInProgressError
    from agent.flows.faults import FaultPlan, InjectedFaultError
    from agent.recovery.settings import LedgerRecoverySettings

    net[B].tokens.issue([(A, 100), (C, 100), (B, 100)], "GBP", [])
    backup = tmp_path / "A-backup.db"
    backup_sqlite(net.db(A), backup)
    trade(net, 2)
    before = ledger(net[A])
    net.restore(A, backup)
    a = net[A]
    a.ledger_recovery.settings = LedgerRecoverySettings(hold_new_flows_until_recovered=True)
    a.engine.faults = FaultPlan.parse(["LedgerRecoveryFlow.IDENTIFIED_1=fail"])
    with pytest.raises(InjectedFaultError):
        a.ledger_recovery.recover({"recoveryPeers": [str(B), str(C)], **window()}, timeout=WAIT)
    pending = a.node.store.recovery.pending()
    assert pending and ledger(a) != before  # found, committed, not yet fetched
    with pytest.raises(LedgerRecoveryInProgressError, match="holdNewFlowsUntilRecovered"):
        a.tokens.pay(C, 1, "GBP", B)
    a.engine.faults = FaultPlan()
    result = a.ledger_recovery.recover({"recoveryPeers": [str(B), str(C)], **window()}, timeout=WAIT)
    assert result["totalErrors"] == 0
    assert {r["transactionId"] for r in result["results"]} >= {r.tx_id for r in pending}
    assert ledger(a) == before
    a.tokens.pay(C, 1, "GBP", B)  # no longer held


def test_a_tampered_list_is_refused_and_asked_for_again_by_the_next_run(net: Net, tmp_path: Path) -> None:
    import sqlite3

    net[B].tokens.issue([(A, 100), (C, 100)], "GBP", [])
    backup = tmp_path / "A-backup.db"
    backup_sqlite(net.db(A), backup)
    paid = net[A].tokens.pay(C, 5, "GBP", B)  # A initiated it: C keeps A's encrypted list
    c_db = net[C].node.config.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(c_db) as db:
        (blob,) = db.execute(
            "SELECT distribution_list FROM node_receiver_distr_recs WHERE transaction_id = ?", (str(paid.id),)
        ).fetchone()
        changed = bytearray(blob)
        changed[-1] ^= 0x01  # the tag: the list no longer authenticates
        db.execute(
            "UPDATE node_receiver_distr_recs SET distribution_list = ? WHERE transaction_id = ?",
            (bytes(changed), str(paid.id)),
        )
    db.close()
    net.restore(A, backup)
    service = net[A].ledger_recovery
    first = service.recover(
        {"recoveryPeers": [str(C)], "transactionRole": "INITIATOR", **window()}, timeout=WAIT
    )
    (refused,) = first["results"]
    assert refused["transactionId"] == str(paid.id) and refused["synchronised"] is False
    assert "tampered" in refused["failureCause"]
    assert net[A].node.store.distribution.sender_records(paid.id) == []
    service.recover({"recoveryPeers": [str(C)], "transactionRole": "INITIATOR", **window()}, timeout=WAIT)
    (row,) = net[A].node.store.recovery.missing(tx_ids=[str(paid.id)])
    assert (row.status, row.attempts) == ("UNRECOVERABLE", 2)
    # The slow retry: nothing tried within the interval; once it has passed, a run of its own.
    from datetime import UTC, datetime

    from agent.clock import ManualClock

    assert service.retry_unrecoverable() is None
    service.clock = ManualClock(datetime.now(UTC) + timedelta(hours=2))  # unrecoverableRetryInterval is 1h
    handle = service.retry_unrecoverable()
    assert handle is not None
    summary = handle.result(WAIT)
    assert [r["transactionId"] for r in summary["results"]] == [str(paid.id)]
    (row,) = net[A].node.store.recovery.missing(tx_ids=[str(paid.id)])
    assert (row.status, row.attempts) == ("UNRECOVERABLE", 3)


def test_also_finalize_finishes_what_comes_back_in_flight(net: Net, tmp_path: Path) -> None:
    from agent.flows.checkpoints import FlowStatus
    from agent.flows.faults import FaultPlan, InjectedFaultError
    from agent.ledger.vault import TransactionStatus

    net[B].tokens.issue([(A, 100)], "GBP", [])
    backup = tmp_path / "C-backup.db"
    backup_sqlite(net.db(C), backup)
    # A's payment to C stops after the notary signed: IN_FLIGHT on both sides.
    net[A].engine.faults = FaultPlan.parse(["FinalityFlow.AFTER_NOTARISE=fail"])
    with pytest.raises(InjectedFaultError):
        net[A].tokens.pay(C, 10, "GBP", B)
    net[A].engine.faults = FaultPlan()
    (failed,) = net[A].engine.flows(flow_name="FinalityFlow", status=FlowStatus.FAILED)
    paid = failed.tx_id
    assert paid is not None
    assert net[C].node.store.transactions.transaction_status(paid) is TransactionStatus.IN_FLIGHT
    net.restore(C, backup)  # C loses it altogether
    assert net[C].node.store.transactions.transaction_status(paid) is None

    result = net[C].ledger_recovery.recover(
        {"recoveryPeers": [str(A)], "alsoFinalize": True, **window()}, timeout=WAIT
    )
    assert (result["totalRecoveredTransactions"], result["totalRecoveredInFlightTransactions"]) == (2, 1)
    # C, a receiver, found the payment notarised and finalised it alone; A follows by its own recovery.
    assert net[C].node.store.transactions.transaction_status(paid) is TransactionStatus.VERIFIED
    assert net[A].recovery.recover_finality_flow_by_txn_id(paid, timeout=WAIT) is True
    assert net[A].node.store.transactions.transaction_status(paid) is TransactionStatus.VERIFIED


def test_a_transaction_whose_signature_a_peer_forged_is_refused_and_the_rest_recovered(
    net: Net, tmp_path: Path
) -> None:
    """B's copy of one transaction A lost carries a signature that does not verify (a byte of it changed
    in B's store). In batches of 2, it comes in a batch asked for ahead, whose signatures the fetching
    thread checked: it must fail there by name, with its descendants, and never reach A's store."""
    import sqlite3

    from agent.ledger.transactions import SignedTransaction

    net[B].tokens.issue([(A, 100), (C, 100), (B, 100)], "GBP", [])
    backup = tmp_path / "A-backup.db"
    backup_sqlite(net.db(A), backup)
    trade(net, 2)
    forged = net[B].tokens.pay(A, 7, "GBP", B)  # B's sender record names A: A asks B for it
    trade(net, 2)
    before = ledger(net[A])
    b_db = net[B].node.config.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(b_db) as db:
        (wire, sigs) = db.execute(
            "SELECT transaction_value, signatures FROM node_transactions WHERE tx_id = ?", (str(forged.id),)
        ).fetchone()
        stx = SignedTransaction.from_parts(wire, sigs)
        changed = bytearray(sigs)
        changed[-1] ^= 0x01  # the last byte of the last signature
        assert SignedTransaction.from_parts(wire, bytes(changed)).sigs != stx.sigs
        db.execute(
            "UPDATE node_transactions SET signatures = ? WHERE tx_id = ?", (bytes(changed), str(forged.id))
        )
    db.close()
    net.restore(A, backup)

    result = net[A].ledger_recovery.recover(
        {"recoveryPeers": [str(B)], "recoveryBatchSize": 2, **window()}, timeout=WAIT
    )
    failed = {r["transactionId"]: r["failureCause"] for r in result["results"] if not r["synchronised"]}
    assert "InvalidSignatureError" in failed[str(forged.id)]
    after = ledger(net[A])
    assert str(forged.id) not in after["transactions"]
    # Whatever else failed, failed because its back-chain holds the forged one; the rest came back.
    assert all(t == str(forged.id) or "back-chain" in cause for t, cause in failed.items())
    recovered = {r["transactionId"] for r in result["results"] if r["synchronised"]}
    assert recovered and all(after["transactions"][t] == before["transactions"][t] for t in recovered)


def test_a_receiver_restored_between_the_phases_gets_the_notarised_transaction(
    net: Net, tmp_path: Path
) -> None:
    """C receives A's payment IN_FLIGHT, then is restored from a backup taken before it: when A's
    FinalityFlow sends the notary's signatures, C holds nothing to put them on. A sends C the whole
    notarised transaction instead (as finality recovery does), rather than failing with it notarised
    and VERIFIED nowhere (the simulation found it: seed 234, docs/simulation.md)."""
    from agent.flows.checkpoints import FlowStatus
    from agent.flows.engine import FlowTimeoutError
    from agent.flows.faults import FaultPlan
    from agent.ledger.vault import TransactionStatus

    # A keeps a failed flow for observation (its operator can retry it), and fails after notarising.
    net.stop(A)
    with net.layout.node(A).config.open("a") as conf:
        conf.write("flowHospital.rules = [{ match = InjectedFaultError, action = observe }]\n")
    net.start(A)
    net[B].tokens.issue([(A, 100), (C, 100)], "GBP", [])
    backup = tmp_path / "C-backup.db"
    backup_sqlite(net.db(C), backup)
    net[A].engine.faults = FaultPlan.parse(["FinalityFlow.AFTER_NOTARISE=fail"])
    with pytest.raises(FlowTimeoutError, match="HOSPITALIZED at step AFTER_NOTARISE"):
        net[A].tokens.pay(C, 5, "GBP", B, timeout=WAIT)
    (flow,) = [
        cp for cp in net[A].engine.flows(flow_name="FinalityFlow") if cp.status is not FlowStatus.COMPLETED
    ]
    status = net[C].node.store.transactions.transaction_status
    assert status(flow.tx_id) is TransactionStatus.IN_FLIGHT
    net.restore(C, backup)
    assert status(flow.tx_id) is None

    net[A].engine.faults = FaultPlan()
    handle = net[A].engine.handle(flow.flow_id)
    assert handle is not None and net[A].engine.retry(flow.flow_id)
    assert handle.wait_for(lambda h: h.done, WAIT)
    assert handle.checkpoint is not None and handle.checkpoint.status is FlowStatus.COMPLETED
    for name in (A, C):
        assert net[name].node.store.transactions.transaction_status(flow.tx_id) is TransactionStatus.VERIFIED
    assert [r.sender for r in net[C].node.store.distribution.receiver_records(flow.tx_id)] == [A]
    assert any(v.ref.txhash == flow.tx_id for v in net[C].node.store.vault.iter_vault_states())


def test_an_initiator_restored_between_the_phases_finishes_them_by_its_recovery_with_also_finalize(
    net: Net, tmp_path: Path
) -> None:
    """A's payment reaches C and its observer B IN_FLIGHT, then A is restored from a backup taken before
    it: the transaction and A's FinalityFlow are gone, the notary never signed, and the receivers'
    flows wait at RECORDED for a signature only A may ask for (its `finality.outcome` now refuses
    them: A sent them nothing, as far as it knows). A's recovery with alsoFinalize brings it back and
    notarises it, and the waiting flows complete. The simulation's seed 3303 (docs/simulation.md)."""
    from agent.flows.checkpoints import FlowStatus
    from agent.flows.faults import FaultPlan, InjectedFaultError
    from agent.ledger.vault import TransactionStatus

    net[B].tokens.issue([(A, 100)], "GBP", [])
    backup = tmp_path / "A-backup.db"
    backup_sqlite(net.db(A), backup)
    net[A].engine.faults = FaultPlan.parse(["FinalityFlow.AFTER_BROADCAST=fail"])
    with pytest.raises(InjectedFaultError):
        net[A].tokens.pay(C, 10, "GBP", B, observers=[B])
    (failed,) = net[A].engine.flows(flow_name="FinalityFlow", status=FlowStatus.FAILED)
    paid = failed.tx_id
    assert paid is not None
    net.restore(A, backup)
    assert net[A].node.store.transactions.transaction_status(paid) is None

    def receiving(name: X500Name) -> list[tuple[FlowStatus, str]]:
        return [
            (f.status, f.progress_step)
            for f in net[name].engine.flows(tx_id=paid, flow_name="ReceiveFinalityFlow")
        ]

    for name in (B, C):
        assert net[name].node.store.transactions.transaction_status(paid) is TransactionStatus.IN_FLIGHT
        assert receiving(name) == [(FlowStatus.RUNNABLE, "RECORDED")]

    result = net[A].ledger_recovery.recover(
        {"recoveryPeers": [str(B), str(C)], "alsoFinalize": True, **window()}, timeout=WAIT
    )
    assert (result["totalRecoveredTransactions"], result["totalRecoveredInFlightTransactions"]) == (1, 1)
    for name in (A, B, C):
        assert net[name].node.store.transactions.transaction_status(paid) is TransactionStatus.VERIFIED
    for name in (B, C):  # the waiting flows took the signature and completed
        assert receiving(name) == [(FlowStatus.COMPLETED, "FINALISED")]
    stored = net[C].node.store.transactions.get_stored(paid)
    assert stored is not None and stored.stx.tx.inputs
    uniqueness = net[DEFAULT_NOTARY].node.store.uniqueness
    assert all(uniqueness.consumer_of(ref) == paid for ref in stored.stx.tx.inputs)


def test_an_issuance_an_observer_lost_comes_back_only_from_its_initiator_and_its_push(
    net: Net, tmp_path: Path
) -> None:
    """C issues to itself with A and B observing; B and C are then restored from backups taken before,
    so only A holds it. B's recovery cannot get it from A: A's record of it is C's, and the list of
    whom C sent it to is sealed under C's keys. C's recovery gets it back from A with that list, and
    its optimisticInitiatorRecovery gives it to B. The simulation's seed 2203 (docs/simulation.md)."""
    from agent.ledger.vault import TransactionStatus

    backups = {name: tmp_path / f"{name.organisation}-backup.db" for name in (B, C)}
    for name, backup in backups.items():
        backup_sqlite(net.db(name), backup)
    issued = net[C].tokens.issue([(C, 29)], "GBP", [A, B])
    for name, backup in backups.items():
        net.restore(name, backup)
    status = {n: net[n].node.store.transactions.transaction_status for n in (A, B, C)}
    assert [status[n](issued.id) for n in (A, B, C)] == [TransactionStatus.VERIFIED, None, None]

    peers = {name: [str(n) for n in (A, B, C) if n != name] for name in (B, C)}
    alone = net[B].ledger_recovery.recover({"recoveryPeers": peers[B], **window()}, timeout=WAIT)
    assert alone["totalRecoveredTransactions"] == 0 and status[B](issued.id) is None

    result = net[C].ledger_recovery.recover(
        {"recoveryPeers": peers[C], "optimisticInitiatorRecovery": True, **window()}, timeout=WAIT
    )
    assert result["totalErrors"] == 0
    assert {r.peer for r in net[C].node.store.distribution.sender_records(issued.id)} == {A, B}
    assert status[C](issued.id) is TransactionStatus.VERIFIED
    assert status[B](issued.id) is TransactionStatus.VERIFIED
    assert [r.sender for r in net[B].node.store.distribution.receiver_records(issued.id)] == [C]

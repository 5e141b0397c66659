"""Finality recovery among real node runtimes on the in-process network: every operation, each case.

A pays C (A is the initiator, C a participant; B an observer where named). Failures are real: a fault
injected at a named step (`fail`), a notary that is down, a double spend, a store restored from a
copy taken before, a checkpoint gone, a crash in the middle of a recovery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.client.launcher import scratch_postgres_databases
from agent.errors import FlowRecoveryException
from agent.finality.queries import FlowRecoveryQuery, FlowTimeWindow
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowTimeoutError
from agent.flows.faults import FaultAction, FaultPlan, InjectedFaultError, simulate_crash
from agent.ledger import token
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction, StateAndRef, TimeWindow
from agent.ledger.vault import RelevancyStatus, TransactionStatus
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.p2p.inprocess import InProcessNetwork
from agent.store.database import backup_sqlite
from tests.conftest import PG_ADMIN_URL
from tests.inprocess_net import InProcessNet

A, B, C = default_node_names(3)
PARTIES = (A, B, C)
WAIT = 30.0


class Net(InProcessNet):
    def status(self, name: X500Name, tx_id: SecureHash) -> TransactionStatus | None:
        return self[name].node.store.transactions.transaction_status(tx_id)

    def statuses(self, tx_id: SecureHash) -> dict[X500Name, TransactionStatus | None]:
        return {name: self.status(name, tx_id) for name in PARTIES}

    def amounts(self, name: X500Name) -> list[int]:
        return sorted(v.state.data["amount"] for v in self[name].node.store.vault.iter_vault_states())

    def notarised(self, tx_id: SecureHash) -> bool:
        notary = self[DEFAULT_NOTARY].node.notary
        assert notary is not None
        return notary.uniqueness.is_committed(tx_id)

    def in_flight(self) -> dict[X500Name, int]:
        return {
            n: self[n].node.store.transactions.count_transactions(TransactionStatus.IN_FLIGHT)
            for n in PARTIES
        }


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    yield from _network(tmp_path, None)


@pytest.fixture
def pg_net(tmp_path: Path) -> Iterator[Net]:
    with scratch_postgres_databases(PG_ADMIN_URL) as url_for:
        yield from _network(tmp_path, url_for)


def _network(tmp_path: Path, url_for: Callable[[X500Name], str] | None) -> Iterator[Net]:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY, database_url_for=url_for)
    n = Net(layout, InProcessNetwork())
    try:
        for entry in layout.nodes:
            n.start(entry.name)
        yield n
    finally:
        n.stop_all()


def issue(
    net: Net, *holdings: tuple[X500Name, int], observers: tuple[X500Name, ...] = ()
) -> SignedTransaction:
    return net[A].tokens.issue(list(holdings or [(A, 100), (B, 40)]), "GBP", observers)


def a_pays(net: Net, to: X500Name, amount: int, index: int = 0) -> SignedTransaction:
    """A payment from A's index-th state, signed by A but not yet finalised."""
    notary = net[DEFAULT_NOTARY].node.identity
    states = [StateAndRef(v.state, v.ref, notary) for v in net[A].node.store.vault.iter_vault_states()]
    move = token.move([states[index]], [(net[to].node.identity, amount)], net[A].node.identity, notary)
    return move.sign([net[A].node.key])


def fail_at(net: Net, name: X500Name, flow: str, step: str) -> None:
    net[name].engine.faults = FaultPlan.parse([f"{flow}.{step}=fail"])


def no_faults(net: Net) -> None:
    for name in PARTIES:
        net[name].engine.faults = FaultPlan()


def failed_flow(net: Net, name: X500Name, tx_id: SecureHash, flow_name: str = "FinalityFlow") -> str:
    (found,) = [f for f in net[name].engine.flows(tx_id=tx_id, flow_name=flow_name)]
    return found.flow_id


def assert_final_everywhere(net: Net, tx_id: SecureHash, holders: tuple[X500Name, ...] = PARTIES) -> None:
    assert {n: net.status(n, tx_id) for n in holders} == dict.fromkeys(holders, TransactionStatus.VERIFIED)
    assert net.notarised(tx_id)
    assert net.in_flight() == dict.fromkeys(PARTIES, 0)


def assert_gone_everywhere(net: Net, tx_id: SecureHash) -> None:
    assert net.statuses(tx_id) == dict.fromkeys(PARTIES)
    assert net.in_flight() == dict.fromkeys(PARTIES, 0)
    for name in PARTIES:
        assert net[name].node.store.distribution.receiver_records(tx_id) == []
        assert net[name].node.store.distribution.sender_records(tx_id) == []


def spend_change(net: Net, amount: int) -> None:
    """The payer's change is free: its next payment goes through."""
    paid = net[A].tokens.pay(B, amount, "GBP", A)
    assert net.status(B, paid.id) is TransactionStatus.VERIFIED


# -- the initiator ---------------------------------------------------------------------------------

# (step, what recovering A's failed flow returns): nothing to do before A recorded it and after A
# finalised it (every receiver finalised first); in between, A finishes it everywhere.
INITIATOR_CASES = [
    ("VERIFIED", False),
    ("AFTER_RECORD", True),
    ("AFTER_BROADCAST", True),
    ("AFTER_NOTARISE", True),
    ("BEFORE_SEND_SIGNATURE", True),
    ("AFTER_SEND_SIGNATURE", True),
    ("FINALISED", False),
]


@pytest.mark.parametrize(("step", "recovered"), INITIATOR_CASES, ids=[c[0] for c in INITIATOR_CASES])
def test_an_initiator_failed_at_any_step_is_recovered_by_its_flow_id(
    net: Net, step: str, recovered: bool, caplog: pytest.LogCaptureFixture
) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", step)
    move = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move, [B])
    no_faults(net)
    flow_id = failed_flow(net, A, move.id)
    with caplog.at_level(logging.WARNING, "ledger_agent.finality.recovery"):
        assert net[A].recovery.recover_finality_flow(flow_id, timeout=WAIT) is recovered
    if step == "VERIFIED":
        assert_gone_everywhere(net, move.id)
        assert not net.notarised(move.id)
        spend_change(net, 100)  # nothing was soft-locked
        return
    if step == "FINALISED":
        assert "Recovery not possible for transaction with status VERIFIED" in caplog.text
    assert_final_everywhere(net, move.id)
    assert net.amounts(C) == [5] and net.amounts(A) == [95]
    assert net[B].node.store.vault.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT) >= 2
    (recovery,) = net[A].engine.flows(tx_id=move.id, flow_name="FinalityRecoveryFlow")
    assert (recovery.status, recovery.progress_step) == (FlowStatus.COMPLETED, "FINALISED")
    spend_change(net, 95)
    # Recovering again: nothing needs it.
    assert net[A].recovery.recover_finality_flow(flow_id, timeout=WAIT) is False


def test_the_initiator_recovers_a_payment_it_made_alone(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    with pytest.raises(InjectedFaultError):
        net[A].tokens.exit(10, "GBP")
    no_faults(net)
    (stuck,) = net[A].engine.flows(status=FlowStatus.FAILED)
    assert stuck.tx_id is not None and net.status(A, stuck.tx_id) is TransactionStatus.IN_FLIGHT
    assert net[A].recovery.recover_finality_flow_by_txn_id(stuck.tx_id, timeout=WAIT) is True
    assert net.status(A, stuck.tx_id) is TransactionStatus.VERIFIED and net.amounts(A) == [90]


def test_a_notary_conflict_undoes_the_transaction_everywhere(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    stuck = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(stuck, [B])
    no_faults(net)
    # A spends the same input elsewhere meanwhile (soft locks only guard A's own coin selection).
    other = net[A].finality.finalise(a_pays(net, B, 7))
    assert net.statuses(stuck.id) == dict.fromkeys(PARTIES, TransactionStatus.IN_FLIGHT)
    assert net[A].recovery.recover_finality_flow(failed_flow(net, A, stuck.id), timeout=WAIT) is True
    assert_gone_everywhere(net, stuck.id)
    assert not net.notarised(stuck.id)
    (recovery,) = net[A].engine.flows(tx_id=stuck.id, flow_name="FinalityRecoveryFlow")
    assert recovery.progress_step == "RECEIVERS_ABORTED"
    assert net.status(B, other.id) is TransactionStatus.VERIFIED and net.amounts(A) == [93]
    assert [f.status for f in net[C].engine.flows(tx_id=stuck.id)] == [FlowStatus.KILLED]


def test_recovery_on_postgresql_finishes_one_payment_and_undoes_a_double_spend(pg_net: Net) -> None:
    net = pg_net
    issue(net, (A, 100), (A, 50))
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    kept, lost = a_pays(net, C, 5, index=0), a_pays(net, C, 6, index=1)
    for move in (kept, lost):
        with pytest.raises(InjectedFaultError):
            net[A].finality.finalise(move, [B])
    no_faults(net)
    spent = net[A].finality.finalise(a_pays(net, B, 7, index=1))  # lost's input, spent elsewhere
    results = net[A].recovery.recover_all_finality_flows(timeout=WAIT)
    assert results == {failed_flow(net, A, kept.id): True, failed_flow(net, A, lost.id): True}
    assert_final_everywhere(net, kept.id)
    assert_gone_everywhere(net, lost.id)
    assert net.status(B, spent.id) is TransactionStatus.VERIFIED


# -- peers -----------------------------------------------------------------------------------------


def test_a_receiver_recovers_alone_after_notarisation_and_the_initiator_follows(
    net: Net, caplog: pytest.LogCaptureFixture
) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    move = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move, [B])
    no_faults(net)
    # C's ReceiveFinalityFlow waits for the signature: still under way, so only forceRecover acts.
    with pytest.raises(FlowRecoveryException, match=r"still under way.*forceRecover"):
        net[C].recovery.recover_finality_flow_by_txn_id(move.id)
    assert net[C].recovery.recover_finality_flow_by_txn_id(move.id, True, timeout=WAIT) is True
    assert net.statuses(move.id) == {
        A: TransactionStatus.IN_FLIGHT,
        B: TransactionStatus.IN_FLIGHT,
        C: TransactionStatus.VERIFIED,
    }
    assert net.amounts(C) == [5]
    (check,) = net[C].engine.flows(tx_id=move.id, flow_name="FinalityRecoveryFlow")
    assert check.progress_step == "FINALISED" and check.counterparties == (A,)
    # The initiator follows (it failed after notarising): B too, and C is left as it is.
    with caplog.at_level(logging.INFO, "ledger_agent.finality.recovery"):
        assert net[A].recovery.recover_all_finality_flows() == {failed_flow(net, A, move.id): True}
    assert_final_everywhere(net, move.id)
    assert net[A].recovery.recover_all_finality_flows() == {}
    assert net[C].recovery.recover_finality_flow_by_txn_id(move.id, True) is False  # VERIFIED


def test_a_receiver_cannot_recover_what_was_never_notarised(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    move = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move)
    no_faults(net)
    receiving = failed_flow(net, C, move.id, "ReceiveFinalityFlow")
    with pytest.raises(FlowRecoveryException, match=rf"not notarised: only its initiator {A} can recover it"):
        net[C].recovery.recover_finality_flow(receiving, force_recover=True, timeout=WAIT)
    assert not net.notarised(move.id)  # the check consumed nothing
    assert net.status(C, move.id) is TransactionStatus.IN_FLIGHT
    (check,) = net[C].engine.flows(tx_id=move.id, flow_name="FinalityRecoveryFlow")
    assert (check.status, check.progress_step) == (FlowStatus.FAILED, "NOT_NOTARISED")
    # As the reference says: the initiator recovers (C's killed flow is no obstacle).
    assert net[A].recovery.recover_finality_flow_by_txn_id(move.id, timeout=WAIT) is True
    assert_final_everywhere(net, move.id, (A, C))
    spend_change(net, 95)


def test_a_receiver_removes_a_transaction_whose_inputs_another_consumed(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    stuck = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(stuck)
    no_faults(net)
    other = net[A].finality.finalise(a_pays(net, B, 7))
    assert net[C].recovery.recover_finality_flow_by_txn_id(stuck.id, True, timeout=WAIT) is True
    assert net.status(C, stuck.id) is None and net[C].node.store.distribution.receiver_records(stuck.id) == []
    assert net.status(A, stuck.id) is TransactionStatus.IN_FLIGHT  # A's to undo, and it does
    assert net[A].recovery.recover_finality_flow_by_txn_id(stuck.id, timeout=WAIT) is True
    assert_gone_everywhere(net, stuck.id)
    assert net.status(A, other.id) is TransactionStatus.VERIFIED


def test_a_killed_initiator_is_recovered_without_force_and_its_receiver_is_told_to_wait_for_it(
    net: Net,
) -> None:
    issue(net)
    notary = next(e for e in net.layout.nodes if e.name == DEFAULT_NOTARY)
    net.network.detach(notary.p2p_address)  # A's flow waits for the notary, RUNNABLE
    move = a_pays(net, C, 5)
    handle = net[A].finality.start(move)
    assert handle.wait_for(lambda h: (h.waiting_for or "").startswith(str(DEFAULT_NOTARY)), WAIT)
    with pytest.raises(FlowRecoveryException, match="still under way"):
        net[A].recovery.recover_finality_flow(handle.flow_id)
    assert net[A].engine.kill(handle.flow_id)
    net.network.attach(notary.p2p_address, net[DEFAULT_NOTARY].peer_service)
    receiving = failed_flow(net, C, move.id, "ReceiveFinalityFlow")  # FAILED: its sender killed its flow
    with pytest.raises(FlowRecoveryException, match="only its initiator"):
        net[C].recovery.recover_finality_flow(receiving, timeout=WAIT)
    assert net[A].recovery.recover_finality_flows([handle.flow_id, "no-such-flow"], timeout=WAIT) == {
        handle.flow_id: True,
        "no-such-flow": False,
    }
    assert_final_everywhere(net, move.id, (A, C))


def test_a_receiver_kept_in_the_hospital_before_it_recorded_does_not_block_the_initiator(net: Net) -> None:
    issue(net)
    # Kept for observation at RECEIVED, and kept so: any new ReceiveFinalityFlow at C fails there too.
    fail_at(net, C, "ReceiveFinalityFlow", "RECEIVED")
    move = a_pays(net, C, 5)
    handle = net[A].finality.start(move, [B])
    assert handle.wait_for(lambda h: "keeps it for observation" in (h.waiting_for or ""), WAIT)
    (kept,) = net[C].engine.flows(tx_id=move.id)
    assert kept.status is FlowStatus.HOSPITALIZED and net.status(C, move.id) is None
    # Nothing recorded at C: C can only point at the initiator.
    with pytest.raises(FlowRecoveryException, match=f"not recorded here.*only its initiator {A}"):
        net[C].recovery.recover_finality_flow(kept.flow_id, force_recover=True)
    assert net[C].engine.flows(tx_id=move.id)[0].status is FlowStatus.HOSPITALIZED  # untouched
    # Not notarised: the initiator recovers, forcing its own flow (RUNNABLE) to stop first.
    assert net[A].recovery.recover_finality_flow_by_txn_id(move.id, force_recover=True, timeout=WAIT)
    assert_final_everywhere(net, move.id)
    statuses = {f.flow_name: f.status for f in net[C].engine.flows(tx_id=move.id)}
    assert statuses == {"ReceiveFinalityFlow": FlowStatus.KILLED}
    assert [f.status for f in net[A].engine.flows(tx_id=move.id, flow_name="FinalityFlow")] == [
        FlowStatus.KILLED
    ]
    assert net.amounts(C) == [5]
    spend_change(net, 95)


# -- issuances, restored stores, lost checkpoints --------------------------------------------------


def test_an_issuance_is_redistributed_to_the_observers_that_never_got_it(net: Net) -> None:
    fail_at(net, A, "FinalityFlow", "AFTER_RECORD")
    with pytest.raises(InjectedFaultError):
        issue(net, (A, 100), (B, 40), observers=(C,))
    no_faults(net)
    (failed,) = net[A].engine.flows(status=FlowStatus.FAILED)
    assert failed.tx_id is not None
    issued = failed.tx_id
    assert net.statuses(issued) == {A: TransactionStatus.VERIFIED, B: None, C: None}
    assert net[A].recovery.recover_all_finality_flows() == {failed.flow_id: True}
    assert net.statuses(issued) == dict.fromkeys(PARTIES, TransactionStatus.VERIFIED)
    assert net.amounts(B) == [40]
    assert net[C].node.store.vault.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT) == 2
    (record,) = net[C].node.store.distribution.receiver_records(issued)
    (sent,) = [r for r in net[A].node.store.distribution.sender_records(issued) if r.peer == C]
    assert (record.sender, record.timestamp, record.timestamp_discriminator) == (
        A,
        sent.timestamp,
        sent.timestamp_discriminator,
    )
    assert net[A].recovery.recover_all_finality_flows() == {}  # distributed now
    assert net[A].recovery.recover_finality_flow(failed.flow_id) is False


def test_the_initiator_recovers_a_receiver_restored_from_a_backup(net: Net, tmp_path: Path) -> None:
    issue(net)
    backup = tmp_path / "C-backup.db"
    db = net.stop(C)
    backup_sqlite(db, backup)  # C's store before the payment
    net.start(C)
    move = net[A].tokens.pay(C, 5, "GBP", A, observers=[B])
    assert net.statuses(move.id) == dict.fromkeys(PARTIES, TransactionStatus.VERIFIED)
    backup_sqlite(backup, net.stop(C))  # the disaster: C restored, the payment lost
    net.start(C)
    assert net.status(C, move.id) is None
    info = net[A].recovery.get_flow_transaction_by_txn_id(move.id)
    assert info is not None and info.status is TransactionStatus.VERIFIED and info.peers == {B, C}
    # A finalised it: it recovers its failed peers by transaction id.
    assert net[A].recovery.recover_finality_flow_by_txn_id(move.id, timeout=WAIT) is True
    assert_final_everywhere(net, move.id)
    assert net.amounts(C) == [5]
    received = net[C].recovery.get_flow_transaction_by_txn_id(move.id)
    assert received is not None and (received.initiator, received.peers) == (A, None)
    assert net[A].recovery.recover_finality_flow_by_txn_id(move.id, timeout=WAIT) is False


def test_an_in_flight_transaction_whose_checkpoint_is_gone_is_recovered_without_force(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    move = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move)
    no_faults(net)
    # C's checkpoint is gone (its flow removed behind the engine's back, as an older backup would).
    (receiving,) = net[C].engine.flows(tx_id=move.id)
    assert net[C].engine.kill(receiving.flow_id)
    checkpoints = net[C].node.store.schema.checkpoints
    checkpoints.delete().where(checkpoints.flow_id == receiving.flow_id).execute()
    info = net[C].recovery.get_flow_transaction_by_txn_id(move.id)
    assert info is not None and info.status is TransactionStatus.IN_FLIGHT and info.initiator == A
    assert info.peers is None and info.state_machine_run_id == receiving.flow_id
    key = net[C].node.store.transactions.get_stored(move.id).state_machine_run_id  # type: ignore[union-attr]
    assert net[C].recovery.recover_all_finality_flows() == {key: True}
    assert net.status(C, move.id) is TransactionStatus.VERIFIED
    assert net[A].recovery.recover_finality_flow_by_txn_id(move.id, timeout=WAIT) is True
    assert_final_everywhere(net, move.id, (A, C))


def test_a_recovery_cut_by_a_crash_resumes_when_the_node_restarts(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    move = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move, [B])
    net[A].engine.faults = FaultPlan(
        {("FinalityRecoveryFlow", "NOTARISED"): FaultAction.CRASH}, simulate_crash
    )
    with pytest.raises(FlowTimeoutError):
        net[A].recovery.recover_finality_flow_by_txn_id(move.id, timeout=2)
    (cut,) = net[A].engine.flows(flow_name="FinalityRecoveryFlow")
    assert (cut.status, cut.progress_step) == (FlowStatus.RUNNABLE, "NOTARISED")
    assert net.notarised(move.id) and net.status(A, move.id) is TransactionStatus.IN_FLIGHT
    net.stop(A)
    restarted = net.start(A)  # resumes the recovery from its checkpoint
    assert [r.flow_id for r in restarted.resumed] == [cut.flow_id]
    handle = restarted.engine.handle(cut.flow_id)
    assert handle is not None and handle.result(WAIT) is True
    assert_final_everywhere(net, move.id)


def test_a_receiver_without_inputs_to_check_asks_its_initiator(net: Net) -> None:
    notary = net[DEFAULT_NOTARY].node.identity
    builder = token.issue(net[A].node.identity, notary, [(net[C].node.identity, 3)], "GBP")
    builder.time_window = TimeWindow(None, datetime.now(UTC) + timedelta(hours=1))  # so it is notarised
    windowed = builder.sign([net[A].node.key])
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(windowed)
    no_faults(net)
    with pytest.raises(FlowRecoveryException, match="only its initiator"):
        net[C].recovery.recover_finality_flow_by_txn_id(windowed.id, True, timeout=WAIT)
    (check,) = net[C].engine.flows(tx_id=windowed.id, flow_name="FinalityRecoveryFlow")
    assert check.progress_step == "NOT_NOTARISED"
    assert net[A].recovery.recover_finality_flow_by_txn_id(windowed.id, timeout=WAIT) is True
    assert_final_everywhere(net, windowed.id, (A, C))


# -- bulk operations, queries, errors --------------------------------------------------------------


def test_recover_all_takes_failed_flows_and_force_takes_running_ones(net: Net) -> None:
    issue(net, (A, 100), (A, 50))
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    first = a_pays(net, C, 5, index=0)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(first)
    no_faults(net)
    notary = next(e for e in net.layout.nodes if e.name == DEFAULT_NOTARY)
    net.network.detach(notary.p2p_address)
    second = a_pays(net, B, 6, index=1)
    running = net[A].finality.start(second)
    assert running.wait_for(lambda h: (h.waiting_for or "").startswith(str(DEFAULT_NOTARY)), WAIT)
    net.network.attach(notary.p2p_address, net[DEFAULT_NOTARY].peer_service)
    # The running payment waits for its retry (the notary's time-out back-off): not a failed flow.
    assert net[A].recovery.recover_all_finality_flows(timeout=WAIT) == {failed_flow(net, A, first.id): True}
    assert net[A].recovery.recover_all_finality_flows(True, timeout=WAIT) == {running.flow_id: True}
    assert_final_everywhere(net, first.id, (A, C))
    assert_final_everywhere(net, second.id, (A, B))
    assert net[A].engine.checkpoints.get_checkpoint(running.flow_id).status is FlowStatus.KILLED  # type: ignore[union-attr]


def test_recovery_by_query_takes_only_the_flows_matching_every_criterion(net: Net) -> None:
    issue(net, (A, 100), (A, 50))
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    to_c, to_b = a_pays(net, C, 5, index=0), a_pays(net, B, 6, index=1)
    for move in (to_c, to_b):
        with pytest.raises(InjectedFaultError):
            net[A].finality.finalise(move)
    no_faults(net)
    recovery = net[A].recovery
    with pytest.raises(FlowRecoveryException, match="at least one criterion"):
        recovery.recover_finality_flows_matching(FlowRecoveryQuery())
    later = datetime.now(UTC) + timedelta(hours=1)
    assert recovery.recover_finality_flows_matching(FlowRecoveryQuery(FlowTimeWindow(from_time=later))) == {}
    assert recovery.recover_finality_flows_matching(FlowRecoveryQuery(initiated_by=[B, C])) == {}
    # C's side: A initiated it, and A is its counterparty.
    assert net[C].recovery.recover_finality_flows_matching(FlowRecoveryQuery(initiated_by=B)) == {}
    # By how long they have been IN_FLIGHT (seconds, here): none an hour old yet.
    assert recovery.recover_finality_flows_matching(FlowRecoveryQuery(min_age=timedelta(hours=1))) == {}
    assert recovery.recover_finality_flows_matching(FlowRecoveryQuery(max_age=timedelta(0))) == {}
    young = FlowRecoveryQuery(min_age=timedelta(0), max_age=timedelta(hours=1))
    assert {m.tx_id for m in recovery.matching(young)} == {to_c.id, to_b.id}
    with pytest.raises(FlowRecoveryException, match=r"minAge .* must not exceed its maxAge"):
        FlowRecoveryQuery(min_age=timedelta(hours=2), max_age=timedelta(hours=1))
    with pytest.raises(FlowRecoveryException, match="maxAge must not be negative"):
        FlowRecoveryQuery(max_age=timedelta(seconds=-1))
    by_b = recovery.recover_finality_flows_matching(
        FlowRecoveryQuery(initiated_by=A, counter_parties=[B]), timeout=WAIT
    )
    assert by_b == {failed_flow(net, A, to_b.id): True}
    assert net.status(A, to_c.id) is TransactionStatus.IN_FLIGHT
    window = FlowTimeWindow(datetime.now(UTC) - timedelta(hours=1), later)
    assert recovery.recover_finality_flows_matching(FlowRecoveryQuery(window), timeout=WAIT) == {
        failed_flow(net, A, to_c.id): True
    }
    assert_final_everywhere(net, to_c.id, (A, C))
    assert_final_everywhere(net, to_b.id, (A, B))


def test_recovery_by_transaction_ids_and_the_errors_it_names(net: Net) -> None:
    issue(net)
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    move = a_pays(net, C, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move)
    no_faults(net)
    unknown = SecureHash.of(b"no such transaction")
    with pytest.raises(FlowRecoveryException, match="no finality of transaction"):
        net[A].recovery.recover_finality_flow_by_txn_id(unknown)
    with pytest.raises(FlowRecoveryException, match="no flow with id nope"):
        net[A].recovery.recover_finality_flow("nope")
    assert net[A].recovery.get_flow_transaction("nope") is None
    assert net[A].recovery.get_flow_transaction_by_txn_id(unknown) is None
    assert net[A].recovery.recover_finality_flow_by_txn_ids([move.id, unknown], timeout=WAIT) == {
        move.id: True,
        unknown: False,
    }
    assert_final_everywhere(net, move.id, (A, C))

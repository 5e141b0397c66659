"""Two-phase finality among real node runtimes on the in-process network (same protocol path as HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.errors import AgentError, NotaryConflictError, PeerRequestError, TransactionAccessDeniedError
from agent.finality.flows import TOPIC_BACKCHAIN
from agent.flows.checkpoints import FlowStatus
from agent.flows.faults import FaultPlan, InjectedFaultError
from agent.ledger import token
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import RelevancyStatus, StatesToRecord, TransactionStatus
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.recovery.distribution_list import DistributionListError, decrypt
from agent.runtime import AgentRuntime, build_runtime
from tests.inprocess_net import start_runtimes

A, B, C = default_node_names(3)


@dataclass
class Net:
    runtimes: dict[X500Name, AgentRuntime]

    def __getitem__(self, name: X500Name) -> AgentRuntime:
        return self.runtimes[name]

    def status(self, name: X500Name, tx_id: object) -> TransactionStatus | None:
        return self.runtimes[name].node.store.transactions.transaction_status(tx_id)  # type: ignore[arg-type]


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    network = InProcessNetwork()
    runtimes = start_runtimes(layout, network)
    yield Net(runtimes)
    for runtime in runtimes.values():
        runtime.stop(5)


def issue(net: Net, observers: tuple[X500Name, ...] = ()) -> object:
    return net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers)


def test_issuance_goes_straight_to_verified_with_records_for_observers(net: Net) -> None:
    stx = issue(net, observers=(C,))
    for name in (A, B, C):
        assert net.status(name, stx.id) is TransactionStatus.VERIFIED
    assert net[C].node.store.vault.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT) == 2
    assert net[C].node.store.vault.count_vault_states(relevancy=RelevancyStatus.RELEVANT) == 0
    assert [v.state.data["amount"] for v in net[B].node.store.vault.iter_vault_states()] == [40]

    senders = net[A].node.store.distribution.sender_records(stx.id)
    assert {(r.peer, r.receiver_states_to_record) for r in senders} == {
        (B, StatesToRecord.ONLY_RELEVANT),
        (C, StatesToRecord.ALL_VISIBLE),
    }
    key = {(r.timestamp, r.timestamp_discriminator) for r in senders}
    assert len(key) == 1 and next(iter(key))[0].microsecond == 0  # truncated to the second, shared
    for receiver in (B, C):
        (record,) = net[receiver].node.store.distribution.receiver_records(stx.id)
        assert record.sender == A
        assert {(record.timestamp, record.timestamp_discriminator)} == key
        listed, _ = decrypt(record.distribution_list, net[A].aes_keys.keys())
        assert listed.peers == {
            B.peer_id: StatesToRecord.ONLY_RELEVANT,
            C.peer_id: StatesToRecord.ALL_VISIBLE,
        }


def test_a_payment_is_notarised_and_final_everywhere(net: Net) -> None:
    issue(net)
    stx = net[A].tokens.pay(C, 30, "GBP", A, observers=[B])
    for name in (A, B, C):
        assert net.status(name, stx.id) is TransactionStatus.VERIFIED
    final = net[C].node.store.transactions.get_transaction(stx.id)
    notary_key = net[DEFAULT_NOTARY].node.identity.owning_key
    assert notary_key in final.signers()
    assert [v.state.data["amount"] for v in net[C].node.store.vault.iter_vault_states()] == [30]
    flows = {cp.flow_name: cp for cp in net[A].node.store.checkpoints.iter_checkpoints(tx_id=stx.id)}
    assert flows["FinalityFlow"].status is FlowStatus.COMPLETED
    assert flows["FinalityFlow"].progress_step == "FINALISED"
    (received,) = net[C].node.store.checkpoints.iter_checkpoints(tx_id=stx.id)
    assert (received.flow_name, received.status, received.progress_step) == (
        "ReceiveFinalityFlow",
        FlowStatus.COMPLETED,
        "FINALISED",
    )


def test_a_receiver_resolves_the_back_chain_from_the_sender(net: Net) -> None:
    issue(net)
    first = net[A].tokens.pay(B, 60, "GBP", A)  # C has seen none of this
    second = net[B].tokens.pay(C, 70, "GBP", A)
    assert net.status(C, second.id) is TransactionStatus.VERIFIED
    assert net.status(C, first.id) is TransactionStatus.VERIFIED  # fetched from B as back-chain


def test_a_double_spend_leaves_no_in_flight_anywhere(net: Net) -> None:
    issued = issue(net)
    builder = token.move(
        [issued.tx.out_ref(0)],
        [(net[B].node.identity, 10)],
        net[A].node.identity,
        net[DEFAULT_NOTARY].node.identity,
    )
    first = net[A].finality.finalise(builder.sign([net[A].node.key]))
    again = token.move(
        [issued.tx.out_ref(0)],
        [(net[C].node.identity, 20)],
        net[A].node.identity,
        net[DEFAULT_NOTARY].node.identity,
    )
    second = again.sign([net[A].node.key])
    with pytest.raises(NotaryConflictError) as err:
        net[A].finality.finalise(second)
    assert str(first.id) in str(err.value)
    for name in (A, B, C):
        assert net.status(name, second.id) is None
    assert net[A].node.store.distribution.sender_records(second.id) == []
    (failed,) = net[A].node.store.checkpoints.iter_checkpoints(FlowStatus.FAILED)
    assert failed.progress_step == "ABORTED" and "NotaryConflictError" in (failed.error or "")
    (aborted,) = net[C].node.store.checkpoints.iter_checkpoints(FlowStatus.FAILED)
    assert aborted.flow_name == "ReceiveFinalityFlow"


# Where each fault leaves the transaction: (initiator A, participant C), as the reference describes.
@pytest.mark.parametrize(
    ("step", "at_a", "at_c"),
    [
        ("VERIFIED", None, None),
        ("AFTER_RECORD", TransactionStatus.IN_FLIGHT, None),
        ("AFTER_BROADCAST", TransactionStatus.IN_FLIGHT, TransactionStatus.IN_FLIGHT),
        ("AFTER_NOTARISE", TransactionStatus.IN_FLIGHT, TransactionStatus.IN_FLIGHT),
        ("BEFORE_SEND_SIGNATURE", TransactionStatus.IN_FLIGHT, TransactionStatus.IN_FLIGHT),
        ("AFTER_SEND_SIGNATURE", TransactionStatus.IN_FLIGHT, TransactionStatus.VERIFIED),
        ("FINALISED", TransactionStatus.VERIFIED, TransactionStatus.VERIFIED),
    ],
)
def test_a_failure_at_each_initiator_step_leaves_what_the_reference_says(
    net: Net, step: str, at_a: TransactionStatus | None, at_c: TransactionStatus | None
) -> None:
    issue(net)
    net[A].engine.faults = FaultPlan.parse([f"FinalityFlow.{step}=fail"])
    move = a_pays_c(net, 5)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move)
    assert (net.status(A, move.id), net.status(C, move.id)) == (at_a, at_c)
    expected_sender_records = 0 if at_a is None else 1
    assert len(net[A].node.store.distribution.sender_records(move.id)) == expected_sender_records
    assert len(net[C].node.store.distribution.receiver_records(move.id)) == (0 if at_c is None else 1)
    (failed,) = net[A].node.store.checkpoints.iter_checkpoints(FlowStatus.FAILED)
    assert failed.progress_step == step and failed.tx_id == move.id


def test_a_receiver_failing_after_recording_is_kept_for_observation_and_finishes_on_retry(net: Net) -> None:
    # Corda's FinalityDoctor: an error inside ReceiveFinalityFlow keeps it HOSPITALIZED, so the
    # transaction is not lost. The initiator had its acknowledgement and finishes; the notary's
    # signatures, which no running flow takes, finalise C's copy in the handler (as after a restart);
    # a retry ends the kept flow.
    issue(net)
    net[C].engine.faults = FaultPlan.parse(["ReceiveFinalityFlow.RECORDED=fail"])
    move = a_pays_c(net, 5)
    net[A].finality.finalise(move)
    assert net.status(A, move.id) is TransactionStatus.VERIFIED
    assert net.status(C, move.id) is TransactionStatus.VERIFIED
    (held,) = net[C].engine.flows(status=FlowStatus.HOSPITALIZED)
    assert held.flow_name == "ReceiveFinalityFlow" and "InjectedFaultError" in (held.error or "")
    (patient,) = net[C].hospital.patients()
    assert (patient.staff, patient.diagnosis) == ("FinalityDoctor", "OVERNIGHT_OBSERVATION")
    net[C].engine.faults = FaultPlan()
    handle = net[C].engine.handle(held.flow_id)  # a kept flow stays with the engine
    assert handle is not None
    assert net[C].engine.retry(held.flow_id)
    assert handle.wait_for(lambda h: h.done, 30)
    assert net.status(C, move.id) is TransactionStatus.VERIFIED
    assert net[C].hospital.patients() == []


@pytest.mark.parametrize("step", ["BEFORE_FINALISE", "FINALISED"])
def test_a_receiver_kept_for_observation_while_finalising_does_not_hold_up_its_sender(
    net: Net, step: str
) -> None:
    # The signatures' handler waits for the flow it woke to end or to be kept: kept, it finalises the
    # copy itself (as when no flow holds it) and answers at once, instead of ReceiverBusyError after 25 s.
    import time

    issue(net)
    net[C].engine.faults = FaultPlan.parse([f"ReceiveFinalityFlow.{step}=fail"])
    move = a_pays_c(net, 5)
    started = time.monotonic()
    net[A].finality.finalise(move, timeout=60)
    assert time.monotonic() - started < 20
    assert (net.status(A, move.id), net.status(C, move.id)) == (TransactionStatus.VERIFIED,) * 2
    (held,) = net[C].engine.flows(status=FlowStatus.HOSPITALIZED)
    assert held.progress_step == step


def test_the_sender_shows_only_the_back_chain_of_what_it_sent(net: Net) -> None:
    issued = issue(net)
    unrelated = net[A].tokens.issue([(A, 7)], "CHF")
    paid = net[A].tokens.pay(C, 5, "GBP", A)
    client = net[C].peers
    reply = client.request(A, TOPIC_BACKCHAIN, {"tx_id": str(paid.id), "ids": [str(issued.id)]})
    assert len(reply["txs"]) == 1
    # The refusal arrives by name: the requester reads which transaction and why.
    with pytest.raises(PeerRequestError, match=r"TransactionAccessDeniedError.*not in the back-chain") as err:
        client.request(A, TOPIC_BACKCHAIN, {"tx_id": str(paid.id), "ids": [str(unrelated.id)]})
    assert err.value.error_type == TransactionAccessDeniedError.__name__
    assert str(unrelated.id) in str(err.value)
    with pytest.raises(PeerRequestError, match="did not send it"):
        net[B].peers.request(A, TOPIC_BACKCHAIN, {"tx_id": str(paid.id), "ids": [str(issued.id)]})


def test_a_tampered_distribution_list_fails_at_the_sender(net: Net) -> None:
    stx = issue(net, observers=(C,))
    (record,) = net[C].node.store.distribution.receiver_records(stx.id)
    keys = net[A].aes_keys.keys()
    for position in (22, len(record.distribution_list) - 3):  # the header, then the ciphertext
        tampered = bytearray(record.distribution_list)
        tampered[position] ^= 0x40
        with pytest.raises(DistributionListError, match="tampered"):
            decrypt(bytes(tampered), keys)


def a_pays_c(net: Net, amount: int) -> SignedTransaction:
    """A payment from A to C, signed by A but not yet finalised."""
    notary = net[DEFAULT_NOTARY].node.identity
    state = _states(net, A)[0]
    return token.move([state], [(net[C].node.identity, amount)], net[A].node.identity, notary).sign(
        [net[A].node.key]
    )


def _states(net: Net, name: X500Name) -> list[object]:
    from agent.ledger.transactions import StateAndRef

    notary = net[DEFAULT_NOTARY].node.identity
    return [StateAndRef(v.state, v.ref, notary) for v in net[name].node.store.vault.iter_vault_states()]


def test_a_repeated_delivery_is_acknowledged_without_a_second_flow(net: Net) -> None:
    from agent.finality.flows import TOPIC_TRANSACTION

    issue(net)
    move = a_pays_c(net, 5)
    net[A].engine.faults = FaultPlan.parse(["FinalityFlow.AFTER_BROADCAST=fail"])
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(move)
    (sealed,) = net[C].node.store.distribution.receiver_records(move.id)
    payload = {"tx": move.serialize(), "distribution": sealed.distribution_list, "states_to_record": 2}
    first = net[C].node.store.checkpoints.iter_checkpoints(tx_id=move.id)
    again = net[A].peers.request(C, TOPIC_TRANSACTION, payload)
    assert again["flow_id"] == next(first).flow_id
    assert len(list(net[C].node.store.checkpoints.iter_checkpoints(tx_id=move.id))) == 1


def test_a_receiver_that_hears_nothing_asks_its_initiator_for_the_outcome(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime, timedelta

    from agent.clock import ManualClock
    from agent.finality.flows import OUTCOME_IN_FLIGHT, TOPIC_OUTCOME

    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    network = InProcessNetwork()
    clocks, runtimes = {}, {}
    # One start for every clock: a receiver refuses what was stamped before it started, and these
    # clocks move only when the test moves them (a sender's clock behind would stay behind).
    start = datetime.now(UTC)
    for entry in layout.nodes:
        clocks[entry.name] = ManualClock(start)
        runtime = build_runtime(
            open_node(entry.config, clock=clocks[entry.name]), InProcessTransport(network)
        )
        network.attach(entry.p2p_address, runtime.peer_service)
        runtimes[entry.name] = runtime
    net = Net(runtimes)
    try:
        issue(net)
        move = a_pays_c(net, 5)
        net[A].engine.faults = FaultPlan.parse(["FinalityFlow.AFTER_BROADCAST=fail"])
        with pytest.raises(InjectedFaultError):
            net[A].finality.finalise(move)
        (receiving,) = net[C].node.store.checkpoints.iter_checkpoints(tx_id=move.id)
        assert net[C].engine.waiting_for(receiving.flow_id) == f"the notary's signature from {A}"
        # B was not sent the transaction: it may not ask how it ended.
        with pytest.raises(PeerRequestError, match="TransactionAccessDeniedError") as held:
            net[B].peers.request(A, TOPIC_OUTCOME, {"tx_id": str(move.id)})
        # Nor learn, from the answer, whether A holds it: an id A never saw is refused alike.
        absent = "CD" * 32
        with pytest.raises(PeerRequestError, match="TransactionAccessDeniedError") as unheld:
            net[B].peers.request(A, TOPIC_OUTCOME, {"tx_id": absent})
        assert str(held.value).replace(str(move.id), "X") == str(unheld.value).replace(absent, "X")
        assert net[C].peers.request(A, TOPIC_OUTCOME, {"tx_id": str(move.id)})["status"] == OUTCOME_IN_FLIGHT
        handle = net[C].engine.handle(receiving.flow_id)
        assert handle is not None and net.status(C, move.id) is TransactionStatus.IN_FLIGHT
        # A finishes by other means (as finality recovery will): C's next question gets the signature.
        from agent.finality.flows import TOPIC_NOTARISE
        from agent.ledger.transactions import decode_signatures

        reply = net[A].peers.request(DEFAULT_NOTARY, TOPIC_NOTARISE, {"tx": move.serialize()})
        net[A].node.ledger.record(move.with_signatures(*decode_signatures(reply["signatures"])))
        for clock in clocks.values():  # past C's deadline (every clock: messages carry timestamps)
            clock.advance(timedelta(seconds=61))
        net[C].engine.fire_due()  # or the engine's timer, whichever looks first
        assert handle.result(10).id == move.id
        assert net.status(C, move.id) is TransactionStatus.VERIFIED
        assert [v.state.data["amount"] for v in net[C].node.store.vault.iter_vault_states()] == [5]
    finally:
        for runtime in runtimes.values():
            runtime.stop(5)


def test_killing_an_initiator_ends_its_receivers_side_and_keeps_the_transaction_in_flight(
    tmp_path: Path,
) -> None:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    network = InProcessNetwork()
    runtimes = start_runtimes(layout, network)
    net = Net(runtimes)
    try:
        issue(net)
        notary_address = next(e.p2p_address for e in layout.nodes if e.name == DEFAULT_NOTARY)
        network.detach(notary_address)  # the notary is down: A's flow waits for it, RUNNABLE
        move = a_pays_c(net, 5)
        handle = net[A].finality.start(move)
        assert handle.wait_for(lambda h: (h.waiting_for or "").startswith(str(DEFAULT_NOTARY)), 30)
        assert net[A].engine.kill(handle.flow_id)
        with pytest.raises(AgentError, match="killed"):
            handle.result(10)
        (received,) = net[C].node.store.checkpoints.iter_checkpoints(tx_id=move.id)
        assert received.status is FlowStatus.FAILED and "killed its FinalityFlow" in (received.error or "")
        # Nothing withdrawn: whether the notary signed is for finality recovery to find out.
        assert net.status(A, move.id) is TransactionStatus.IN_FLIGHT
        assert net.status(C, move.id) is TransactionStatus.IN_FLIGHT
        killed = net[A].node.store.checkpoints.get_checkpoint(handle.flow_id)
        assert killed is not None and killed.status is FlowStatus.KILLED
    finally:
        for runtime in runtimes.values():
            runtime.stop(5)


def test_a_co_receiver_cannot_withdraw_a_transaction_the_initiator_sent(tmp_path: Path) -> None:
    """Issue 16, item 2. C, an observer of A's payment, passes the IN_FLIGHT transaction on to B (any
    member may send a transaction it holds: B then keeps a receiver record from C too) and sends
    finality.abort. B used to accept it: the transaction and its records went, and A's finality to B
    failed with C's text. Only the initiator of a transaction's finality may withdraw it."""
    from agent.finality.flows import TOPIC_ABORT, TOPIC_TRANSACTION

    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    network = InProcessNetwork()
    runtimes = start_runtimes(layout, network)
    net = Net(runtimes)
    try:
        net[A].tokens.issue([(A, 100)], "GBP", ())
        notary_address = next(e.p2p_address for e in layout.nodes if e.name == DEFAULT_NOTARY)
        network.detach(notary_address)  # A's flow waits for the notary: B and C hold it IN_FLIGHT
        move = token.move(
            [_states(net, A)[0]],
            [(net[B].node.identity, 5)],
            net[A].node.identity,
            net[DEFAULT_NOTARY].node.identity,
        ).sign([net[A].node.key])
        handle = net[A].finality.start(move, observers=[C])
        assert handle.wait_for(lambda h: (h.waiting_for or "").startswith(str(DEFAULT_NOTARY)), 30)
        assert net.status(B, move.id) is net.status(C, move.id) is TransactionStatus.IN_FLIGHT

        (held,) = net[C].node.store.distribution.receiver_records(move.id)
        passed_on = {
            "tx": move.serialize(),
            "distribution": held.distribution_list,
            "states_to_record": int(StatesToRecord.ALL_VISIBLE),
        }
        assert net[C].peers.request(B, TOPIC_TRANSACTION, passed_on)["ack"] is True
        assert {r.sender for r in net[B].node.store.distribution.receiver_records(move.id)} == {A, C}
        with pytest.raises(PeerRequestError, match="only the initiator of its finality may withdraw it"):
            net[C].peers.request(B, TOPIC_ABORT, {"tx_id": str(move.id), "reason": "chosen by C"})
        assert net.status(B, move.id) is TransactionStatus.IN_FLIGHT

        network.attach(notary_address, net[DEFAULT_NOTARY].peer_service)
        waiting = net[A].engine.waiting_for(handle.flow_id)  # as when the notary says it is back
        assert waiting is not None and net[A].engine.wake_waiting(waiting) == 1
        assert handle.result(60).id == move.id
        assert net.status(B, move.id) is TransactionStatus.VERIFIED
        assert [v.state.data["amount"] for v in net[B].node.store.vault.iter_vault_states()] == [5]
    finally:
        for runtime in runtimes.values():
            runtime.stop(5)

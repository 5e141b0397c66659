"""The dry run of finality recovery: what it would do, per side and notarisation, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from agent.errors import FlowRecoveryException
from agent.finality.dry_run import Action, Side
from agent.finality.notarisation_check import Notarisation
from agent.finality.queries import INITIATOR, PEER, FlowRecoveryQuery
from agent.flows.faults import InjectedFaultError
from agent.ledger.vault import TransactionStatus
from agent.management.recovery_commands import recovery_commands
from agent.network.bootstrap import DEFAULT_NOTARY
from tests.finality.test_recovery import (
    PARTIES,
    WAIT,
    A,
    B,
    C,
    Net,
    a_pays,
    fail_at,
    failed_flow,
    issue,
    no_faults,
)
from tests.finality.test_recovery import net as net  # noqa: PLC0414  (the fixture)


def snapshot(net: Net) -> dict[Any, Any]:
    """Every party's transactions and statuses, checkpoints and vault (consumed states too)."""
    found: dict[Any, Any] = {}
    for name in PARTIES:
        store = net[name].node.store
        found[name] = (
            sorted(
                (str(s.stx.id), s.status.name, s.timestamp) for s in store.transactions.iter_transactions()
            ),
            sorted(
                (c.flow_id, c.status.name, c.progress_step)
                for c in net[name].engine.checkpoints.iter_checkpoints()
            ),
            sorted(
                (str(v.ref), v.state_status.name)
                for v in store.vault.iter_vault_states(state_status=None, relevancy=None)
            ),
        )
    return found


def test_the_dry_run_classifies_each_side_and_changes_nothing(net: Net) -> None:
    issue(net, (A, 100), (A, 50), (A, 20))
    # notarised: A failed after the notary signed; C holds it IN_FLIGHT.
    fail_at(net, A, "FinalityFlow", "AFTER_NOTARISE")
    notarised = a_pays(net, C, 5, index=0)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(notarised, [B])
    # not notarised: A failed after sending it to C.
    fail_at(net, A, "FinalityFlow", "AFTER_BROADCAST")
    not_notarised = a_pays(net, C, 6, index=1)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(not_notarised)
    # a conflict: the same input spent elsewhere meanwhile.
    conflicted = a_pays(net, C, 7, index=2)
    with pytest.raises(InjectedFaultError):
        net[A].finality.finalise(conflicted)
    no_faults(net)
    other = net[A].finality.finalise(a_pays(net, B, 8, index=2))
    assert net.status(B, other.id) is TransactionStatus.VERIFIED
    notary_before = net[DEFAULT_NOTARY].node.notary.uniqueness.is_committed(not_notarised.id)  # type: ignore[union-attr]

    before = snapshot(net)
    at_a = {p.tx_id: p for p in net[A].recovery.dry_run()}
    at_c = {p.tx_id: p for p in net[C].recovery.dry_run()}
    assert snapshot(net) == before
    assert net[DEFAULT_NOTARY].node.notary.uniqueness.is_committed(not_notarised.id) is notary_before  # type: ignore[union-attr]

    def what(plan: Any) -> tuple[Any, ...]:
        return plan.role, plan.notarisation, plan.side, plan.action

    assert {t: what(p) for t, p in at_a.items()} == {
        notarised.id: (INITIATOR, Notarisation.NOTARISED, Side.INITIATOR_HERE, Action.FINALISE),
        not_notarised.id: (INITIATOR, Notarisation.NOT_NOTARISED, Side.INITIATOR_HERE, Action.FINALISE),
        conflicted.id: (INITIATOR, Notarisation.CONSUMED_ELSEWHERE, Side.INITIATOR_HERE, Action.UNDO),
    }
    assert {t: what(p) for t, p in at_c.items()} == {
        notarised.id: (PEER, Notarisation.NOTARISED, Side.PEER_HERE, Action.FINALISE),
        not_notarised.id: (PEER, Notarisation.NOT_NOTARISED, Side.INITIATOR_ELSEWHERE, Action.NOTHING),
        conflicted.id: (PEER, Notarisation.CONSUMED_ELSEWHERE, Side.PEER_HERE, Action.UNDO),
    }
    plan = at_a[notarised.id]
    assert plan.key == failed_flow(net, A, notarised.id) and plan.status is TransactionStatus.IN_FLIGHT
    assert plan.age is not None and plan.running == ()
    assert str(A) in at_c[not_notarised.id].reason

    # Selections: by flow id, by transaction id, by query; without asking the notary.
    (by_id,) = net[A].recovery.dry_run(ids=[failed_flow(net, A, conflicted.id)])
    assert by_id.tx_id == conflicted.id
    (by_tx,) = net[C].recovery.dry_run(tx_ids=[notarised.id], check_notary=False)
    assert (by_tx.notarisation, by_tx.side, by_tx.action) == (
        Notarisation.UNKNOWN,
        Side.INITIATOR_ELSEWHERE,
        Action.NOTHING,
    )
    (by_query,) = net[A].recovery.dry_run(query=FlowRecoveryQuery(counter_parties=[B]))
    assert what(by_query) == what(at_a[notarised.id]) and by_query.tx_id == notarised.id
    # C's receiving flows still wait for A: running, so left out on request.
    assert all(p.running for p in at_c.values())
    assert net[C].recovery.dry_run(running=False) == []
    with pytest.raises(FlowRecoveryException, match="no finality flow with id nope"):
        net[A].recovery.dry_run(ids=["nope"])
    assert snapshot(net) == before

    # The catalogue's recoverFinalityDryRun (every surface's): the same, as JSON.
    dry_run = recovery_commands(net[A].recovery)["recoverFinalityDryRun"]
    listed = dry_run(None, [conflicted.id], None, None, None, None, False, True)
    assert listed == [
        {
            "txId": str(conflicted.id),
            "flowId": failed_flow(net, A, conflicted.id),
            "status": "IN_FLIGHT",
            "role": INITIATOR,
            "notarisation": "CONSUMED_ELSEWHERE",
            "side": "INITIATOR_HERE",
            "action": "UNDO",
            "reason": at_a[conflicted.id].reason,
            "running": [],
        }
    ]
    assert len(dry_run(None, None, None, None, None, None, False, True)) == 3
    assert snapshot(net) == before

    # What it said is what recovery does.
    results = net[A].recovery.recover_finality_flow_by_txn_ids(list(at_a), timeout=WAIT)
    assert results == dict.fromkeys(at_a, True)
    assert net.status(A, notarised.id) is TransactionStatus.VERIFIED
    assert net.status(A, not_notarised.id) is TransactionStatus.VERIFIED
    assert net.status(A, conflicted.id) is None

"""GET /ready: not ready while the ledger is not self-consistent or a Ledger Recovery runs; /health
stays UP throughout (liveness is not readiness)."""

from __future__ import annotations

from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.management.app import create_management_app
from tests.ledgersync.conftest import A, B, Net, net

__all__ = ["net"]  # the fixture, from the LedgerSync tests


def test_ready_until_the_ledger_fails_its_self_consistency_check(net: Net) -> None:
    client = create_management_app(net[A]).test_client()
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json == {"status": "READY", "node": str(A), "reasons": []}

    issued = net[A].tokens.issue([(A, 100)], "GBP")
    net[A].tokens.pay(B, 10, "GBP", A)
    # The issuance's row lost from the store (a bad restore, a hand-made delete): its child's input
    # now refers to nothing, which the check finds when the agent starts again.
    rows = net[A].node.store.schema.node_transactions
    rows.delete().where(rows.tx_id == str(issued.id)).execute()
    net.restart(A)
    sync = net[A].ledgersync
    assert sync is not None and sync.ready.wait(30), "the ledger graph was never built"
    client = create_management_app(net[A]).test_client()

    answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.json["status"] == "NOT_READY"
    (reason,) = answer.json["reasons"]
    assert "not self-consistent (2 error(s)" in reason
    assert client.get("/health").json["status"] == "UP"  # alive all the same


def test_not_ready_while_a_ledger_recovery_runs(net: Net) -> None:
    client = create_management_app(net[A]).test_client()
    assert client.get("/ready").status_code == 200
    now = net[A].node.clock.now()
    # A LedgerRecoveryFlow's checkpoint, RUNNABLE as the engine leaves it between steps.
    net[A].node.store.checkpoints.save_checkpoint(
        FlowCheckpoint("r-1", "LedgerRecoveryFlow", FlowStatus.RUNNABLE, now, now)
    )
    answer = client.get("/ready")
    assert answer.status_code == 503
    assert answer.json["reasons"] == ["1 LedgerRecoveryFlow(s) running: the ledger is being recovered"]

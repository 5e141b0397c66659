"""The IN_FLIGHT ages monitoring reads: oldest, and counts by age bucket, on the store's clock."""

from __future__ import annotations

from datetime import timedelta

from agent.clock import ManualClock
from agent.finality.ages import InFlightAges
from agent.ledger.vault import TransactionStatus
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor
from tests.ports.conftest import NOW, issue, pay


def test_ages_by_bucket_and_the_oldest(
    tmp_path: object, alice: Actor, bob: Actor, notary_actor: Actor
) -> None:
    clock = ManualClock(NOW - timedelta(days=2))
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db", our_keys=[alice.party.owning_key], clock=clock)
    try:
        assert InFlightAges.read(store.transactions, NOW) == InFlightAges(
            0, 0.0, {"1m": 0, "10m": 0, "1h": 0, "1d": 0, "+Inf": 0}
        )
        first = issue(alice, notary_actor, 1, 1, 1, 1)
        store.transactions.record_transaction(first)
        for index, age in enumerate((timedelta(days=2), timedelta(minutes=30), timedelta(seconds=5))):
            clock.advance(NOW - age - clock.now())  # recorded that long before NOW
            store.transactions.record_transaction(
                pay(first, index, alice, bob, 1, notary_actor), status=TransactionStatus.IN_FLIGHT
            )
        ages = InFlightAges.read(store.transactions, NOW)
        assert ages == InFlightAges(3, 2 * 86400.0, {"1m": 1, "10m": 1, "1h": 2, "1d": 2, "+Inf": 3})
    finally:
        store.close()

"""The ports' contract suites: each test gets the peewee adapter on SQLite and on PostgreSQL.

A new adapter passes when these pass against it: give the fixtures below its repositories.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agent.clock import ManualClock
from agent.ledger import token
from agent.ledger.transactions import SignedTransaction
from agent.store.ledger_store import LedgerStore
from tests.conftest import Actor

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def store(database_url: str, alice: Actor, clock: ManualClock) -> Iterator[LedgerStore]:
    s = LedgerStore(database_url, our_keys=[alice.party.owning_key], clock=clock)
    yield s
    s.close()


def issue(owner: Actor, notary: Actor, *amounts: int, currency: str = "GBP") -> SignedTransaction:
    """An issuance by owner to itself: VERIFIED as it stands (no inputs, no notary signature needed)."""
    return token.issue(owner.party, notary.party, [(owner.party, a) for a in amounts], currency).sign(
        [owner.key]
    )


def pay(
    spent: SignedTransaction, index: int, owner: Actor, to: Actor, amount: int, notary: Actor
) -> SignedTransaction:
    """A move of output index of spent, without the notary's signature (IN_FLIGHT material)."""
    return token.move([spent.tx.out_ref(index)], [(to.party, amount)], owner.party, notary.party).sign(
        [owner.key]
    )

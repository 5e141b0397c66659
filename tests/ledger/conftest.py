"""Fixtures for the ledger core's tests: fixed keys, a few parties, and an in-memory resolver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from agent.ledger.contracts import ContractRegistry, LedgerTransaction
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.shipped import default_contracts
from agent.ledger.token import issue
from agent.ledger.transactions import SignedTransaction, WireTransaction
from agent.ledger.verification import verify


@dataclass(frozen=True)
class Member:
    """A party with its key pair: something that can sign."""

    keys: KeyPair
    party: Party


def member(seed: int, name: str) -> Member:
    # Seeded keys keep failures reproducible; from_seed is meant for fixtures.
    keys = KeyPair.from_seed(bytes([seed]) * 32)
    return Member(keys, Party(X500Name.parse(name), keys.public))


@dataclass(frozen=True)
class Cast:
    bank: Member
    other_bank: Member
    alice: Member
    bob: Member
    notary: Member
    other_notary: Member


CAST = Cast(
    bank=member(1, "O=Bank of London, L=London, C=GB"),
    other_bank=member(2, "O=Bank of Paris, L=Paris, C=FR"),
    alice=member(3, "O=Alice Ltd, L=Leeds, C=GB"),
    bob=member(4, "O=Bob Corp, L=New York, C=US"),
    notary=member(5, "O=Notary Service, L=Zurich, C=CH"),
    other_notary=member(6, "O=Other Notary, L=Oslo, C=NO"),
)


class InMemoryResolver:
    """The resolver port over a dict of transactions this test has already verified."""

    def __init__(self) -> None:
        self.verified: dict[SecureHash, WireTransaction] = {}

    def add(self, *txs: SignedTransaction | WireTransaction) -> None:
        for tx in txs:
            wire = tx.tx if isinstance(tx, SignedTransaction) else tx
            self.verified[wire.id] = wire

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        return self.verified.get(txhash)


@dataclass
class Ledger:
    """One node's view for a test: verified transactions and the contracts it knows."""

    cast: Cast = CAST
    resolver: InMemoryResolver = field(default_factory=InMemoryResolver)
    contracts: ContractRegistry = field(default_factory=default_contracts)

    def verify(self, stx: SignedTransaction, **options: Any) -> LedgerTransaction:
        return verify(stx, self.resolver, self.contracts, **options)

    def record(self, stx: SignedTransaction) -> SignedTransaction:
        """Verify in full, then keep it for the back-chain of later transactions."""
        self.verify(stx)
        self.resolver.add(stx)
        return stx

    def issue(
        self,
        owner: Member,
        amount: int,
        *,
        currency: str = "GBP",
        issuer: Member | None = None,
        notary: Member | None = None,
    ) -> SignedTransaction:
        """A verified, recorded issuance of one token."""
        by = issuer or self.cast.bank
        builder = issue(by.party, (notary or self.cast.notary).party, [(owner.party, amount)], currency)
        return self.record(builder.sign([by.keys]))


@pytest.fixture(scope="session")
def cast() -> Cast:
    return CAST


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()

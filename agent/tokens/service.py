"""Token operations a node's operator starts: issue, pay, exit; each ends in two-phase finality."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.errors import AgentError, InvalidArgumentError
from agent.finality.service import FinalityService
from agent.ledger import token
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.transactions import SignedTransaction, StateAndRef
from agent.network.network_map import NetworkMap
from agent.operator_api.amounts import AMOUNT_RANGE, CURRENCY_FORM, is_amount, is_currency
from agent.ports.transactions import TransactionReader
from agent.ports.vault import VaultStore

# FinalityFlow's step that records the transaction (and so soft-locks its inputs), or one past it.
RECORDED_STEPS = ("AFTER_RECORD",)


class InsufficientFundsError(AgentError):
    """The vault does not hold enough of that token to pay or exit."""


@dataclass(frozen=True)
class Holding:
    currency: str
    issuer: X500Name
    amount: int
    states: int


class TokenService:
    def __init__(
        self,
        identity: Party,
        key: KeyPair,
        vault: VaultStore,
        transactions: TransactionReader,
        finality: FinalityService,
        network_map: NetworkMap,
        hold: Callable[[], None] = lambda: None,
    ) -> None:
        self.identity = identity
        self.hold = hold  # raises while new flows are held (Ledger Recovery under way)
        self.key = key
        self.vault = vault
        self.transactions = transactions  # for the inputs of our IN_FLIGHT transactions
        self.finality = finality
        self.network_map = network_map
        # Coin selection and the spend that follows are one step: two payments never pick one state.
        self._spending = threading.Lock()

    def _party(self, name: X500Name, field: str) -> Party:
        """A node of the map that may hold or see tokens: IdentityError for a stranger (404), and the
        notary refused by field, since it keeps no vault (it notarises, it holds nothing)."""
        info = self.network_map.node(name)
        if info.is_notary:
            raise InvalidArgumentError(
                field,
                str(name),
                "it is the notary, which keeps no vault: tokens go to, and are seen by, the network's "
                "nodes; allowed: a node of the network map that is not a notary",
            )
        return info.party

    def _notary(self) -> Party:
        notaries = self.network_map.notaries
        if not notaries:
            raise AgentError("the network map has no notary")
        return notaries[0].party

    def issue(
        self,
        holdings: Sequence[tuple[X500Name, int]],
        currency: str,
        observers: Sequence[X500Name] = (),
        *,
        timeout: float | None = None,
    ) -> SignedTransaction:
        self.hold()
        _check_currency(currency)
        for i, (_, amount) in enumerate(holdings):
            _check_amount(f"holdings[{i}].amount", amount)
        owners = [
            (self._party(name, f"holdings[{i}].owner"), amount) for i, (name, amount) in enumerate(holdings)
        ]
        peers = [self._party(o, f"observers[{i}]").name for i, o in enumerate(observers)]
        stx = token.issue(self.identity, self._notary(), owners, currency).sign([self.key])
        return self.finality.finalise(stx, peers, timeout=timeout)

    def _select(self, currency: str, issuer: X500Name, amount: int) -> list[StateAndRef]:
        chosen: list[StateAndRef] = []
        total = in_flight = 0
        # Inputs of our IN_FLIGHT transactions are spent unless their finality is undone (Corda's
        # soft locks): a payment waiting for a peer must not lend its states to the next one.
        locked = self.transactions.in_flight_inputs()
        for rec in self.vault.iter_vault_states(contract=token.TOKEN_CONTRACT):
            held = token.Token.from_state(rec.state)
            if held.currency != currency or held.issuer.name != issuer or held.owner != self.identity:
                continue
            if rec.ref in locked:
                in_flight += held.amount
                continue
            chosen.append(StateAndRef(rec.state, rec.ref, self._notary()))
            total += held.amount
            if total >= amount:
                return chosen
        waiting = f" ({in_flight} more held by payments still in finality)" if in_flight else ""
        raise InsufficientFundsError(
            f"{self.identity.name} holds {total} {currency} of {issuer} free to spend{waiting}, needs {amount}"
        )

    def _spend(
        self, build: Callable[[], SignedTransaction], observers: Sequence[X500Name], timeout: float | None
    ) -> SignedTransaction:
        """Select and record under the lock; then the rest of finality, on this thread while it can go on.

        The lock is held until the flow recorded its transaction, whose inputs are then soft-locked.
        The caller's thread runs the flow (no hand-over to the pool) until it ends or waits for a peer;
        then the pool takes it and the caller waits up to timeout.
        """
        self.hold()
        peers = [self._party(o, f"observers[{i}]").name for i, o in enumerate(observers)]
        engine = self.finality.engine
        with self._spending:
            handle = self.finality.create(build(), peers)
            engine.run_here(handle.flow_id, until=RECORDED_STEPS)
        engine.run_here(handle.flow_id)
        result: SignedTransaction = handle.result(timeout)
        return result

    def pay(
        self,
        to: X500Name,
        amount: int,
        currency: str,
        issuer: X500Name,
        observers: Sequence[X500Name] = (),
        *,
        timeout: float | None = None,
    ) -> SignedTransaction:
        _check_amount("amount", amount)
        _check_currency(currency)
        receiver = self._party(to, "to")

        def build() -> SignedTransaction:
            inputs = self._select(currency, issuer, amount)
            return token.move(inputs, [(receiver, amount)], self.identity, self._notary()).sign([self.key])

        return self._spend(build, observers, timeout)

    def exit(self, amount: int, currency: str, *, timeout: float | None = None) -> SignedTransaction:
        """Redeem tokens this node issued to itself (the issuer and the owner both sign: us)."""
        _check_amount("amount", amount)
        _check_currency(currency)

        def build() -> SignedTransaction:
            inputs = self._select(currency, self.identity.name, amount)
            return token.exit_tokens(inputs, amount, self.identity, self._notary()).sign([self.key])

        return self._spend(build, (), timeout)

    def holdings(self) -> list[Holding]:
        totals: dict[tuple[str, X500Name], tuple[int, int]] = {}
        for rec in self.vault.iter_vault_states(contract=token.TOKEN_CONTRACT):
            held = token.Token.from_state(rec.state)
            key = (held.currency, held.issuer.name)
            amount, states = totals.get(key, (0, 0))
            totals[key] = (amount + held.amount, states + 1)
        return [
            Holding(c, i, a, n)
            for (c, i), (a, n) in sorted(totals.items(), key=lambda kv: (kv[0][0], str(kv[0][1])))
        ]


def _check_amount(field: str, amount: int) -> None:
    if not is_amount(amount):
        raise InvalidArgumentError(field, amount, "allowed: " + AMOUNT_RANGE)


def _check_currency(currency: str) -> None:
    if not is_currency(currency):
        raise InvalidArgumentError("currency", currency, "allowed: " + CURRENCY_FORM)

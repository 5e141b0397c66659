"""The fungible token contract that ships with the agent: issue, move and exit, conserved per issuer.

A token state's data: {"amount": int > 0, "currency": str, "issuer": party, "owner": party}, a party
being {"name": X.500 name, "key": 32-byte Ed25519 key}; its only participant is the owner.
Amounts are conserved per (issuer, currency): a move keeps every group's sum, an exit lowers one
group's by exactly the exited amount, and only an issue creates value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent.errors import AmountsNotConservedError, ContractRejection, InvalidNameError
from agent.ledger.contracts import LedgerTransaction
from agent.ledger.identity import Party
from agent.ledger.transactions import Command, StateAndRef, TransactionBuilder, TransactionState, cached_party

TOKEN_CONTRACT = "ledger_agent.contracts.FungibleToken"
ISSUE, MOVE, EXIT = "Issue", "Move", "Exit"


def party_data(party: Party) -> dict[str, Any]:
    return {"name": str(party.name), "key": party.owning_key.raw}


def party_from_data(value: Any) -> Party:
    if not isinstance(value, Mapping) or set(value) != {"name", "key"}:
        raise ValueError("a party must be {name, key}")
    name, key = value["name"], value["key"]
    if not isinstance(name, str) or not isinstance(key, bytes):
        raise ValueError("a party's name must be text and its key bytes")
    return cached_party(name, key)


@dataclass(frozen=True)
class Token:
    """A typed view of a token state's data."""

    amount: int
    currency: str
    issuer: Party
    owner: Party

    @property
    def group(self) -> tuple[Party, str]:
        return (self.issuer, self.currency)

    def to_state(self) -> TransactionState:
        data = {
            "amount": self.amount,
            "currency": self.currency,
            "issuer": party_data(self.issuer),
            "owner": party_data(self.owner),
        }
        return TransactionState(TOKEN_CONTRACT, data, (self.owner,))

    @classmethod
    def from_state(cls, state: TransactionState) -> Token:
        data = state.data
        if set(data) != {"amount", "currency", "issuer", "owner"}:
            raise ValueError(f"token data must have amount, currency, issuer, owner; got {sorted(data)}")
        amount, currency = data["amount"], data["currency"]
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError(f"amount must be a positive integer, got {amount!r}")
        if not isinstance(currency, str) or not currency:
            raise ValueError(f"currency must be a non-empty string, got {currency!r}")
        token = cls(amount, currency, party_from_data(data["issuer"]), party_from_data(data["owner"]))
        if state.participants != (token.owner,):
            raise ValueError("the only participant must be the owner")
        return token


def _group_name(group: tuple[Party, str]) -> str:
    return f"{group[1]} issued by {group[0].name}"


class FungibleToken:
    """The contract. Stateless: one instance serves every transaction."""

    name = TOKEN_CONTRACT

    def verify(self, ltx: LedgerTransaction) -> None:
        tx_id = str(ltx.id)

        def reject(reason: str) -> ContractRejection:
            return ContractRejection(tx_id, self.name, reason)

        try:
            inputs = [Token.from_state(s) for s in ltx.inputs_of(self.name)]
            outputs = [Token.from_state(s) for s in ltx.outputs_of(self.name)]
        except (ValueError, InvalidNameError) as exc:
            raise reject(f"malformed token state: {exc}") from exc
        commands = ltx.commands_of(self.name)
        if len(commands) != 1:
            raise reject(f"expected exactly one {self.name} command, got {len(commands)}")
        command = commands[0]
        signers = set(command.signers)
        totals_in = _totals(inputs)
        totals_out = _totals(outputs)

        if command.name == ISSUE:
            if inputs:
                raise reject("an issuance consumes no tokens")
            if not outputs:
                raise reject("an issuance creates at least one token")
            for issuer, _ in totals_out:
                if issuer.owning_key not in signers:
                    raise reject(f"issuer {issuer.name} must sign the issuance")
            return

        if not inputs:
            raise reject(f"a {command.name.lower()} consumes at least one token")
        for token in inputs:
            if token.owner.owning_key not in signers:
                raise reject(f"owner {token.owner.name} of an input must sign")

        exited: dict[tuple[Party, str], int] = {}
        if command.name == EXIT:
            try:
                amount = command.args["amount"]
                group = (party_from_data(command.args["issuer"]), command.args["currency"])
            except (KeyError, ValueError, InvalidNameError) as exc:
                raise reject(f"an exit needs args amount, currency and issuer: {exc}") from exc
            if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
                raise reject(f"exit amount must be a positive integer, got {amount!r}")
            if group[0].owning_key not in signers:
                raise reject(f"issuer {group[0].name} must sign the exit")
            exited[group] = amount
        elif command.name != MOVE:
            raise reject(f"unknown command {command.name!r} (allowed: {ISSUE}, {MOVE}, {EXIT})")

        for group in sorted(set(totals_in) | set(totals_out) | set(exited), key=_group_name):
            have, keep, gone = totals_in.get(group, 0), totals_out.get(group, 0), exited.get(group, 0)
            if have != keep + gone:
                detail = f"inputs {have}, outputs {keep}" + (f", exited {gone}" if gone else "")
                raise AmountsNotConservedError(
                    tx_id, self.name, f"amounts not conserved for {_group_name(group)}: {detail}"
                )


def _totals(tokens: Iterable[Token]) -> dict[tuple[Party, str], int]:
    totals: dict[tuple[Party, str], int] = defaultdict(int)
    for token in tokens:
        totals[token.group] += token.amount
    return dict(totals)


# -- builders used by the demo, the tests and the benchmarks ----------------------------------------


def _one_group(inputs: Sequence[StateAndRef], caller: str) -> tuple[list[Token], tuple[Party, str]]:
    tokens = [Token.from_state(s.state) for s in inputs]
    groups = {t.group for t in tokens}
    if len(groups) != 1:
        raise ValueError(f"{caller} takes inputs of exactly one issuer and currency")
    return tokens, groups.pop()


def issue(
    issuer: Party, notary: Party, holdings: Sequence[tuple[Party, int]], currency: str
) -> TransactionBuilder:
    builder = TransactionBuilder(notary=notary)
    for owner, amount in holdings:
        builder.add_output(Token(amount, currency, issuer, owner).to_state())
    return builder.add_command(Command(TOKEN_CONTRACT, ISSUE, (issuer.owning_key,)))


def move(
    inputs: Sequence[StateAndRef], payments: Sequence[tuple[Party, int]], change_to: Party, notary: Party
) -> TransactionBuilder:
    """Pay from inputs of one (issuer, currency) group; what is left goes back to change_to."""
    tokens, (issuer, currency) = _one_group(inputs, "move()")
    change = sum(t.amount for t in tokens) - sum(amount for _, amount in payments)
    if change < 0:
        raise ValueError(f"inputs hold {change + sum(a for _, a in payments)}, payments need more")
    builder = TransactionBuilder(notary=notary)
    for state in inputs:
        builder.add_input(state)
    for owner, amount in payments:
        builder.add_output(Token(amount, currency, issuer, owner).to_state())
    if change:
        builder.add_output(Token(change, currency, issuer, change_to).to_state())
    owners = sorted({t.owner.owning_key for t in tokens})
    return builder.add_command(Command(TOKEN_CONTRACT, MOVE, tuple(owners)))


def exit_tokens(
    inputs: Sequence[StateAndRef], amount: int, change_to: Party, notary: Party
) -> TransactionBuilder:
    """Redeem amount with the issuer; the rest returns to change_to."""
    tokens, (issuer, currency) = _one_group(inputs, "exit_tokens()")
    change = sum(t.amount for t in tokens) - amount
    builder = TransactionBuilder(notary=notary)
    for state in inputs:
        builder.add_input(state)
    if change:
        builder.add_output(Token(change, currency, issuer, change_to).to_state())
    signers = sorted({t.owner.owning_key for t in tokens} | {issuer.owning_key})
    args = {"amount": amount, "currency": currency, "issuer": party_data(issuer)}
    return builder.add_command(Command(TOKEN_CONTRACT, EXIT, tuple(signers), args))

"""Contracts are pluggable by name: a registry per agent maps each name to the code that verifies it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from agent.errors import ContractRejection, UnknownContractError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party
from agent.ledger.transactions import Command, StateAndRef, TimeWindow, TransactionState


@dataclass(frozen=True)
class LedgerTransaction:
    """A transaction with its inputs and references resolved: what a contract sees."""

    id: SecureHash
    inputs: tuple[StateAndRef, ...]
    references: tuple[StateAndRef, ...]
    outputs: tuple[TransactionState, ...]
    commands: tuple[Command, ...]
    notary: Party | None
    time_window: TimeWindow | None

    def inputs_of(self, contract: str) -> list[TransactionState]:
        return [s.state for s in self.inputs if s.state.contract == contract]

    def outputs_of(self, contract: str) -> list[TransactionState]:
        return [s for s in self.outputs if s.contract == contract]

    def commands_of(self, contract: str) -> list[Command]:
        return [c for c in self.commands if c.contract == contract]

    def contracts(self) -> set[str]:
        """Every contract whose states are consumed or created, or whose commands are given."""
        names = {s.state.contract for s in self.inputs}
        names.update(s.contract for s in self.outputs)
        names.update(c.contract for c in self.commands)
        return names


class Contract(Protocol):
    """Verifies the whole transaction as far as its states and commands go; raises ContractRejection."""

    name: str

    def verify(self, ltx: LedgerTransaction) -> None: ...


class ContractRegistry:
    """The contracts one agent knows, by name."""

    def __init__(self, contracts: Iterable[Contract] = ()) -> None:
        self._by_name: dict[str, Contract] = {}
        for contract in contracts:
            self.register(contract)

    def register(self, contract: Contract) -> None:
        if contract.name in self._by_name:
            raise ValueError(f"contract {contract.name!r} is already registered")
        self._by_name[contract.name] = contract

    def get(self, name: str, tx_id: SecureHash) -> Contract:
        try:
            return self._by_name[name]
        except KeyError:
            raise UnknownContractError(str(tx_id), name) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)


RECOVERY_CONTRACT = "ledger_agent.contracts.RecoveryContract"
RECOVERY_CHECK = "Check"


class RecoveryContract:
    """Finality recovery's notarisation check (Corda's RecoveryContract): a transaction that holds the
    states it asks about as references, so the notary reports who consumed them and consumes nothing.

    Its one output (participants: the asking node) and its one Check command, signed by those
    participants, only give the notary a well-formed transaction to refuse or sign; it never enters a
    ledger, and it may consume nothing.
    """

    name = RECOVERY_CONTRACT

    def verify(self, ltx: LedgerTransaction) -> None:
        def reject(reason: str) -> ContractRejection:
            return ContractRejection(str(ltx.id), self.name, reason)

        if ltx.inputs:
            raise reject("a notarisation check consumes nothing")
        if not ltx.references:
            raise reject("a notarisation check holds at least one state as a reference")
        commands = ltx.commands_of(self.name)
        if len(commands) != 1 or commands[0].name != RECOVERY_CHECK:
            raise reject(f"expected exactly one {RECOVERY_CHECK} command")
        outputs = ltx.outputs_of(self.name)
        if len(outputs) != 1:
            raise reject("a notarisation check creates exactly one output")
        signers = set(commands[0].signers)
        if not signers or any(p.owning_key not in signers for p in outputs[0].participants):
            raise reject("the output's participants must sign the check")

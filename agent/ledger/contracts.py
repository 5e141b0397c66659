"""Contracts are pluggable by name: a registry per agent maps each name to the code that verifies it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from agent.errors import UnknownContractError
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

"""The contracts that ship with the agent: a module of its own, above both the registry (contracts) and
the contracts it lists, so that neither imports the other from inside a function."""

from __future__ import annotations

from agent.ledger.contracts import ContractRegistry, RecoveryContract
from agent.ledger.token import FungibleToken


def default_contracts() -> ContractRegistry:
    """The contracts that ship with the agent."""
    return ContractRegistry([FungibleToken(), RecoveryContract()])

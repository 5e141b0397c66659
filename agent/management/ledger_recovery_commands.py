"""Ledger Recovery's catalogue commands on one node (the LedgerRecovery bean): each on
runtime.ledger_recovery (agent.recovery.service). Arguments arrive checked for their kind by
agent.management.commands; the recovery service checks each field (ConfigurationError naming it),
which agent.management.commands turns into a bad argument (FlowArgumentError) for every surface.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from agent.operator_api.catalogue import COMMANDS
from agent.recovery.parameters import LedgerRecoveryParameters
from agent.recovery.service import LedgerRecoveryService

FLOW, RECOVER = "LedgerRecoveryFlow", "recover"
# The flow's own parameters: every one of the catalogue's but the wait and the reason.
FIELDS = tuple(p.name for p in COMMANDS[FLOW].params if p.name not in ("timeout", "reason"))


def given_fields(values: tuple[Any, ...]) -> dict[str, Any]:
    """The converted arguments (in the catalogue's order) as the flow's named parameters; null ones
    left out, so that the flow's (or recover's) defaults apply."""
    return {name: value for name, value in zip(FIELDS, values, strict=False) if value is not None}


def ledger_recovery_commands(service: LedgerRecoveryService) -> dict[str, Callable[..., Any]]:
    """The implementations, taking the converted arguments in the order of the commands' params (the
    timeout, then the reason: the gate's, for the audit log)."""

    def run(parse: Callable[[Mapping[str, Any]], LedgerRecoveryParameters]) -> Callable[..., Any]:
        def call(*values: Any) -> dict[str, Any]:
            *fields, timeout, _reason = values  # the reason is the audit log's, written by the gate
            params = parse(given_fields(tuple(fields)))
            result: dict[str, Any] = service.start(params).result(timeout)
            return result

        return call

    def reconcile_then_recover(given: Mapping[str, Any]) -> LedgerRecoveryParameters:
        args = dict(given)
        nested = args.get("parameters")
        if isinstance(nested, Mapping) and len(args) == 1:  # the shipped shape: recover's defaults inside
            args = dict(nested)
        return service.reconcile_then_recover_parameters(args)

    return {
        FLOW: run(service.parameters),
        RECOVER: run(reconcile_then_recover),
        "ledgerRecoveryResults": service.results,
        "ledgerRecoveryProgress": service.progress,
        "heldByNoPeer": service.held_by_no_peer,
    }

"""The operator's flows by their Corda names, as declarations: what a client needs to start them.

Each flow has the reference's name and named parameters, whether it changes something (`act`: the
operator role), whether Corda returns nothing (`unit`: the shell prints kotlin.Unit), and the
LedgerSync bean operation that does its work (the shell calls it over JSON-RPC). What each flow runs
on the agent is agent.flows.catalogue's (a test checks the two agree, flow for flow).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue

METHOD_RIBLT = "riblt"
METHOD_LIST = "list"
METHODS = (METHOD_RIBLT, METHOD_LIST)  # how ReconcileWithPartyFlow may find differences

# What each kind of parameter accepts as JSON, and how that is said.
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "party": (lambda v: isinstance(v, str), 'an X.500 name such as "O=PartyB, L=London, C=GB"'),
    "parties": (
        lambda v: isinstance(v, list) and bool(v) and all(isinstance(p, str) for p in v),
        'a list of X.500 names such as ["O=PartyB, L=London, C=GB"]',
    ),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "status": (
        lambda v: isinstance(v, str) and v in ReconciliationStatusValue.__members__,
        "one of " + ", ".join(ReconciliationStatusValue.__members__),
    ),
    "method": (lambda v: v in METHODS, "one of " + ", ".join(METHODS)),
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # a key of KINDS
    required: bool = True
    default: Any = None

    def accepts(self, value: Any) -> bool:
        """value is JSON of this parameter's kind (names are not parsed here)."""
        return KINDS[self.kind][0](value)

    @property
    def allowed(self) -> str:
        return KINDS[self.kind][1]


@dataclass(frozen=True)
class FlowDeclaration:
    name: str
    operation: str  # the LedgerSync bean's operation that does its work, taking the same named params
    params: tuple[Param, ...]
    unit: bool = False  # Corda returns nothing: the shell prints kotlin.Unit
    act: bool = False  # changes something: needs the operator role


_PARTY = Param("party", "party")
_IS_REQUESTER = Param("isRequester", "bool", required=False, default=True)
_BOTH_DIRECTIONS = Param("bothDirections", "bool", required=False, default=False)

FLOWS: dict[str, FlowDeclaration] = {
    flow.name: flow
    for flow in (
        FlowDeclaration(
            "ScheduleReconciliationFlow",
            "ScheduleReconciliation",
            (Param("parties", "parties"), _BOTH_DIRECTIONS),
            unit=True,
            act=True,
        ),
        FlowDeclaration(
            "ReconcileWithPartyFlow",
            "ReconcileWithParty",
            (_PARTY, _BOTH_DIRECTIONS, Param("method", "method", required=False, default=METHOD_RIBLT)),
            act=True,
        ),
        FlowDeclaration(
            "GetReconciliationStatusesFlow",
            "GetReconciliationStatuses",
            (
                Param("party", "party", required=False),
                Param("lastReconciliationStatus", "status", required=False),
                _IS_REQUESTER,
            ),
        ),
        FlowDeclaration(
            "GetReconciliationStatusForPartyFlow", "GetReconciliationStatusForParty", (_PARTY, _IS_REQUESTER)
        ),
        FlowDeclaration(
            "RefreshReconciliationStatusesFlow", "RefreshReconciliationStatuses", (), unit=True, act=True
        ),
        FlowDeclaration(
            "StopReconciliationForPartyFlow", "StopReconciliationForParty", (_PARTY,), unit=True, act=True
        ),
        FlowDeclaration(
            "IsReconciliationScheduledForPartyFlow", "IsReconciliationScheduledForParty", (_PARTY,)
        ),
        FlowDeclaration(
            "IsRespondingToReconciliationForPartyFlow", "IsRespondingToReconciliationForParty", (_PARTY,)
        ),
    )
}
"""Every operator flow, in the order `flow list` shows them."""


def result_text(result: Any, *, unit: bool = False) -> str:
    """A result as the Corda shell prints it after "Flow completed with result: "."""
    if unit:
        return "kotlin.Unit"
    if result is None:
        return "null"
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, ReconciliationStatus):
        return result.pretty()
    if isinstance(result, list):
        return "[" + ", ".join(result_text(r) for r in result) + "]"
    return str(result)

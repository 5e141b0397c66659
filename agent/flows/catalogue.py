"""The operator's flows by their Corda names: one catalogue for every way of starting them.

Each flow has the reference's name and named parameters, whether it changes something (`act`: the
operator role) and whether Corda returns nothing (`unit`: the shell prints kotlin.Unit), the LedgerSync
bean operation that does its work (the shell calls it over JSON-RPC) and what it runs on LedgerSync
(`POST /api/flows/start/<Flow>`, which `ledger-agent flow start` sends). A bad argument is refused
naming the flow, the parameter, the value and what is allowed (FlowArgumentError).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError, InvalidNameError
from agent.ledger.identity import X500Name
from agent.ledgersync.protocol import METHOD_RIBLT, METHODS, ReconciliationResult
from agent.ledgersync.status import ReconciliationStatus, ReconciliationStatusValue

if TYPE_CHECKING:
    from agent.ledgersync.app import LedgerSync


class FlowArgumentError(AgentError):
    """A flow's argument is missing, unknown or of the wrong kind."""

    def __init__(self, flow: str, parameter: str, value: object, allowed: str) -> None:
        self.flow, self.parameter, self.value, self.allowed = flow, parameter, value, allowed
        super().__init__(f"{flow}: parameter {parameter!r} = {value!r}; {allowed}")


class UnknownFlowError(AgentError):
    """No flow of that name is offered on this node."""


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


def _convert(flow: str, param: Param, value: Any) -> Any:
    if not param.accepts(value):
        raise FlowArgumentError(flow, param.name, value, "allowed: " + param.allowed)
    try:
        if param.kind == "party":
            return X500Name.parse(value)
        if param.kind == "parties":
            return [X500Name.parse(v) for v in value]
    except InvalidNameError as exc:
        raise FlowArgumentError(flow, param.name, value, str(exc)) from exc
    if param.kind == "status":
        return ReconciliationStatusValue[value]
    return value


@dataclass(frozen=True)
class OperatorFlow:
    name: str
    operation: str  # the LedgerSync bean's operation that does its work, taking the same named params
    params: tuple[Param, ...]
    call: Callable[..., Any]  # (sync, *arguments in the order of params)
    unit: bool = False  # Corda returns nothing: the shell prints kotlin.Unit
    act: bool = False  # changes something: needs the operator role

    def start(self, sync: LedgerSync, arguments: Mapping[str, Any]) -> Any:
        """Check and convert the named arguments, then run the flow on sync."""
        known = {p.name for p in self.params}
        for name in arguments:
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise FlowArgumentError(self.name, name, arguments[name], f"unknown; parameters: {allowed}")
        values: list[Any] = []
        for param in self.params:
            if param.name in arguments and arguments[param.name] is not None:
                values.append(_convert(self.name, param, arguments[param.name]))
            elif param.required:
                raise FlowArgumentError(self.name, param.name, None, "required; " + param.allowed)
            else:
                values.append(param.default)
        return self.call(sync, *values)


_PARTY = Param("party", "party")
_IS_REQUESTER = Param("isRequester", "bool", required=False, default=True)
_BOTH_DIRECTIONS = Param("bothDirections", "bool", required=False, default=False)

OPERATOR_FLOWS: dict[str, OperatorFlow] = {
    flow.name: flow
    for flow in (
        OperatorFlow(
            "ScheduleReconciliationFlow",
            "ScheduleReconciliation",
            (Param("parties", "parties"), _BOTH_DIRECTIONS),
            lambda sync, parties, both: sync.schedule_reconciliation(parties, both_directions=both),
            unit=True,
            act=True,
        ),
        OperatorFlow(
            "ReconcileWithPartyFlow",
            "ReconcileWithParty",
            (_PARTY, _BOTH_DIRECTIONS, Param("method", "method", required=False, default=METHOD_RIBLT)),
            lambda sync, party, both, method: sync.reconcile_with_party(
                party, both_directions=both, method=method
            ),
            act=True,
        ),
        OperatorFlow(
            "GetReconciliationStatusesFlow",
            "GetReconciliationStatuses",
            (
                Param("party", "party", required=False),
                Param("lastReconciliationStatus", "status", required=False),
                _IS_REQUESTER,
            ),
            lambda sync, *args: sync.get_reconciliation_statuses(*args),
        ),
        OperatorFlow(
            "GetReconciliationStatusForPartyFlow",
            "GetReconciliationStatusForParty",
            (_PARTY, _IS_REQUESTER),
            lambda sync, *args: sync.get_reconciliation_status_for_party(*args),
        ),
        OperatorFlow(
            "RefreshReconciliationStatusesFlow",
            "RefreshReconciliationStatuses",
            (),
            lambda sync: sync.refresh_reconciliation_statuses(),
            unit=True,
            act=True,
        ),
        OperatorFlow(
            "StopReconciliationForPartyFlow",
            "StopReconciliationForParty",
            (_PARTY,),
            lambda sync, party: sync.stop_reconciliation_for_party(party),
            unit=True,
            act=True,
        ),
        OperatorFlow(
            "IsReconciliationScheduledForPartyFlow",
            "IsReconciliationScheduledForParty",
            (_PARTY,),
            lambda sync, party: sync.is_reconciliation_scheduled_for_party(party),
        ),
        OperatorFlow(
            "IsRespondingToReconciliationForPartyFlow",
            "IsRespondingToReconciliationForParty",
            (_PARTY,),
            lambda sync, party: sync.is_responding_to_reconciliation_for_party(party),
        ),
    )
}
"""Every operator flow, in the order `flow list` shows them."""


@dataclass(frozen=True)
class NodeFlow:
    """A flow of the catalogue on one node's LedgerSync."""

    flow: OperatorFlow
    sync: LedgerSync

    def start(self, arguments: Mapping[str, Any]) -> Any:
        return self.flow.start(self.sync, arguments)


def ledgersync_flows(sync: LedgerSync) -> dict[str, NodeFlow]:
    """The catalogue's flows on sync, by name."""
    return {name: NodeFlow(flow, sync) for name, flow in OPERATOR_FLOWS.items()}


def result_json(result: Any) -> Any:
    """A flow's result as JSON; a ReconciliationStatus with the reference's field names."""
    if isinstance(result, ReconciliationStatus | ReconciliationResult):
        return result.as_dict()
    if isinstance(result, list):
        return [result_json(r) for r in result]
    return result


def result_text(result: Any, *, unit: bool = False) -> str:
    """The result as the Corda shell prints it after "Flow completed with result: "."""
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
    if isinstance(result, ReconciliationResult):
        return (
            f"ReconciliationResult(party={result.party}, missingHere={len(result.missing_here)}, "
            f"missingThere={len(result.missing_there)}, exchanges={result.exchanges}, "
            f"bytesSent={result.bytes_sent}, bytesReceived={result.bytes_received}, "
            f"usedIdList={'true' if result.used_id_list else 'false'})"
        )
    return str(result)

"""The operator's flows by their Corda names, started with named arguments from JSON.

`POST /api/flows/start/<FlowName>` with `{"party": "O=PartyB, L=London, C=GB", "isRequester": true}`
is the management API's `flow start GetReconciliationStatusForPartyFlow party: ..., isRequester: true`;
`ledger-agent flow start` sends exactly that. Every argument is checked here and a bad one is refused
naming the flow, the parameter, the value and what is allowed (FlowArgumentError, HTTP 400).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError, InvalidNameError
from agent.ledger.identity import X500Name
from agent.ledgersync.app import LedgerSync
from agent.ledgersync.protocol import METHOD_RIBLT, METHODS, ReconciliationResult
from agent.ledgersync.status import ReconciliationStatus, ReconciliationStatusValue


class FlowArgumentError(AgentError):
    """A flow's argument is missing, unknown or of the wrong kind."""

    def __init__(self, flow: str, parameter: str, value: object, allowed: str) -> None:
        self.flow, self.parameter, self.value, self.allowed = flow, parameter, value, allowed
        super().__init__(f"{flow}: parameter {parameter!r} = {value!r}; {allowed}")


class UnknownFlowError(AgentError):
    """No flow of that name is offered on this node."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # party, parties, bool, status, method
    required: bool = True
    default: Any = None


_ALLOWED = {
    "party": 'an X.500 name such as "O=PartyB, L=London, C=GB"',
    "parties": 'a list of X.500 names such as ["O=PartyB, L=London, C=GB"]',
    "bool": "true or false",
    "status": "one of " + ", ".join(v.value for v in ReconciliationStatusValue),
    "method": "one of " + ", ".join(METHODS),
}


def _convert(flow: str, param: Param, value: Any) -> Any:
    def refuse() -> FlowArgumentError:
        return FlowArgumentError(flow, param.name, value, "allowed: " + _ALLOWED[param.kind])

    try:
        if param.kind == "party":
            if not isinstance(value, str):
                raise refuse()
            return X500Name.parse(value)
        if param.kind == "parties":
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                raise refuse()
            return [X500Name.parse(v) for v in value]
    except InvalidNameError as exc:
        raise FlowArgumentError(flow, param.name, value, str(exc)) from exc
    if param.kind == "bool":
        if not isinstance(value, bool):
            raise refuse()
        return value
    if param.kind == "status":
        if value not in ReconciliationStatusValue.__members__:
            raise refuse()
        return ReconciliationStatusValue[value]
    if param.kind == "method":
        if value not in METHODS:
            raise refuse()
        return value
    raise AssertionError(param.kind)


@dataclass(frozen=True)
class OperatorFlow:
    name: str
    params: tuple[Param, ...]
    run: Callable[..., Any]
    unit: bool = False  # returns nothing: the shell prints kotlin.Unit
    act: bool = False  # changes something: needs the operator role

    def start(self, arguments: Mapping[str, Any]) -> Any:
        known = {p.name for p in self.params}
        for name in arguments:
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                raise FlowArgumentError(self.name, name, arguments[name], f"unknown; parameters: {allowed}")
        values: dict[str, Any] = {}
        for param in self.params:
            if param.name in arguments and arguments[param.name] is not None:
                values[param.name] = _convert(self.name, param, arguments[param.name])
            elif param.required:
                raise FlowArgumentError(self.name, param.name, None, "required; " + _ALLOWED[param.kind])
            else:
                values[param.name] = param.default
        return self.run(*(values[p.name] for p in self.params))  # in the order of params


def ledgersync_flows(sync: LedgerSync) -> dict[str, OperatorFlow]:
    """LedgerSync's flows with the reference's parameter names."""
    party = Param("party", "party")
    is_requester = Param("isRequester", "bool", required=False, default=True)
    flows = [
        OperatorFlow(
            "ScheduleReconciliationFlow",
            (Param("parties", "parties"), Param("bothDirections", "bool", required=False, default=False)),
            lambda parties, both: sync.schedule_reconciliation(parties, both_directions=both),
            unit=True,
            act=True,
        ),
        OperatorFlow(
            "GetReconciliationStatusesFlow",
            (
                Param("party", "party", required=False),
                Param("lastReconciliationStatus", "status", required=False),
                is_requester,
            ),
            sync.get_reconciliation_statuses,
        ),
        OperatorFlow(
            "GetReconciliationStatusForPartyFlow",
            (party, is_requester),
            sync.get_reconciliation_status_for_party,
        ),
        OperatorFlow(
            "RefreshReconciliationStatusesFlow", (), sync.refresh_reconciliation_statuses, unit=True, act=True
        ),
        OperatorFlow(
            "StopReconciliationForPartyFlow",
            (party,),
            sync.stop_reconciliation_for_party,
            unit=True,
            act=True,
        ),
        OperatorFlow(
            "IsReconciliationScheduledForPartyFlow", (party,), sync.is_reconciliation_scheduled_for_party
        ),
        OperatorFlow(
            "IsRespondingToReconciliationForPartyFlow",
            (party,),
            sync.is_responding_to_reconciliation_for_party,
        ),
        OperatorFlow(
            "ReconcileWithPartyFlow",
            (
                party,
                Param("bothDirections", "bool", required=False, default=False),
                Param("method", "method", required=False, default=METHOD_RIBLT),
            ),
            lambda party, both, method: sync.reconcile_with_party(party, both_directions=both, method=method),
            act=True,
        ),
    ]
    return {flow.name: flow for flow in flows}


def status_json(status: ReconciliationStatus) -> dict[str, Any]:
    """A ReconciliationStatus with the reference's field names; ids in upper-case hex."""
    return status.as_dict()


def result_json(result: Any) -> Any:
    """A flow's result as JSON."""
    if isinstance(result, ReconciliationStatus):
        return status_json(result)
    if isinstance(result, list):
        return [result_json(r) for r in result]
    if isinstance(result, ReconciliationResult):
        return result.as_dict()
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

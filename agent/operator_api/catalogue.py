"""The catalogue of operator commands: every flow an operator starts and every verb on running flows.

One declaration that every adapter reads: `/api` (agent.management.app), JSON-RPC and Jolokia (the
beans of agent.management.beans, whose operations are built from these entries), and the shell
(agent.client.shell). Each command has its Corda name, its named parameters and their kinds, its role
(`act`: the operator role; otherwise read-only), what it returns, and the bean operation that does
it (`bean`.`operation`, which is also its JSON-RPC method). What a command runs on a node is
agent.management.commands's; this module is pure, so the operator tools import it without the server.

    LedgerSync's flows (the reference's)   ScheduleReconciliationFlow ... IsRespondingToReconciliation...
    the token flows                        IssueTokensFlow, PayTokensFlow, ExitTokensFlow
    the engine's verbs                     listFlows, killFlow, pauseFlow, resumeFlow
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from agent.operator_api.status import ReconciliationStatusValue

METHOD_RIBLT = "riblt"
METHOD_LIST = "list"
METHODS = (METHOD_RIBLT, METHOD_LIST)  # how ReconcileWithPartyFlow may find differences

# Corda's checkpoint statuses, by name (agent.flows.checkpoints.FlowStatus; a test keeps them equal).
FLOW_STATUSES = ("RUNNABLE", "FAILED", "COMPLETED", "HOSPITALIZED", "KILLED", "PAUSED")
DEFAULT_FLOW_WAIT_S = 60.0
MAX_FLOW_WAIT_S = 3600.0


def _names(value: Any, *, empty: bool) -> bool:
    return isinstance(value, list) and (empty or bool(value)) and all(isinstance(p, str) for p in value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _holdings(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(h, dict) and isinstance(h.get("owner"), str) and _int(h.get("amount")) for h in value
        )
    )


def _seconds(value: Any) -> bool:
    return (_int(value) or isinstance(value, float)) and 0 <= value <= MAX_FLOW_WAIT_S


# What each kind of parameter accepts as JSON, and how that is said.
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "party": (lambda v: isinstance(v, str), 'an X.500 name such as "O=PartyB, L=London, C=GB"'),
    "parties": (
        lambda v: _names(v, empty=False),
        'a list of X.500 names such as ["O=PartyB, L=London, C=GB"]',
    ),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "status": (
        lambda v: isinstance(v, str) and v in ReconciliationStatusValue.__members__,
        "one of " + ", ".join(ReconciliationStatusValue.__members__),
    ),
    "method": (lambda v: v in METHODS, "one of " + ", ".join(METHODS)),
    "observers": (
        lambda v: _names(v, empty=True),
        'a list of X.500 names, possibly empty, such as ["O=PartyC, L=Paris, C=FR"]',
    ),
    "holdings": (
        _holdings,
        'a list of {owner, amount} such as [{"owner": "O=PartyB, L=London, C=GB", "amount": 5}]',
    ),
    "amount": (lambda v: _int(v) and v > 0, "a positive whole number"),
    "currency": (lambda v: isinstance(v, str) and bool(v), "a currency code such as GBP"),
    "seconds": (_seconds, f"seconds from 0 to {MAX_FLOW_WAIT_S:.0f}"),
    "flowId": (lambda v: isinstance(v, str) and bool(v), "a flow's id (a UUID, as stateMachineRunId)"),
    "flowStatus": (lambda v: v in FLOW_STATUSES, "one of " + ", ".join(FLOW_STATUSES)),
    "text": (lambda v: isinstance(v, str), "a string"),
    "txId": (
        lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdefABCDEF" for c in v),
        "a transaction id: 64 hex digits",
    ),
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # a key of KINDS
    required: bool = True
    default: Any = None
    description: str = ""

    def accepts(self, value: Any) -> bool:
        """value is JSON of this parameter's kind (names are not parsed here)."""
        return KINDS[self.kind][0](value)

    @property
    def allowed(self) -> str:
        return KINDS[self.kind][1]


class Kind(Enum):
    FLOW = "flow"  # started by name: `flow start <Flow>`, POST /api/flows/start/<Flow>
    VERB = "verb"  # an engine verb on flows by id, or the listing of flows


class Result(Enum):
    """What a command returns, as its adapters carry it (the beans' JMX return types follow)."""

    UNIT = "unit"  # nothing (the bean's void)
    BOOL = "bool"
    INT = "int"
    STATUS = "status"  # a ReconciliationStatus, or null
    STATUSES = "statuses"  # a list of them
    SESSION = "session"  # a ReconciliationResult: the session's figures and ids
    TX_ID = "txId"  # the id of the transaction the flow finalised
    FLOWS = "flows"  # a list of flows (checkpoints): flowId, flowName, status, step, ...


@dataclass(frozen=True)
class Command:
    name: str  # the Corda name: a flow's class name, or the RPC verb (killFlow)
    kind: Kind
    bean: str  # the `type` of the ledgeragent bean that has the operation
    operation: str  # the bean's operation, taking the same named params; JSON-RPC `<bean>.<operation>`
    params: tuple[Param, ...]
    result: Result
    description: str
    act: bool = False  # changes something: needs the operator role
    unit: bool = False  # Corda's flow returns nothing: the shell prints kotlin.Unit, whatever we return
    overloads: tuple[tuple[str, ...], ...] = ()  # shorter bean signatures (the rest take their defaults)

    @property
    def role(self) -> str:
        return "operator" if self.act else "read-only"

    @property
    def method(self) -> str:
        """Its JSON-RPC method."""
        return f"{self.bean}.{self.operation}"


LEDGER_SYNC, TOKENS, FLOWS_BEAN = "LedgerSync", "Tokens", "Flows"

_PARTY = Param("party", "party", description="The party's X.500 name")
_IS_REQUESTER = Param(
    "isRequester",
    "bool",
    required=False,
    default=True,
    description="This node's reconciliations (true) or other parties' with it (false)",
)
_BOTH_DIRECTIONS = Param(
    "bothDirections", "bool", required=False, default=False, description="Both sides learn what they lack"
)
_OBSERVERS = Param(
    "observers",
    "observers",
    required=False,
    default=(),
    description="Parties that also record the transaction",
)
_TIMEOUT = Param(
    "timeout",
    "seconds",
    required=False,
    default=DEFAULT_FLOW_WAIT_S,
    description="How long to wait for the flow; one still running then goes on (its id says where)",
)
_CURRENCY = Param("currency", "currency", description="The tokens' currency, e.g. GBP")
_FLOW_ID = Param("id", "flowId", description="The flow's id (a reconciliation's stateMachineRunId)")


def _flow(
    name: str, bean: str, params: tuple[Param, ...], result: Result, description: str, **kw: Any
) -> Command:
    return Command(name, Kind.FLOW, bean, name.removesuffix("Flow"), params, result, description, **kw)


def _verb(name: str, params: tuple[Param, ...], result: Result, description: str, **kw: Any) -> Command:
    return Command(name, Kind.VERB, FLOWS_BEAN, name, params, result, description, **kw)


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        _flow(
            "ScheduleReconciliationFlow",
            LEDGER_SYNC,
            (
                Param("parties", "parties", description="X.500 names of the parties to reconcile with"),
                _BOTH_DIRECTIONS,
            ),
            Result.UNIT,
            "ScheduleReconciliationFlow: queue a reconciliation with each party",
            act=True,
            unit=True,
            overloads=(("parties",),),
        ),
        _flow(
            "ReconcileWithPartyFlow",
            LEDGER_SYNC,
            (
                _PARTY,
                _BOTH_DIRECTIONS,
                Param(
                    "method",
                    "method",
                    required=False,
                    default=METHOD_RIBLT,
                    description="riblt (coded symbols) or list (the peer's whole set: the naive way)",
                ),
            ),
            Result.SESSION,
            "Reconcile now, outside the scheduler and the status table; the session's figures",
            act=True,
        ),
        _flow(
            "GetReconciliationStatusesFlow",
            LEDGER_SYNC,
            (
                Param("party", "party", required=False, description="Only this party (null for all)"),
                Param(
                    "lastReconciliationStatus",
                    "status",
                    required=False,
                    description="Only this status (null for all)",
                ),
                _IS_REQUESTER,
            ),
            Result.STATUSES,
            "GetReconciliationStatusesFlow: the statuses, filtered",
            overloads=(("isRequester",),),
        ),
        _flow(
            "GetReconciliationStatusForPartyFlow",
            LEDGER_SYNC,
            (_PARTY, _IS_REQUESTER),
            Result.STATUS,
            "GetReconciliationStatusForPartyFlow: the status, or null",
        ),
        _flow(
            "RefreshReconciliationStatusesFlow",
            LEDGER_SYNC,
            (),
            Result.INT,
            "RefreshReconciliationStatusesFlow: drop ids now recorded here; how many were dropped",
            act=True,
            unit=True,
        ),
        _flow(
            "StopReconciliationForPartyFlow",
            LEDGER_SYNC,
            (_PARTY,),
            Result.UNIT,
            "StopReconciliationForPartyFlow: cancel, drop and mark STOPPED, both directions",
            act=True,
            unit=True,
        ),
        _flow(
            "IsReconciliationScheduledForPartyFlow",
            LEDGER_SYNC,
            (_PARTY,),
            Result.BOOL,
            "IsReconciliationScheduledForPartyFlow",
        ),
        _flow(
            "IsRespondingToReconciliationForPartyFlow",
            LEDGER_SYNC,
            (_PARTY,),
            Result.BOOL,
            "IsRespondingToReconciliationForPartyFlow",
        ),
        _flow(
            "IssueTokensFlow",
            TOKENS,
            (
                Param("holdings", "holdings", description="Who gets how much: [{owner, amount}]"),
                _CURRENCY,
                _OBSERVERS,
                _TIMEOUT,
            ),
            Result.TX_ID,
            "Issue tokens to their owners, through two-phase finality; the transaction's id",
            act=True,
        ),
        _flow(
            "PayTokensFlow",
            TOKENS,
            (
                Param("to", "party", description="The payee's X.500 name"),
                Param("amount", "amount", description="How much"),
                _CURRENCY,
                Param("issuer", "party", description="Whose tokens (the issuer's X.500 name)"),
                _OBSERVERS,
                _TIMEOUT,
            ),
            Result.TX_ID,
            "Pay tokens this node holds to a party, through two-phase finality; the transaction's id",
            act=True,
        ),
        _flow(
            "ExitTokensFlow",
            TOKENS,
            (Param("amount", "amount", description="How much"), _CURRENCY, _TIMEOUT),
            Result.TX_ID,
            "Exit (redeem) tokens this node issued to itself; the transaction's id",
            act=True,
        ),
        _verb(
            "listFlows",
            (
                Param("status", "flowStatus", required=False, description="Only flows in this status"),
                Param(
                    "flowName",
                    "text",
                    required=False,
                    description="Only flows of this name, e.g. FinalityFlow",
                ),
                Param(
                    "step", "text", required=False, description="Only flows at this step, e.g. AFTER_NOTARISE"
                ),
                Param(
                    "counterparty", "party", required=False, description="Only flows with this counterparty"
                ),
                Param("txId", "txId", required=False, description="Only flows of this transaction"),
                Param(
                    "olderThan",
                    "seconds",
                    required=False,
                    description="Only flows started this many seconds ago or more",
                ),
            ),
            Result.FLOWS,
            "The node's flows (checkpoints), oldest first, matching every filter given",
            overloads=((),),
        ),
        _verb(
            "killFlow",
            (_FLOW_ID,),
            Result.BOOL,
            "Kill a running flow; true if one was running (Corda's killFlow)",
            act=True,
        ),
        _verb(
            "pauseFlow",
            (_FLOW_ID,),
            Result.BOOL,
            "Pause a RUNNABLE or HOSPITALIZED flow between two steps; true if it was running",
            act=True,
        ),
        _verb(
            "resumeFlow",
            (_FLOW_ID,),
            Result.BOOL,
            "Resume a PAUSED flow from its checkpoint; true if it was paused",
            act=True,
        ),
    )
}
"""Every operator command: the flows in the order `flow list` shows them, then the verbs."""


def flows() -> Iterator[Command]:
    return (c for c in COMMANDS.values() if c.kind is Kind.FLOW)


def verbs() -> Iterator[Command]:
    return (c for c in COMMANDS.values() if c.kind is Kind.VERB)

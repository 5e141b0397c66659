"""What the catalogue's commands are made of: the kinds of parameter (what each accepts as JSON, and
how that is said), a parameter, a command, and the kinds of result. Pure, as the catalogue is.

The filter of the flow hospital's listings and bulk actions is one parameter, a map (`{"status":
"HOSPITALIZED", "flowName": "FinalityFlow"}`), so that a bean operation keeps a short signature and
every surface passes it the same way; FILTER_KEYS says what each of its keys accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from agent.operator_api.amounts import AMOUNT_RANGE, CURRENCY_FORM, is_amount, is_currency
from agent.operator_api.status import ReconciliationStatusValue

METHOD_RIBLT = "riblt"
METHOD_LIST = "list"
METHODS = (METHOD_RIBLT, METHOD_LIST)  # how ReconcileWithPartyFlow may find differences

# Corda's checkpoint statuses, by name (agent.flows.checkpoints.FlowStatus; a test keeps them equal).
FLOW_STATUSES = ("RUNNABLE", "FAILED", "COMPLETED", "HOSPITALIZED", "KILLED", "PAUSED")
# The flow hospital's diagnoses, highest first (agent.hospital.staff.Diagnosis; a test keeps them equal).
DIAGNOSES = ("RESUSCITATE", "TERMINAL", "DISCHARGE", "OVERNIGHT_OBSERVATION", "NOT_MY_SPECIALTY")
# What a bulk action does to each flow it selected (there is no default: an operator names it).
BULK_ACTIONS = ("retry", "pause", "kill")
DEFAULT_FLOW_WAIT_S = 60.0
MAX_FLOW_WAIT_S = 3600.0
MAX_REASON_CHARS = 1000
MAX_BATCH_SIZE = 1000
DEFAULT_BATCH_SIZE = 50
MAX_AUDIT_LIMIT = 10_000
DEFAULT_AUDIT_LIMIT = 100
# LedgerRecoveryFlow's transactionRole (agent.recovery.parameters.TransactionRole; a test keeps them equal).
TRANSACTION_ROLES = ("ALL", "INITIATOR", "PEER", "OBSERVER", "PEER_AND_OBSERVER")
MAX_RECOVERY_BATCH_SIZE = 10_000  # agent.recovery.parameters.MAX_BATCH_SIZE


def _names(value: Any, *, empty: bool) -> bool:
    return isinstance(value, list) and (empty or bool(value)) and all(isinstance(p, str) for p in value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return _int(value) or isinstance(value, float)


HOLDINGS_FORM = 'a list of {owner, amount} such as [{"owner": "O=PartyB, L=London, C=GB", "amount": 5}]'


def holdings_problem(value: Any) -> tuple[str, Any, str] | None:
    """What is wrong with an issuance's holdings: the field at fault (holdings[1].amount), its value and
    what it allows; None if nothing is."""
    if not isinstance(value, list) or not value:
        return "holdings", value, "allowed: " + HOLDINGS_FORM
    for i, holding in enumerate(value):
        if not isinstance(holding, dict) or set(holding) != {"owner", "amount"}:
            return f"holdings[{i}]", holding, "allowed: {owner, amount}, as in " + HOLDINGS_FORM
        if not isinstance(holding["owner"], str):
            return f"holdings[{i}].owner", holding["owner"], "allowed: an X.500 name"
        if not is_amount(holding["amount"]):
            return f"holdings[{i}].amount", holding["amount"], "allowed: " + AMOUNT_RANGE
    return None


def _seconds(value: Any) -> bool:
    return _number(value) and 0 <= value <= MAX_FLOW_WAIT_S


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _tx_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def _instant(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# The keys of a flow filter: what each accepts, and how that is said.
FILTER_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "status": (lambda v: v in FLOW_STATUSES, "one of " + ", ".join(FLOW_STATUSES)),
    "diagnosis": (lambda v: v in DIAGNOSES, "one of " + ", ".join(DIAGNOSES)),
    "staff": (_text, "a member of the staff or a rule, e.g. FinalityDoctor, rules[0]"),
    "errorType": (_text, "an error's class name, e.g. InjectedFaultError"),
    "flowName": (_text, "a flow's name, e.g. FinalityFlow"),
    "peer": (_text, 'a counterparty\'s X.500 name, e.g. "O=PartyB, L=London, C=GB"'),
    "step": (_text, "the step it reached, e.g. AFTER_RECORD"),
    "minAgeSeconds": (lambda v: _number(v) and v >= 0, "seconds in the hospital, 0 or more"),
    "minAttempts": (lambda v: _int(v) and v >= 0, "errors since its last checkpoint, 0 or more"),
    "underCare": (lambda v: isinstance(v, bool), "true: only the flows the hospital is keeping"),
}


def filter_problem(value: Any) -> str | None:
    """What is wrong with a flow filter (naming the key and what it allows), or None if nothing is."""
    if not isinstance(value, Mapping):
        return f"a map of filters with the keys {', '.join(FILTER_KEYS)}"
    for key, given in value.items():
        if key not in FILTER_KEYS:
            return f"unknown filter {key!r}; filters: {', '.join(FILTER_KEYS)}"
        accepts, allowed = FILTER_KEYS[key]
        if given is not None and not accepts(given):
            return f"filter {key}: {given!r}; allowed: {allowed}"
    return None


# What each kind of parameter accepts as JSON, and how that is said.
KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "party": (lambda v: isinstance(v, str), 'an X.500 name such as "O=PartyB, L=London, C=GB"'),
    "parties": (
        lambda v: _names(v, empty=False),
        'a list of X.500 names such as ["O=PartyB, L=London, C=GB"]',
    ),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "flag": (lambda v: isinstance(v, bool), "true or false (left out: the flow's default)"),
    "status": (
        lambda v: isinstance(v, str) and v in ReconciliationStatusValue.__members__,
        "one of " + ", ".join(ReconciliationStatusValue.__members__),
    ),
    "method": (lambda v: v in METHODS, "one of " + ", ".join(METHODS)),
    "observers": (
        lambda v: _names(v, empty=True),
        'a list of X.500 names, possibly empty, such as ["O=PartyC, L=Paris, C=FR"]',
    ),
    "holdings": (lambda v: holdings_problem(v) is None, HOLDINGS_FORM),
    "amount": (is_amount, AMOUNT_RANGE),
    "currency": (is_currency, CURRENCY_FORM),
    "seconds": (_seconds, f"seconds from 0 to {MAX_FLOW_WAIT_S:.0f}"),
    "flowId": (lambda v: isinstance(v, str) and bool(v), "a flow's id (a UUID, as stateMachineRunId)"),
    "flowStatus": (lambda v: v in FLOW_STATUSES, "one of " + ", ".join(FLOW_STATUSES)),
    "text": (lambda v: isinstance(v, str), "a string"),
    "txId": (_tx_id, "a transaction id: 64 hex digits"),
    "flowIds": (
        lambda v: isinstance(v, list) and all(isinstance(i, str) and i for i in v),
        "a list of flow ids (stateMachineRunIds)",
    ),
    "txIds": (
        lambda v: isinstance(v, list) and all(_tx_id(t) for t in v),
        "a list of transaction ids (64 hex digits each)",
    ),
    "instant": (_instant, 'an ISO-8601 time such as "2023-12-04T10:15:30Z" (UTC when no zone is given)'),
    "initiators": (
        lambda v: isinstance(v, str) or _names(v, empty=False),
        'an X.500 name, or a list of them, such as "O=PartyA, L=London, C=GB"',
    ),
    "reason": (
        lambda v: isinstance(v, str) and bool(v.strip()) and len(v) <= MAX_REASON_CHARS,
        f"why, in words (1 to {MAX_REASON_CHARS} characters): the audit log keeps it",
    ),
    "flowFilter": (
        lambda v: filter_problem(v) is None,
        "a map of filters, every one given must match: "
        + "; ".join(f"{key} ({allowed})" for key, (_, allowed) in FILTER_KEYS.items()),
    ),
    "bulkAction": (lambda v: v in BULK_ACTIONS, "one of " + ", ".join(BULK_ACTIONS)),
    "batchSize": (
        lambda v: _int(v) and 1 <= v <= MAX_BATCH_SIZE,
        f"a whole number from 1 to {MAX_BATCH_SIZE}",
    ),
    "limit": (lambda v: _int(v) and 1 <= v <= MAX_AUDIT_LIMIT, f"a whole number from 1 to {MAX_AUDIT_LIMIT}"),
    # Ledger Recovery's: checked here for their shape, field by field by the recovery service itself.
    "recoveryPeers": (
        lambda v: _names(v, empty=True),
        'a list of X.500 names such as ["O=PartyB, L=New York, C=US"]',
    ),
    "timeWindow": (
        lambda v: isinstance(v, Mapping) and set(v) <= {"fromTime", "untilTime"},
        "a map {fromTime, untilTime} of ISO-8601 times (or epoch milliseconds); untilTime defaults to now",
    ),
    "transactionRole": (
        lambda v: isinstance(v, str) and v.upper() in TRANSACTION_ROLES,
        "one of " + ", ".join(TRANSACTION_ROLES),
    ),
    "recoveryBatchSize": (
        lambda v: _int(v) and 1 <= v <= MAX_RECOVERY_BATCH_SIZE,
        f"a whole number from 1 to {MAX_RECOVERY_BATCH_SIZE}",
    ),
    "recoveryParameters": (
        lambda v: isinstance(v, Mapping),
        "a map of LedgerRecoveryParameters: recoveryPeers, timeWindow, useAllNetworkNodes, dryRun, ...",
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
        if self.kind == "flowFilter":
            return "a map of filters: " + ", ".join(FILTER_KEYS)
        return KINDS[self.kind][1]

    def problem(self, value: Any) -> str:
        """Why value is refused: the filter's key at fault, or what the kind allows."""
        if self.kind == "flowFilter":
            return filter_problem(value) or self.allowed
        found = holdings_problem(value) if self.kind == "holdings" else None
        if found is not None:
            field, _, allowed = found
            return f"{field}: {allowed}"
        return "allowed: " + self.allowed


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
    PATIENTS = "patients"  # a list of the hospital's patients, each with its history
    PATIENT = "patient"  # one flow with its history, or null
    BULK = "bulk"  # a bulk action's dry run, or the job it started
    JOB = "job"  # a bulk job: its progress and a result per flow, or null
    JOBS = "jobs"  # a list of jobs (without their results): bulk jobs, and finality recovery jobs
    AUDIT = "audit"  # a list of audit log entries, newest first
    RECOVERED = "recovered"  # finality recovery: a map of flow (or transaction) id -> recovered
    FLOW_TRANSACTION = "flowTransaction"  # a FlowTransactionInfo, or null
    RECOVERY_PLANS = "recoveryPlans"  # finality recovery's dry run: what it would do, per transaction
    LEDGER_RECOVERY = "ledgerRecovery"  # LedgerRecoveryFlow's summary: totals, plan, results
    RECOVERY_RESULTS = "recoveryResults"  # a list of RecoveryResult (transactionId, recoveryPeer, ...)
    RECOVERY_PROGRESS = "recoveryProgress"  # peer -> status (PENDING, RECOVERED, ...) -> transactions


@dataclass(frozen=True)
class Command:
    name: str  # the Corda name: a flow's class name, or the RPC verb (killFlow)
    kind: Kind
    bean: str  # the `type` of the ledgeragent bean that has the operation
    operation: str  # the bean's operation, taking the same named params; JSON-RPC `<bean>.<operation>`
    params: tuple[Param, ...]
    result: Result
    description: str
    act: bool = False  # changes something: needs the operator role, and goes to the audit log
    unit: bool = False  # Corda's flow returns nothing: the shell prints kotlin.Unit, whatever we return
    overloads: tuple[tuple[str, ...], ...] = ()  # shorter bean signatures (the rest take their defaults)

    @property
    def role(self) -> str:
        return "operator" if self.act else "read-only"

    @property
    def method(self) -> str:
        """Its JSON-RPC method."""
        return f"{self.bean}.{self.operation}"

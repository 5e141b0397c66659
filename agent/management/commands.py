"""The catalogue's commands on one node: what each of agent.operator_api.catalogue's entries runs.

The declarations (names, parameters, kinds, roles, results) are the catalogue's alone; here each name
gets its implementation on the node's services (LedgerSync, the token service, the flow engine), and
arguments are checked against the declaration and converted (X.500 names parsed, statuses looked up)
before anything runs. A bad argument is refused naming the command, the parameter, the value and what
is allowed (FlowArgumentError); every adapter (REST, the beans, so JSON-RPC and Jolokia) starts a
command through the gate of agent.management.audit, which checks the caller's role, runs
`NodeCommand.start` and writes the audit log. The flow hospital's commands are
agent.management.hospital_commands's, finality recovery's agent.management.recovery_commands's,
Ledger Recovery's agent.management.ledger_recovery_commands's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.errors import AgentError, ConfigurationError, InvalidArgumentError, InvalidNameError, shown
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.flows.engine import FlowEngine, FlowNotFoundError
from agent.hospital.bulk import Actor
from agent.hospital.hospital import PatientFilter
from agent.hospital.selection import filter_from_json
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.app import LedgerSync
from agent.ledgersync.protocol import ReconciliationResult
from agent.management.hospital_commands import WITH_ACTOR, hospital_commands
from agent.management.ledger_recovery_commands import ledger_recovery_commands
from agent.management.recovery_commands import WITH_ACTOR as RECOVERY_WITH_ACTOR
from agent.management.recovery_commands import RecoveryQueryError, recovery_commands
from agent.operator_api.catalogue import COMMANDS, Command, Kind, Param
from agent.operator_api.flows import result_text as _plain_text
from agent.operator_api.kinds import holdings_problem
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from agent.runtime import AgentRuntime
from agent.tokens.service import TokenService


class FlowArgumentError(AgentError):
    """A command's argument is missing, unknown or of the wrong kind."""

    def __init__(self, flow: str, parameter: str, value: object, allowed: str) -> None:
        self.flow, self.parameter, self.value, self.allowed = flow, parameter, value, allowed
        super().__init__(f"{flow}: parameter {parameter!r} = {shown(value)}; {allowed}")


class UnknownFlowError(AgentError):
    """No command of that name is offered on this node."""


def _flow_filter(command: str, value: Mapping[str, Any]) -> PatientFilter:
    given = {k: v for k, v in value.items() if v is not None}
    if "peer" in given:
        try:
            given["peer"] = str(X500Name.parse(given["peer"]))
        except InvalidNameError as exc:
            raise FlowArgumentError(command, "filter.peer", given["peer"], str(exc)) from exc
    return filter_from_json(given)


def _convert(command: str, param: Param, value: Any) -> Any:
    found = holdings_problem(value) if param.kind == "holdings" else None
    if found is not None:  # named down to the entry's field: holdings[1].amount
        raise FlowArgumentError(command, *found)
    if not param.accepts(value):
        raise FlowArgumentError(command, param.name, value, param.problem(value))
    try:
        if param.kind == "party":
            return X500Name.parse(value)
        if param.kind in ("parties", "observers"):
            return [X500Name.parse(v) for v in value]
        if param.kind == "holdings":
            return [(X500Name.parse(h["owner"]), h["amount"]) for h in value]
        if param.kind == "initiators":
            return X500Name.parse(value) if isinstance(value, str) else [X500Name.parse(v) for v in value]
    except InvalidNameError as exc:
        raise FlowArgumentError(command, param.name, value, str(exc)) from exc
    if param.kind == "status":
        return ReconciliationStatusValue[value]
    if param.kind == "flowStatus":
        return FlowStatus[value]
    if param.kind == "txId":
        return SecureHash.parse(value, param.name)
    if param.kind == "txIds":
        return [SecureHash.parse(v, param.name) for v in value]
    if param.kind == "instant":
        return datetime.fromisoformat(value)
    if param.kind == "seconds":
        return float(value)
    if param.kind == "flowFilter":
        return _flow_filter(command, value)
    return value


def convert_arguments(command: Command, arguments: Mapping[str, Any]) -> list[Any]:
    """The named arguments checked and converted, in the order of the command's params; absent or
    null ones take their defaults."""
    known = {p.name for p in command.params}
    for name in arguments:
        if name not in known:
            allowed = ", ".join(sorted(known)) or "none"
            raise FlowArgumentError(command.name, name, arguments[name], f"unknown; parameters: {allowed}")
    values: list[Any] = []
    for param in command.params:
        if arguments.get(param.name) is not None:
            values.append(_convert(command.name, param, arguments[param.name]))
        elif param.required:
            raise FlowArgumentError(command.name, param.name, None, "required; " + param.allowed)
        else:
            values.append(param.default)
    return values


def flow_json(checkpoint: FlowCheckpoint, waiting_for: str | None) -> dict[str, Any]:
    """A flow as listFlows and `GET /api/flows` report it."""
    return {
        "flowId": checkpoint.flow_id,
        "flowName": checkpoint.flow_name,
        "status": checkpoint.status.name,
        "step": checkpoint.progress_step,
        "txId": None if checkpoint.tx_id is None else str(checkpoint.tx_id),
        "counterparties": [str(c) for c in checkpoint.counterparties],
        "startedAt": checkpoint.started_at.isoformat(),
        "error": checkpoint.error,
        "waitingFor": waiting_for,
    }


def _ledgersync(sync: LedgerSync) -> dict[str, Callable[..., Any]]:
    return {
        "ScheduleReconciliationFlow": lambda parties, both: sync.schedule_reconciliation(
            parties, both_directions=both
        ),
        "ReconcileWithPartyFlow": lambda party, both, method: sync.reconcile_with_party(
            party, both_directions=both, method=method
        ),
        "GetReconciliationStatusesFlow": sync.get_reconciliation_statuses,
        "GetReconciliationStatusForPartyFlow": sync.get_reconciliation_status_for_party,
        "RefreshReconciliationStatusesFlow": sync.refresh_reconciliation_statuses,
        "StopReconciliationForPartyFlow": sync.stop_reconciliation_for_party,
        "IsReconciliationScheduledForPartyFlow": sync.is_reconciliation_scheduled_for_party,
        "IsRespondingToReconciliationForPartyFlow": sync.is_responding_to_reconciliation_for_party,
    }


def _tokens(tokens: TokenService) -> dict[str, Callable[..., Any]]:
    # The result is the transaction's id: what the REST calls have always answered.
    return {
        "IssueTokensFlow": lambda holdings, currency, observers, timeout: str(
            tokens.issue(holdings, currency, observers, timeout=timeout).id
        ),
        "PayTokensFlow": lambda to, amount, currency, issuer, observers, timeout: str(
            tokens.pay(to, amount, currency, issuer, observers, timeout=timeout).id
        ),
        "ExitTokensFlow": lambda amount, currency, timeout: str(
            tokens.exit(amount, currency, timeout=timeout).id
        ),
    }


def _verbs(engine: FlowEngine, sync: LedgerSync | None) -> dict[str, Callable[..., Any]]:
    def list_flows(
        status: FlowStatus | None,
        flow_name: str | None,
        step: str | None,
        counterparty: X500Name | None,
        tx_id: SecureHash | None,
        older_than: float | None,
    ) -> list[dict[str, Any]]:
        found = engine.flows(
            status=status,
            flow_name=flow_name,
            step=step,
            counterparty=counterparty,
            tx_id=tx_id,
            older_than=None if older_than is None else timedelta(seconds=older_than),
        )
        return [flow_json(cp, engine.waiting_for(cp.flow_id)) for cp in found]

    def kill(flow_id: str) -> bool:
        # Reconciliations still run on LedgerSync's own workers (docs/flows.md); every other flow
        # is the engine's.
        return (sync is not None and sync.kill_flow(flow_id)) or engine.kill(flow_id)

    return {
        "listFlows": list_flows,
        "killFlow": by_id(kill),
        "pauseFlow": by_id(engine.pause),
        "resumeFlow": by_id(engine.resume),
        "retryFlow": by_id(engine.retry),
    }


def by_id(verb: Callable[[str], bool]) -> Callable[[str, str | None], bool]:
    """A verb on one flow by id, taking the reason the gate records; false for a flow it does not know
    (as Corda's killFlow answers)."""

    def call(flow_id: str, reason: str | None = None) -> bool:
        del reason  # the audit log's, written by the gate
        try:
            return verb(flow_id)
        except FlowNotFoundError:
            return False

    return call


def _recovery(runtime: AgentRuntime) -> dict[str, Callable[..., Any]]:
    bound = recovery_commands(runtime.recovery)
    matching = bound["recoverFinalityFlowsMatching"]

    def checked(*values: Any) -> Any:
        try:
            return matching(*values)
        except RecoveryQueryError as exc:  # no criterion: a bad argument, not a refusal
            criteria = "flowStartFromTime, flowStartUntilTime, initiatedBy, counterParties"
            raise FlowArgumentError("recoverFinalityFlowsMatching", criteria, None, str(exc)) from exc

    dry_run = bound["recoverFinalityDryRun"]

    def checked_dry_run(*values: Any) -> Any:
        try:
            return dry_run(*values)
        except RecoveryQueryError as exc:
            criteria = "flowStartFromTime, flowStartUntilTime"
            raise FlowArgumentError("recoverFinalityDryRun", criteria, None, str(exc)) from exc

    return {
        **bound,
        "recoverFinalityFlowsMatching": checked,
        "recoverFinalityDryRun": checked_dry_run,
    }


def _ledger_recovery(runtime: AgentRuntime) -> dict[str, Callable[..., Any]]:
    """Ledger Recovery's commands; a field the recovery service refuses is a bad argument, named."""

    def checked(name: str, run: Callable[..., Any]) -> Callable[..., Any]:
        def call(*values: Any) -> Any:
            try:
                return run(*values)
            except ConfigurationError as exc:
                raise FlowArgumentError(name, exc.key, exc.value, exc.allowed) from exc

        return call

    return {
        name: checked(name, run) for name, run in ledger_recovery_commands(runtime.ledger_recovery).items()
    }


IN_PROCESS = Actor("(in-process)", "-", "in-process")


@dataclass(frozen=True)
class NodeCommand:
    """A catalogue command with its implementation on one node."""

    command: Command
    run: Callable[..., Any]  # the converted arguments, in the order of the command's params
    with_actor: bool = False  # run also takes who asked (a bulk job records it), after the arguments

    def start(self, arguments: Mapping[str, Any], actor: Actor | None = None) -> Any:
        """Check and convert the named arguments, then run the command for actor (this process's own
        call when None). Adapters go through agent.management.audit.CommandGate, which checks the
        caller's role and records what acts."""
        values = convert_arguments(self.command, arguments)
        try:
            if self.with_actor:
                return self.run(*values, actor or IN_PROCESS)
            return self.run(*values)
        except InvalidArgumentError as exc:
            # A value the service refused (the notary as a payee, say): a bad argument on every surface.
            raise FlowArgumentError(self.command.name, exc.field, exc.value, exc.allowed) from exc


class NodeCommands:
    """Every catalogue command this node offers (LedgerSync's only where LedgerSync runs)."""

    def __init__(self, runtime: AgentRuntime) -> None:
        bound = {
            **_tokens(runtime.tokens),
            **_verbs(runtime.engine, runtime.ledgersync),
            **hospital_commands(runtime),
            **_recovery(runtime),
            **_ledger_recovery(runtime),
        }
        if runtime.ledgersync is not None:
            bound.update(_ledgersync(runtime.ledgersync))
        # In the catalogue's order; an entry with no implementation here is not offered.
        self._commands = {
            name: NodeCommand(c, bound[name], name in WITH_ACTOR | RECOVERY_WITH_ACTOR)
            for name, c in COMMANDS.items()
            if name in bound
        }

    def __iter__(self) -> Iterator[NodeCommand]:
        return iter(self._commands.values())

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def get(self, name: str) -> NodeCommand | None:
        return self._commands.get(name)

    def flow(self, name: str) -> NodeCommand:
        """A flow offered here, by name; UnknownFlowError naming the ones offered otherwise."""
        found = self._commands.get(name)
        if found is None or found.command.kind is not Kind.FLOW:
            offered = ", ".join(c.command.name for c in self if c.command.kind is Kind.FLOW)
            raise UnknownFlowError(f"no flow {name!r} on this node; offered: {offered}")
        return found

    def __getitem__(self, name: str) -> NodeCommand:
        return self._commands[name]


def result_json(result: Any) -> Any:
    """A command's result as JSON; a ReconciliationStatus with the reference's field names."""
    if isinstance(result, ReconciliationStatus | ReconciliationResult):
        return result.as_dict()
    if isinstance(result, list):
        return [result_json(r) for r in result]
    return result


def result_text(result: Any, *, unit: bool = False) -> str:
    """The result as the Corda shell prints it after "Flow completed with result: "."""
    if isinstance(result, ReconciliationResult):
        return (
            f"ReconciliationResult(party={result.party}, missingHere={len(result.missing_here)}, "
            f"missingThere={len(result.missing_there)}, exchanges={result.exchanges}, "
            f"bytesSent={result.bytes_sent}, bytesReceived={result.bytes_received}, "
            f"usedIdList={'true' if result.used_id_list else 'false'})"
        )
    if isinstance(result, list) and not unit:
        return "[" + ", ".join(result_text(r) for r in result) + "]"
    return _plain_text(result, unit=unit)

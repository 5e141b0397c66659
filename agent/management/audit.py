"""The one place an operator's command runs with its caller known: the role check and the audit log.

Every adapter runs a catalogue command through `CommandGate.run` with the Caller it authenticated:
the REST API, the beans (so JSON-RPC and Jolokia), and through them the shell and `ledger-agent`. A
command that acts (the catalogue's `act`) needs the operator role, and is written to the audit log
(node_audit_log) whether it was refused, failed or done: user, role, time, command, reason, target
(the flow's id, the filter, a job), outcome and surface (`rest`, `jsonrpc (shell)`, ...). A command
that only reads runs unrecorded. A bulk job writes its own last entry when it ends (agent.hospital.bulk).

A call made in this process without a caller (tests, the demo's in-process nodes) is not checked and
is recorded as user `(in-process)`. Writing the entry is done after the command: if the store
refuses it, the command's own answer stands and the failure is logged as an ERROR.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Any

from agent.clock import Clock
from agent.errors import AgentError
from agent.flows.engine import FlowTimeoutError
from agent.hospital.bulk import Actor
from agent.hospital.records import AuditEntry
from agent.management.commands import IN_PROCESS, NodeCommand
from agent.ports.hospital import AuditLog
from mbeans.access import Caller, require_action
from mbeans.errors import SecurityException

log = logging.getLogger("ledger_agent.audit")

MAX_TARGET_CHARS = 2000


def actor_of(caller: Caller | None) -> Actor:
    """Who the audit log and a bulk job name for caller."""
    if caller is None:
        return IN_PROCESS
    return Actor(caller.principal.username, caller.principal.role.value, caller.via)


class CommandGate:
    """Runs the catalogue's commands for callers: the operator role for those that act, and the
    audit log's entry for each of them."""

    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self.audit = audit
        self.clock = clock

    def authorize(self, command: NodeCommand, arguments: Mapping[str, Any], caller: Caller | None) -> None:
        """Refuse a command that acts to a caller without the operator role, and record the refusal
        (before its arguments are checked: a read-only user learns nothing more than no)."""
        declared = command.command
        if not declared.act or caller is None:
            return
        try:
            require_action(caller.principal, declared.name)
        except SecurityException as exc:
            self._record(
                self.clock.now(), actor_of(caller), declared.name, arguments, None, f"refused: {exc}"
            )
            raise

    def run(self, command: NodeCommand, arguments: Mapping[str, Any], caller: Caller | None) -> Any:
        """command with its named arguments, for caller (None: this process)."""
        declared = command.command
        actor = actor_of(caller)
        self.authorize(command, arguments, caller)
        if not declared.act:
            return command.start(arguments, actor)
        asked_at = self.clock.now()  # the entry's time: when it was asked (a job may end before we record)
        record = partial(self._record, asked_at, actor, declared.name, arguments)
        try:
            result = command.start(arguments, actor)
        except FlowTimeoutError as exc:
            record(None, f"accepted: flow {exc.flow_id} still running")
            raise
        except AgentError as exc:
            record(None, f"error: {type(exc).__name__}: {exc}")
            raise
        except Exception:
            record(None, "error: internal (see the agent's log)")
            raise
        record(result, outcome_of(result))
        return result

    def _record(
        self,
        at: datetime,
        actor: Actor,
        action: str,
        arguments: Mapping[str, Any],
        result: Any,
        outcome: str,
    ) -> None:
        reason = arguments.get("reason")
        entry = AuditEntry(
            at=at,
            user=actor.user,
            role=actor.role,
            action=action,
            reason=reason if isinstance(reason, str) else None,
            target=target_of(arguments, result),
            outcome=outcome[:MAX_TARGET_CHARS],
            surface=actor.surface,
        )
        self.append(entry)

    def append(self, entry: AuditEntry) -> None:
        """Write entry to the audit log; a failure is logged, not raised."""
        try:
            self.audit.append(entry)
        except Exception:  # the action's answer stands; an operator must see that its record is missing
            log.error("could not write the audit log's entry %s", entry, exc_info=True)


def target_of(arguments: Mapping[str, Any], result: Any = None) -> str:
    """What a command acted on, as the audit log names it: a flow's id, a job and its filter, a filter,
    or the command's arguments."""
    if isinstance(result, dict) and "totalRecoveredTransactions" in result:  # Ledger Recovery's summary
        target = f"flow {result.get('flowId')}: {_json(_given(arguments))}"
    elif isinstance(result, dict) and result.get("jobId"):
        target = f"job {result['jobId']}: {result.get('action')} {_json(result.get('filter'))}"
    elif isinstance(result, dict) and result.get("dryRun"):
        target = f"{result.get('action')} {_json(result.get('filter'))}"
    elif isinstance(arguments.get("id"), str):
        target = str(arguments["id"])
    elif "filter" in arguments:
        target = f"{arguments.get('action')} {_json(arguments.get('filter'))}"
    else:
        target = _json(_given(arguments))
    return target[:MAX_TARGET_CHARS]


def _given(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in arguments.items() if k != "reason" and v is not None}


def outcome_of(result: Any) -> str:
    """How a command that ran went, in a few words."""
    if isinstance(result, bool):
        return "done (true)" if result else "not applied (false): not in a status the verb takes"
    if isinstance(result, dict) and "totalRecoveredTransactions" in result:  # Ledger Recovery's summary
        if result.get("dryRun"):
            return f"dry run: {result.get('missing')} transaction(s) missing, {result.get('totalErrors')} error(s)"
        return (
            f"done: {result.get('totalRecoveredTransactions')} transaction(s) recovered, "
            f"{result.get('totalErrors')} error(s)"
        )
    if isinstance(result, dict) and result.get("dryRun"):
        return (
            f"dry run: {result.get('total')} flow(s) selected, {result.get('wouldAct')} would "
            f"{result.get('action')}, {result.get('wouldSkip')} skipped"
        )
    if isinstance(result, dict) and result.get("jobId"):
        return f"job started: {result.get('total')} flow(s)"
    if isinstance(result, dict) and all(isinstance(v, bool) for v in result.values()):
        # finality recovery's map of id -> recovered
        return f"done: {sum(result.values())} of {len(result)} recovered"
    if result is None:
        return "done"
    if isinstance(result, str | int):
        return f"done: {result}"
    return "done"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)

"""`ledger-agent shell`: the Corda shell's commands, answered by the agent's JSON-RPC endpoint.

    flow list
    flow start ScheduleReconciliationFlow parties: ["O=PartyB, L=London, C=GB"]
    flow start GetReconciliationStatusForPartyFlow party: "O=PartyB, L=London, C=GB", isRequester: true
    flow watch [status: FAILED, flowName: FinalityFlow, ...]
    flow kill <id>, flow pause <id>, flow resume <id>, flow retry <id>   [reason: "..."]
    flow pauseAll, flow pauseAllHospitalized, flow retryAllPaused, flow retryAllPausedHospitalized
                                                   (Corda Enterprise's; reason: "..." is required)
    flow hospital [status: HOSPITALIZED, ...], flow hospital <id>
    flow bulk retry|pause|kill [filters..., reason: "...", dryRun: false]
    flow jobs [<jobId>]
    audit [user: ..., action: ..., limit: ...]
    flowStatus queryFinalityById <id>, flowStatus queryFinalityByTxnId <txId>
    flow recoverFinality <id>, flow recoverFinalityByTxnId <txId>, flow recoverAllFinality
    flow recoverFinalityFlows <id> <id> ..., flow recoverFinalityByTxnIds <txId> <txId> ...
    flow recoverFinalityMatching flowStartFromTime: "...", flowStartUntilTime: "...", initiatedBy: "...",
        counterParties: [...]          (each recovery takes --force-recover and reason: "...", and
                                       --dry-run: what it would do, changing nothing)
    run killFlow id: <id>                          (any verb of the catalogue by its name)
    run NumberOfReconciliationsInProgress          (any JSON-RPC method, with name: value arguments)
    help, bye, exit

Which flows and verbs there are, their parameters and the JSON-RPC method of each come from the
catalogue (agent.operator_api.catalogue), as the agent's beans and REST API do.

Interactive with readline history on a terminal; otherwise it reads commands from stdin, one a line,
so it can be scripted. An error prints one line on stderr and the shell goes on; the exit status is 1
when any command failed. RpcClient is also the client `ledger-agent check` reads attributes with.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import httpx

from agent import __version__
from agent.client.arguments import parse_flow_arguments
from agent.client.launcher import follow_job
from agent.client.nodeconf import management_verify
from agent.client.tables import (
    audit_table,
    dry_run_text,
    job_started_text,
    job_text,
    jobs_table,
    patient_text,
    patients_table,
    progress_line,
)
from agent.errors import AgentError, ConfigurationError
from agent.operator_api.catalogue import COMMANDS, FILTER_KEYS, Command, Kind, flows
from agent.operator_api.flows import result_text
from agent.operator_api.layout import PASSWORD_FILE
from agent.operator_api.recovery import (
    QUERIES,
    RECOVERIES,
    dry_run_arguments,
    flow_transaction_report,
    recovered_text,
    recovery_dry_run_text,
    recovery_job_ok,
    recovery_job_text,
    results_text,
)
from agent.operator_api.status import ReconciliationStatus

PASSWORD_ENV = "LEDGER_AGENT_PASSWORD"


class RpcError(AgentError):
    """The agent answered a JSON-RPC call with an error."""

    def __init__(self, code: int, message: str, error_type: str | None = None) -> None:
        self.code, self.message, self.error_type = code, message, error_type
        super().__init__(f"{error_type}: {message}" if error_type else message)


class RpcAuthenticationError(RpcError):
    """HTTP 401: the user or the password is wrong."""


class RpcUnavailableError(AgentError):
    """The endpoint did not answer, or not with JSON-RPC."""


class RpcClient:
    """JSON-RPC calls to one agent's /rpc with HTTP basic auth."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        timeout: float = 30.0,
        tool: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/") + "/rpc"
        self._auth = (username, password)
        # The tool calling (shell): its User-Agent, which the agent's audit log records.
        headers = {"User-Agent": f"ledger-agent-{tool}/{__version__}"} if tool else None
        # https with ca_file: the endpoint's certificate must chain to it (else the system's CAs).
        self._client = httpx.Client(
            timeout=timeout, trust_env=False, headers=headers, verify=management_verify(ca_file)
        )
        self._next_id = 0

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: list[Any] | dict[str, Any] | None = None) -> Any:
        self._next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self._next_id}
        if params is not None:
            body["params"] = params
        try:
            response = self._client.post(self.url, json=body, auth=self._auth)
        except httpx.HTTPError as exc:
            raise RpcUnavailableError(f"the agent at {self.url} did not answer: {exc}") from exc
        try:
            reply = response.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or ("result" not in reply and "error" not in reply):
            raise RpcUnavailableError(f"{self.url} answered HTTP {response.status_code}, not JSON-RPC")
        error = reply.get("error")
        if error is None:
            return reply.get("result")
        data = error.get("data")
        error_type = data.get("type") if isinstance(data, dict) else None
        kind = RpcAuthenticationError if response.status_code == 401 else RpcError
        raise kind(int(error.get("code", 0)), str(error.get("message", "")), error_type)


def endpoint(
    config: Path | None,
    url: str | None,
    password_file: Path | None,
    default_file: str,
    env: str | None,
    cacert: Path | None = None,
) -> tuple[str, str, Path | None]:
    """The agent's base URL, a password and the CA file to check its certificate against: --url or
    node.conf's managementAddress (https when its managementSsl.useSsl); --password-file, the
    environment variable env, or <node folder>/default_file; --cacert or node.conf's network root."""
    base = None
    folder = None
    ca_file = cacert
    if config is not None:
        from agent.client.nodeconf import read_node_conf

        node = read_node_conf(config)
        base, folder = node.management_url, node.base_directory
        ca_file = ca_file or node.ca_file
    base = url or base
    if base is None:
        raise ConfigurationError("--url", None, "give --url, or --config with the node's node.conf")
    if password_file is None:
        from_env = None if env is None else os.environ.get(env)
        if from_env is not None:
            return base, from_env, ca_file
        if folder is None:
            raise ConfigurationError(
                "password", None, "give --password-file" + (f", set {env}" if env else "") + " or --config"
            )
        password_file = folder / default_file
    try:
        return base, password_file.read_text().strip(), ca_file
    except OSError as exc:
        raise ConfigurationError("password file", str(password_file), f"unreadable: {exc.strerror}") from exc


# -- the flows ----------------------------------------------------------------------------------------

# How the shell has always worded what a method may be; every other kind as the catalogue says it.
_ALLOWED = {"method": "riblt or list"}


def flow_arguments(flow: Command, given: dict[str, Any]) -> dict[str, Any]:
    """The JSON-RPC arguments of flow: given checked for kind, defaults filled; names stay strings."""
    names = [p.name for p in flow.params]
    for key, value in given.items():
        if key not in names:
            raise ConfigurationError(
                f"{flow.name} parameter {key!r}", value, f"unknown; parameters: {', '.join(names) or 'none'}"
            )
    out: dict[str, Any] = {}
    for param in flow.params:
        allowed = "allowed: " + _ALLOWED.get(param.kind, param.allowed)
        if param.name not in given and param.required:
            raise ConfigurationError(f"{flow.name} parameter {param.name!r}", None, f"required; {allowed}")
        value = given.get(param.name, param.default)
        if param.name in given and value is not None and not param.accepts(value):  # defaults are JSON-ready
            raise ConfigurationError(f"{flow.name} parameter {param.name!r}", value, allowed)
        out[param.name] = value
    return out


def _is_status(value: Any) -> bool:
    return isinstance(value, dict) and "partyName" in value and "lastReconciliationStatus" in value


def render(result: Any) -> str:
    """A JSON-RPC result as the Corda shell prints it: statuses re-formatted, true/false, null."""
    if _is_status(result):
        return ReconciliationStatus.from_dict(result).pretty()
    if isinstance(result, list) and all(_is_status(r) for r in result):
        return result_text([ReconciliationStatus.from_dict(r) for r in result])
    if isinstance(result, bool) or result is None:
        return result_text(result)
    if isinstance(result, str | int | float):
        return str(result)
    return json.dumps(result, ensure_ascii=False)


# -- the shell ----------------------------------------------------------------------------------------


def watch_table(listed: list[dict[str, Any]]) -> str:
    """listFlows's answer as `flow watch` prints it: one flow a line, oldest first."""
    if not listed:
        return "No flows"
    columns = ("flowId", "flowName", "status", "step", "waitingFor")
    rows = [[str(f.get(c) or "") for c in columns] for f in listed]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    lines = [columns, *rows]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


HELP = """Commands:
  flow list                                 the flows this node offers
  flow start <Flow> [name: value, ...]      e.g. flow start ScheduleReconciliationFlow parties: ["O=PartyB, L=London, C=GB"]
  flow watch [name: value, ...]             the node's flows, filtered by status, flowName, step, counterparty, txId, olderThan (s)
  flow kill <id> [reason: "..."]            kill a running flow (every verb takes an optional reason: the audit log keeps it)
  flow pause <id>, flow resume <id>         pause a flow between two steps, resume a paused one
  flow retry <id>                           retry a HOSPITALIZED or PAUSED flow from its checkpoint
  flow pauseAll reason: "..."               pause every RUNNABLE and HOSPITALIZED flow (a bulk job; followed to its end)
  flow pauseAllHospitalized reason: "..."   pause every HOSPITALIZED flow
  flow retryAllPaused reason: "..."         retry every PAUSED flow
  flow retryAllPausedHospitalized reason: "..."  retry every PAUSED flow the hospital was keeping
  flow hospital [name: value, ...]          the hospital's patients, filtered by status, diagnosis, staff, errorType, flowName,
                                            peer, step, minAgeSeconds, minAttempts, underCare; includeFailed: true for FAILED too
  flow hospital <id>                        one flow and its retry history
  flow bulk <retry|pause|kill> [name: value, ...]  a dry run by filter (the filters above, reason: "..."); dryRun: false starts
                                            the job (batchSize, batchIntervalSeconds), followed to its end
  flow jobs [<jobId>]                       every job (bulk, finality recovery), or one job with its results
  audit [user: ..., action: ..., limit: n]  the audit log, newest first
  flowStatus queryFinalityById <id>         a finality flow's FlowTransactionInfo and its YAML (flowStatus queryFinalityByTxnId <txId>)
  flow recoverFinality <id>                 recover a failed finality flow (also recoverFinalityByTxnId <txId>,
                                            recoverFinalityFlows <id> <id> ..., recoverFinalityByTxnIds <txId> <txId> ...,
                                            recoverAllFinality, recoverFinalityMatching flowStartFromTime: "...",
                                            flowStartUntilTime: "...", initiatedBy: "...", counterParties: [...]);
                                            --force-recover also takes RUNNABLE, PAUSED, HOSPITALIZED flows; reason: "...";
                                            --dry-run says what it would do per transaction, changing nothing;
                                            --job recovers in a job on the agent (a result per transaction)
  run killFlow id: <id>                     the same as flow kill, printing true or false (also pauseFlow, resumeFlow, retryFlow, listFlows)
  run <Method> [name: value, ...]           any JSON-RPC method, e.g. run NumberOfReconciliationsInProgress
  help                                      this text
  bye | exit                                leave the shell"""


FORCE_RECOVER = "--force-recover"
DRY_RUN = "--dry-run"
JOB = "--job"  # a recovery as a job on the agent, followed to its end
MANY = ("ids", "txnIds")  # the recovery commands taking several ids: a map of results, as recoverAllFinality
CORDA_BULK_VERBS = ("pauseAll", "pauseAllHospitalized", "retryAllPaused", "retryAllPausedHospitalized")
WAIT_FOR_ANSWER_S = 90.0
JOB_WAIT_S = 3600.0  # how long the shell follows a bulk job it started (the job goes on after)


class Shell:
    def __init__(self, client: RpcClient, out: TextIO, err: TextIO) -> None:
        self.client, self.out, self.err = client, out, err
        self.failed = False
        self._methods: set[str] | None = None

    def print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def offered(self) -> list[str]:
        if self._methods is None:
            self._methods = {m["name"] for m in self.client.call("list_methods")}
        return [flow.name for flow in flows() if flow.method in self._methods]

    def verb(self, name: str, flow_id: str, reason: str | None = None) -> bool:
        """A verb of the catalogue on one flow (killFlow, pauseFlow, resumeFlow, retryFlow): whether it
        applied."""
        params = {"id": flow_id} if reason is None else {"id": flow_id, "reason": reason}
        return bool(self.client.call(COMMANDS[name].method, params))

    def call(self, name: str, given: dict[str, Any]) -> Any:
        """A catalogue command with every parameter named (the defaults filled in): JSON-RPC picks the
        overload by the set of names."""
        command = COMMANDS[name]
        return self.client.call(command.method, flow_arguments(command, given))

    def filtered(self, name: str, words: list[str], extra: tuple[str, ...]) -> dict[str, Any]:
        """`name: value, ...` split into a filter (FILTER_KEYS) and the command's other parameters."""
        given = parse_flow_arguments(words)
        arguments = {k: v for k, v in given.items() if k not in FILTER_KEYS}
        unknown = sorted(set(arguments) - set(extra))
        if unknown:
            allowed = ", ".join([*FILTER_KEYS, *extra])
            raise ConfigurationError(
                f"{name} parameter {unknown[0]!r}", given[unknown[0]], f"unknown; allowed: {allowed}"
            )
        arguments["filter"] = {k: v for k, v in given.items() if k in FILTER_KEYS}
        return arguments

    def follow(self, job: dict[str, Any]) -> dict[str, Any]:
        """A bulk job until it has finished (an agent that restarts meanwhile is waited for)."""
        job_id = job["jobId"]
        return follow_job(
            lambda: dict(self.client.call(COMMANDS["bulkJob"].method, {"id": job_id})),
            JOB_WAIT_S,
            transient=(RpcUnavailableError,),
        )

    def started(self, job: dict[str, Any]) -> None:
        self.print(job_started_text(job))
        done = self.follow(job)
        self.print(progress_line(done))
        if done.get("status") != "COMPLETED" or (done.get("counts") or {}).get("failed"):
            self.failed = True

    def execute(self, line: str) -> bool:
        """Run one command; False when the shell should end."""
        words = line.strip().split(maxsplit=2)
        if not words:
            return True
        command = words[0]
        if command in ("bye", "exit", "quit"):
            return False
        if command == "help":
            self.print(HELP)
        elif command == "flow" and words[1:2] == ["list"]:
            flows = self.offered()
            self.print("\n".join(flows) if flows else "No flows (LedgerSync is not enabled on this node)")
        elif command == "flow" and words[1:2] == ["start"] and len(words) == 3:
            name, _, rest = words[2].partition(" ")
            flow = COMMANDS.get(name)
            if flow is None or name not in self.offered():
                offered = ", ".join(self.offered()) or "none"
                raise ConfigurationError("flow", name, f"not offered on this node; flows: {offered}")
            arguments = flow_arguments(flow, parse_flow_arguments([rest]))
            result = self.client.call(flow.method, arguments)
            self.print(f"Flow completed with result: {'kotlin.Unit' if flow.unit else render(result)}")
        elif command == "flow" and words[1:2] == ["watch"]:
            listing = COMMANDS["listFlows"]
            # Every filter named, null when not given: JSON-RPC picks an overload by the set of names.
            arguments = flow_arguments(listing, parse_flow_arguments(words[2:]))
            self.print(watch_table(self.client.call(listing.method, arguments)))
        elif (
            command == "flow"
            and words[1:2] in (["kill"], ["pause"], ["resume"], ["retry"])
            and len(words) == 3
        ):
            action = words[1]
            flow_id, _, rest = words[2].strip().partition(" ")
            reason = self.reason(rest, required=False)
            if self.verb(f"{action}Flow", flow_id, reason):
                done = {"kill": "Killed", "pause": "Paused", "resume": "Resumed", "retry": "Retried"}[action]
                self.print(f"{done} flow [{flow_id}]")
            else:
                self.failed = True
                state = {"resume": "paused", "retry": "hospitalized or paused"}.get(action, "running")
                self.print(f"Failed to {action} flow [{flow_id}]: no such flow {state}")
        elif command == "flow" and len(words) >= 2 and words[1] in CORDA_BULK_VERBS:
            reason = self.reason(words[2] if len(words) == 3 else "", required=True, verb=words[1])
            self.started(self.client.call(COMMANDS[words[1]].method, {"reason": reason}))
        elif command == "flow" and words[1:2] == ["hospital"]:
            rest = words[2].strip() if len(words) == 3 else ""
            if rest and ":" not in rest:
                found = self.call("flowHistory", {"id": rest})
                if found is None:
                    raise ConfigurationError("flow", rest, "no such flow on this node")
                self.print(patient_text(found))
            else:
                arguments = self.filtered("listPatients", words[2:], ("includeFailed",))
                self.print(patients_table(self.call("listPatients", arguments)))
        elif command == "flow" and words[1:2] == ["bulk"] and len(words) == 3:
            action, _, rest = words[2].strip().partition(" ")
            extra = ("reason", "dryRun", "batchSize", "batchIntervalSeconds")
            arguments = self.filtered("bulkAction", [rest], extra)
            answer = self.call("bulkAction", {"action": action, **arguments})
            if answer.get("dryRun"):
                self.print(dry_run_text(answer))
                self.print("Nothing changed (a dry run); add dryRun: false to do it.")
            else:
                self.started(answer)
        elif command == "flow" and words[1:2] == ["jobs"]:
            if len(words) == 3:
                job_id = words[2].strip()
                job = self.call("bulkJob", {"id": job_id}) or self.call("recoveryJob", {"id": job_id})
                if job is None:
                    raise ConfigurationError("flow jobs", job_id, "no such job on this node")
                self.print(job_text(job))
            else:
                self.print(jobs_table(self.call("listBulkJobs", {})))
        elif command == "flowStatus" and words[1:2] and words[1] in QUERIES and len(words) == 3:
            name, key = QUERIES[words[1]]
            self.print(flow_transaction_report(self.call(name, {key: words[2].strip()})))
        elif command == "flow" and words[1:2] and words[1] in RECOVERIES:
            self.recover(words[1], words[2] if len(words) == 3 else "")
        elif command == "audit":
            self.print(audit_table(self.call("auditLog", parse_flow_arguments(words[1:]))))
        elif command == "run" and len(words) >= 2:
            verb = COMMANDS.get(words[1])
            # The catalogue's verbs go by their bare names (Corda's `run killFlow id: ...`).
            method = verb.method if verb is not None and verb.kind is Kind.VERB else words[1]
            arguments = parse_flow_arguments(words[2:])
            if "id" in arguments and verb is not None:
                arguments["id"] = str(arguments["id"])  # YAML would make some ids numbers
            self.print(render(self.client.call(method, arguments or None)))
        else:
            raise ConfigurationError("command", line.strip(), "type help for the commands")
        return True

    def recover(self, verb: str, rest: str) -> None:
        """One of the reference's recovery commands, printing what the reference's shell prints."""
        name, key = RECOVERIES[verb]
        words = rest.split()
        force = FORCE_RECOVER in words
        dry, job = DRY_RUN in words, JOB in words
        rest = " ".join(w for w in words if w not in (FORCE_RECOVER, DRY_RUN, JOB))
        target = None
        targets: list[str] = []
        if key in MANY:  # the ids: every word up to the first `name: value`
            parts = rest.split()
            while parts and ":" not in parts[0]:
                targets.append(parts.pop(0))
            rest = " ".join(parts)
            if not targets:
                raise ConfigurationError(f"flow {verb}", None, f"give the {key}: flow {verb} <id> <id> ...")
        elif key is not None:
            target, _, rest = rest.partition(" ")
            if not target:
                raise ConfigurationError(f"flow {verb}", None, f"give the {key}: flow {verb} <{key}>")
        given = parse_flow_arguments([rest]) if rest.strip() else {}
        for name_, value in given.items():  # YAML reads an unquoted time as a datetime
            if hasattr(value, "isoformat"):
                given[name_] = value.isoformat()
        if key in MANY:
            given[key] = targets
        elif key is not None:
            given[key] = target
        given["forceRecover"] = bool(given.get("forceRecover", False)) or force
        if "reason" in given:
            given["reason"] = str(given["reason"])
        if dry:
            plans = self.call("recoverFinalityDryRun", dry_run_arguments(given, key))
            self.print(recovery_dry_run_text(plans))
            return
        if job:
            arguments = dry_run_arguments(given, key)
            if "reason" in given:
                arguments["reason"] = given["reason"]
            started = dict(self.call("recoverFinalityJob", arguments))
            job_id = started["jobId"]
            self.print(f"Started finality recovery job {job_id} ({started['total']} transaction(s))")
            done = follow_job(
                lambda: dict(self.client.call(COMMANDS["recoveryJob"].method, {"id": job_id})), JOB_WAIT_S
            )
            self.print(recovery_job_text(done))
            self.failed = self.failed or not recovery_job_ok(done)
            return
        result = self.call(name, given)
        if key is None or key in MANY:
            self.print(results_text(result))
            self.failed = self.failed or not all(result.values())
            return
        assert target is not None
        flow_id = target
        if result and key == "txnId":  # the reference names the recovered flow by its id
            info = self.call("getFlowTransactionByTxnId", {"txnId": target})
            flow_id = (info or {}).get("stateMachineRunId") or target
        self.print(recovered_text(target, bool(result), flow_id=flow_id))
        self.failed = self.failed or not result

    def reason(self, text: str, *, required: bool, verb: str = "flow") -> str | None:
        """The `reason: "..."` after a verb's id (or alone, after a bulk verb)."""
        given = parse_flow_arguments([text]) if text.strip() else {}
        unknown = sorted(set(given) - {"reason"})
        if unknown:
            raise ConfigurationError(
                f"parameter {unknown[0]!r}", given[unknown[0]], 'unknown; allowed: reason: "..."'
            )
        reason = given.get("reason")
        if reason is None and required:
            raise ConfigurationError(
                f"{verb} parameter 'reason'", None, 'required: the audit log keeps why (reason: "...")'
            )
        return None if reason is None else str(reason)

    def run(self, lines: Iterator[str]) -> int:
        for line in _joined(lines):
            try:
                if not self.execute(line):
                    break
            except (AgentError, httpx.HTTPError) as exc:
                self.failed = True
                print(f"Error: {exc}", file=self.err, flush=True)
        return 1 if self.failed else 0


def _joined(lines: Iterator[str]) -> Iterator[str]:
    """Lines ending in a backslash joined to the next, as the reference writes a long command."""
    pending = ""
    for line in lines:
        stripped = line.rstrip("\n").rstrip()
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def _interactive(history: Path) -> Iterator[str]:
    import readline

    with contextlib.suppress(OSError):  # no history yet
        readline.read_history_file(history)
    try:
        while True:
            try:
                yield input(">>> ")
            except EOFError:
                print()
                return
            except KeyboardInterrupt:
                print()
    finally:
        with contextlib.suppress(OSError):  # a read-only folder is no reason to fail
            readline.set_history_length(1000)
            readline.write_history_file(history)


def run_shell(
    config: Path | None,
    url: str | None,
    user: str,
    stdin: TextIO | None = None,
    cacert: Path | None = None,
) -> int:
    """The shell on stdin (interactive on a terminal); the exit status."""
    base, password, ca_file = endpoint(config, url, None, PASSWORD_FILE, PASSWORD_ENV, cacert)
    source = stdin if stdin is not None else sys.stdin
    # Longer than a flow's or a recovery's default wait (60 s), so that its own answer arrives.
    client = RpcClient(base, user, password, timeout=WAIT_FOR_ANSWER_S, tool="shell", ca_file=ca_file)
    try:
        shell = Shell(client, sys.stdout, sys.stderr)
        if source.isatty():
            folder = config.parent if config is not None else Path.home()
            print(f"ledger-agent shell on {base} as {user}; help for the commands, bye to leave")
            return shell.run(_interactive(folder / ".ledger-agent-shell-history"))
        return shell.run(iter(source))
    finally:
        client.close()

"""The management endpoint as one WSGI app: /health for probes, the REST API under /api, and the MBean
adapters (JSON-RPC /rpc, Jolokia /jolokia, Prometheus /metrics) over the agent's beans.

The REST API starts the catalogue's commands (agent.management.commands): every flow by name at
`POST /api/flows/start/<Flow>`, the token flows also at their own routes, the engine's verbs
(`GET /api/flows`, `POST /api/flows/{kill,pause,resume,retry}/<id>`) and the flow hospital's
(`GET /api/hospital`, `POST /api/flows/bulk`, `GET /api/audit`, ...: docs/hospital.md), finality
recovery's under their FlowRPCOps and NodeFlowStatusRpcOps names (`POST /api/finality/<operation>`,
`GET /api/finality/getFlowTransaction/<flowId>`, ...: docs/finality-recovery.md), Ledger Recovery's
(`POST /api/recovery/ledgerRecovery`, `POST /api/recovery/recover`, `GET /api/recovery/results/<flowId>`,
`GET /api/recovery/progress`: docs/ledger-recovery.md). Each runs
through the gate (agent.management.audit): the role it needs is the catalogue's, and what acts goes
to the audit log, refusals included. Every /api call needs HTTP basic auth with a user from
node.conf's managementUsers; an address that failed too many logins is answered 429 for a while
(agent.login_throttle). Errors are JSON {"error": <named error>, "message": ...}; never a stack
trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from agent.errors import (
    AgentError,
    ConfigurationError,
    DatabaseError,
    IdentityError,
    InvalidArgumentError,
    InvalidNameError,
    SerializationError,
    TooManyLoginAttemptsError,
)
from agent.flows.engine import FlowNotFoundError, FlowTimeoutError
from agent.ledger.hashing import SecureHash
from agent.ledger.vault import TransactionStatus
from agent.login_throttle import LoginThrottle
from agent.management.audit import CommandGate
from agent.management.auth import ManagementAuth
from agent.management.beans import register_agent_beans
from agent.management.commands import (
    FlowArgumentError,
    NodeCommand,
    NodeCommands,
    UnknownFlowError,
    result_text,
)
from agent.management.finality_monitoring import add_auto_recovery_attributes, add_in_flight_attributes
from agent.management.flow_replies import flow_reply
from agent.management.ledger_recovery_monitoring import add_ledger_recovery_monitoring
from agent.management.readiness import not_ready_reasons
from agent.operator_api.catalogue import FILTER_KEYS, Command
from agent.operator_api.recovery import recovered_text, recovery_dry_run_text, results_text
from agent.runtime import AgentRuntime
from mbeans.access import (
    REALM,
    THROTTLED_ERROR,
    TOO_MANY_REQUESTS,
    Caller,
    client_address,
    client_of,
    retry_after,
)
from mbeans.errors import SecurityException
from mbeans.jolokia import jolokia_blueprint
from mbeans.jsonrpc import jsonrpc_blueprint
from mbeans.limits import MAX_BODY_BYTES, JsonTooDeepError, RequestTooLargeError, body_too_large, parse_json
from mbeans.names import NODE
from mbeans.prometheus import metrics_blueprint
from mbeans.registry import MBeanRegistry

log = logging.getLogger("ledger_agent.management")
F = TypeVar("F", bound=Callable[..., Any])


class BadRequestError(AgentError):
    """A management call with a missing or malformed field."""


SURFACE = "rest"  # what the audit log records of a call that came this way


def _json(empty: Any = None) -> Any:
    """The body as JSON within mbeans.limits' bounds (RequestTooLargeError 413, JsonTooDeepError
    400); None when it is not JSON, empty when there is none."""
    try:
        text = request.get_data(as_text=True)
    except RequestEntityTooLarge:
        raise body_too_large() from None
    if not text:
        return empty
    try:
        return parse_json(text)
    except ValueError:
        return None


def _body() -> dict[str, Any]:
    body = _json()
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def _optional_body() -> dict[str, Any]:
    """The body of a call whose fields are all optional (a verb's reason): none at all is {}."""
    body = _json(empty={})
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def _query_value(command: str, name: str, value: str, kind: str) -> Any:
    """A query string's value as the JSON the parameter (or filter key) takes."""
    try:
        if kind in ("seconds", "minAgeSeconds"):
            return float(value)
        if kind in ("limit", "batchSize", "minAttempts"):
            return int(value)
    except ValueError:
        raise FlowArgumentError(command, name, value, "a number") from None
    if kind in ("bool", "underCare"):
        if value.lower() not in ("true", "false"):
            raise FlowArgumentError(command, name, value, "true or false")
        return value.lower() == "true"
    return value


def _query(command: Command, *, filter_keys: bool = False) -> dict[str, Any]:
    """The query string as command's named arguments (the filter's keys go into its `filter`)."""
    params = {p.name: p.kind for p in command.params if not (filter_keys and p.kind == "flowFilter")}
    keys = dict(params, **({k: k for k in FILTER_KEYS} if filter_keys else {}))
    unknown = sorted(set(request.args) - set(keys))
    if unknown:
        raise BadRequestError(f"unknown query parameter(s) {', '.join(unknown)}; allowed: {', '.join(keys)}")
    arguments: dict[str, Any] = {}
    found: dict[str, Any] = {}
    for name, value in request.args.items():
        if value == "":
            continue
        converted = _query_value(command.name, name, value, keys[name])
        (arguments if name in params else found)[name] = converted
    if filter_keys:
        arguments["filter"] = found
    return arguments


def create_management_app(runtime: AgentRuntime) -> Flask:
    app = Flask("ledger_agent.management")
    app.url_map.strict_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    throttle = LoginThrottle(runtime.node.config.management_logins, runtime.node.clock)
    auth = ManagementAuth(runtime.node.config.management_users, throttle, runtime.node.store.audit)
    commands = NodeCommands(runtime)
    gate = CommandGate(runtime.node.store.audit, runtime.node.clock)
    registry = MBeanRegistry()
    register_agent_beans(registry, runtime, commands, gate)
    add_in_flight_attributes(registry.get(NODE), runtime.node.store.transactions, runtime.node.clock)
    if runtime.auto_recovery is not None:
        add_auto_recovery_attributes(registry.get(NODE), runtime.auto_recovery)
    add_ledger_recovery_monitoring(
        registry, runtime.ledger_recovery.log, runtime.node.store.checkpoints, runtime.node.clock
    )
    app.extensions["ledger_agent.mbeans"] = registry  # for tests and benchmarks that read the beans
    app.register_blueprint(jolokia_blueprint(registry, auth.principal))
    app.register_blueprint(jsonrpc_blueprint(registry, auth.principal))
    app.register_blueprint(metrics_blueprint(registry, auth.principal))
    node = runtime.node

    def authenticated(view: F) -> F:
        """Any management user; what the call needs beyond that is the gate's to check (start)."""

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = auth.principal(
                request.authorization, address=client_address(request.remote_addr), surface=SURFACE
            )
            if principal is None:
                response = jsonify(
                    error="AuthenticationRequired", message="management calls need credentials"
                )
                response.status_code = 401
                response.headers["WWW-Authenticate"] = REALM
                return response
            g.principal = principal  # for caller(): the password is checked once a request
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def caller() -> Caller:
        principal = g.principal  # set by @authenticated
        return Caller(principal, SURFACE, client_of(request.headers.get("User-Agent")))

    @app.errorhandler(AgentError)
    def agent_error(exc: AgentError) -> tuple[Response, int]:
        # A bad request is 400, an unknown party 404, a refusal by the ledger or the notary 409.
        bad = (
            BadRequestError
            | ConfigurationError
            | InvalidNameError
            | InvalidArgumentError
            | FlowArgumentError
            | JsonTooDeepError
            | SerializationError  # a malformed id or value in the request
        )
        status = 400 if isinstance(exc, bad) else 409
        if isinstance(exc, IdentityError | UnknownFlowError | FlowNotFoundError):
            status = 404
        if isinstance(exc, SecurityException):
            status = 403
        if isinstance(exc, RequestTooLargeError):
            status = 413
        return jsonify(error=type(exc).__name__, message=str(exc)), status

    @app.errorhandler(TooManyLoginAttemptsError)
    def backed_off(exc: TooManyLoginAttemptsError) -> tuple[Response, int, dict[str, str]]:
        # Raised by @authenticated before any password is checked: the address failed too many logins.
        return jsonify(error=THROTTLED_ERROR, message=str(exc)), TOO_MANY_REQUESTS, retry_after(exc)

    @app.errorhandler(DatabaseError)
    def store_failed(exc: DatabaseError) -> tuple[Response, int]:
        # The driver's text (tables, keys) stays in the log; the caller learns only that it failed.
        log.error("management call failed in the store: %s", exc)
        return jsonify(error="InternalError", message="internal error; see the agent's log"), 500

    @app.errorhandler(FlowTimeoutError)
    def still_running(exc: FlowTimeoutError) -> tuple[Response, int]:
        # Accepted, not failed: the flow goes on (it resumes even after a restart); its id says where.
        return jsonify(
            flowId=exc.flow_id,
            txId=None if exc.tx_id is None else str(exc.tx_id),
            status=exc.status.name,
            step=exc.step,
            waitingFor=exc.waiting_for,
            message=str(exc),
        ), 202

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        response = jsonify(error=type(exc).__name__, message=exc.description or exc.name)
        for header, value in exc.get_headers():  # a 405's Allow, a 401's challenge
            if header.lower() != "content-type":
                response.headers[header] = value
        return response, exc.code or 500

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("management call failed")
        return jsonify(error="InternalError", message="internal error; see the agent's log"), 500

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="UP", node=str(node.identity.name), role="notary" if node.notary else "node")

    @app.get("/ready")
    def ready() -> tuple[Response, int]:
        reasons = not_ready_reasons(runtime)
        answer = jsonify(
            status="NOT_READY" if reasons else "READY", node=str(node.identity.name), reasons=reasons
        )
        return answer, 503 if reasons else 200

    def start(command: NodeCommand, body: dict[str, Any]) -> Any:
        """The command for this request's caller, through the gate (its role, the audit log)."""
        return gate.run(command, body, caller())

    def token_flow(name: str) -> Response:
        try:
            tx_id = start(commands.flow(name), _body())
        except FlowArgumentError as exc:
            # These three routes answered BadRequestError before the catalogue; clients match on it.
            raise BadRequestError(str(exc)) from exc
        return jsonify(txId=tx_id)

    @app.post("/api/flows/issue")
    @authenticated
    def issue() -> Response:
        return token_flow("IssueTokensFlow")

    @app.post("/api/flows/pay")
    @authenticated
    def pay() -> Response:
        return token_flow("PayTokensFlow")

    @app.post("/api/flows/exit")
    @authenticated
    def exit_tokens() -> Response:
        return token_flow("ExitTokensFlow")

    @app.get("/api/vault")
    @authenticated
    def vault() -> Response:
        return jsonify(
            node=str(node.identity.name),
            holdings=[
                {"currency": h.currency, "issuer": str(h.issuer), "amount": h.amount, "states": h.states}
                for h in runtime.tokens.holdings()
            ],
            transactions={s.name: node.store.transactions.count_transactions(s) for s in TransactionStatus},
        )

    @app.get("/api/transactions/<tx_id>")
    @authenticated
    def transaction(tx_id: str) -> tuple[Response, int]:
        stored = node.store.transactions.get_stored(SecureHash.parse(tx_id, "tx_id"))
        if stored is None:
            return jsonify(error="TransactionNotFoundError", message=f"transaction {tx_id} not found"), 404
        return jsonify(
            txId=str(stored.stx.id),
            status=stored.status.name,
            timestamp=stored.timestamp.isoformat(),
            stateMachineRunId=stored.state_machine_run_id,
            # Brought back by Ledger Recovery (or a peer's push), not traded anew here.
            recovered=str(stored.stx.id) in node.store.recovery.recovered([str(stored.stx.id)]),
        ), 200

    @app.post("/api/flows/start/<name>")
    @authenticated
    def start_flow(name: str) -> Response:
        command = commands.flow(name)
        body = _json(empty={})
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object of the flow's named arguments")
        unit = command.command.unit
        result = start(command, body)
        if unit:
            result = None  # what Corda's flow returns, whatever the agent's does
        text = f"Flow completed with result: {result_text(result, unit=unit)}"
        return flow_reply(name, result, text)

    def verb(name: str, flow_id: str, answer: str) -> Response:
        reason = _optional_body().get("reason")
        done = start(commands[name], {"id": flow_id, "reason": reason})
        return jsonify({"id": flow_id, answer: done})

    @app.post("/api/flows/kill/<flow_id>")
    @authenticated
    def kill_flow(flow_id: str) -> Response:
        return verb("killFlow", flow_id, "killed")

    @app.post("/api/flows/pause/<flow_id>")
    @authenticated
    def pause_flow(flow_id: str) -> Response:
        return verb("pauseFlow", flow_id, "paused")

    @app.post("/api/flows/resume/<flow_id>")
    @authenticated
    def resume_flow(flow_id: str) -> Response:
        return verb("resumeFlow", flow_id, "resumed")

    @app.post("/api/flows/retry/<flow_id>")
    @authenticated
    def retry_flow(flow_id: str) -> Response:
        return verb("retryFlow", flow_id, "retried")

    def job_reply(job: dict[str, Any]) -> tuple[Response, int]:
        """A started job: 202, and where to follow it."""
        response = jsonify(job)
        response.headers["Location"] = f"/api/flows/bulk/{job['jobId']}"
        return response, 202

    @app.post(
        "/api/flows/<any(pauseAll, pauseAllHospitalized, retryAllPaused, retryAllPausedHospitalized):name>"
    )
    @authenticated
    def corda_bulk_verb(name: str) -> tuple[Response, int]:
        return job_reply(start(commands[name], {"reason": _optional_body().get("reason")}))

    @app.post("/api/flows/bulk")
    @authenticated
    def bulk_action() -> tuple[Response, int]:
        answer = start(commands["bulkAction"], _body())
        return (jsonify(answer), 200) if answer.get("dryRun") else job_reply(answer)

    @app.get("/api/flows/bulk")
    @authenticated
    def bulk_jobs() -> Response:
        return jsonify(start(commands["listBulkJobs"], {}))

    @app.get("/api/flows/bulk/<job_id>")
    @authenticated
    def bulk_job(job_id: str) -> tuple[Response, int]:
        job = start(commands["bulkJob"], {"id": job_id})
        if job is None:
            return jsonify(error="BulkJobNotFoundError", message=f"no bulk job with id {job_id}"), 404
        return jsonify(job), 200

    @app.get("/api/hospital")
    @authenticated
    def patients() -> Response:
        listing = commands["listPatients"]
        return jsonify(start(listing, _query(listing.command, filter_keys=True)))

    @app.get("/api/hospital/<flow_id>")
    @authenticated
    def patient(flow_id: str) -> tuple[Response, int]:
        found = start(commands["flowHistory"], {"id": flow_id})
        if found is None:
            raise FlowNotFoundError(flow_id)
        return jsonify(found), 200

    @app.get("/api/audit")
    @authenticated
    def audit_log() -> Response:
        reading = commands["auditLog"]
        return jsonify(start(reading, _query(reading.command)))

    @app.get("/api/ledgersync")
    @authenticated
    def ledgersync_state() -> Response:
        sync = runtime.ledgersync
        if sync is None:
            return jsonify(enabled=False)
        report = sync.report
        counts = sync.counts()
        return jsonify(
            enabled=True,
            ledgerGraphIsInitialized=report.is_initialized,
            ledgerGraphIsSelfConsistent=report.is_self_consistent,
            ledgerGraphErrors=report.errors,
            ledgerGraphErrorCount=report.error_count,
            numberOfScheduledReconciliations=counts.number_of_scheduled_reconciliations,
            numberOfReconciliationsInProgress=counts.number_of_reconciliations_in_progress,
            numberOfFailedReconciliations=counts.number_of_failed_reconciliations,
            numberOfReconciliationsWithDifferences=counts.number_of_reconciliations_with_differences,
            numberOfReconciliationsWithoutDifferences=counts.number_of_reconciliations_without_differences,
            failedParties=counts.failed_parties,
            partiesWithDifference=counts.parties_with_difference,
        )

    # Finality recovery: the operation's named arguments as the body, its answer with the reference's text.
    recover_one = {"recoverFinalityFlow": "id", "recoverFinalityFlowByTxnId": "txnId"}
    recover_many = (
        "recoverFinalityFlows",
        "recoverAllFinalityFlows",
        "recoverFinalityFlowByTxnIds",
        "recoverFinalityFlowsMatching",
    )

    @app.post(f"/api/finality/<any({', '.join([*recover_one, *recover_many])}):name>")
    @authenticated
    def recover_finality(name: str) -> Response:
        body = _optional_body()
        result = start(commands[name], body)
        if name not in recover_one:
            return jsonify(results=result, text=results_text(result))
        key = recover_one[name]
        target = str(body[key])
        flow_id = target
        if key == "txnId" and result:  # the reference names the recovered flow, by its id
            info = start(commands["getFlowTransactionByTxnId"], {"txnId": target})
            flow_id = (info or {}).get("stateMachineRunId") or target
        return jsonify(
            {key: target, "recovered": result, "text": recovered_text(target, result, flow_id=flow_id)}
        )

    @app.post("/api/finality/recoverFinalityDryRun")
    @authenticated
    def recover_finality_dry_run() -> Response:
        plans = start(commands["recoverFinalityDryRun"], _optional_body())
        return jsonify(dryRun=True, plans=plans, text=recovery_dry_run_text(plans))

    @app.post("/api/finality/recoverFinalityJob")
    @authenticated
    def recover_finality_job() -> tuple[Response, int]:
        job = start(commands["recoverFinalityJob"], _optional_body())
        response = jsonify(job)
        response.headers["Location"] = f"/api/finality/jobs/{job['jobId']}"
        return response, 202

    @app.get("/api/finality/jobs")
    @authenticated
    def recovery_jobs() -> Response:
        return jsonify(start(commands["listRecoveryJobs"], {}))

    @app.get("/api/finality/jobs/<job_id>")
    @authenticated
    def recovery_job(job_id: str) -> tuple[Response, int]:
        job = start(commands["recoveryJob"], {"id": job_id})
        if job is None:
            return jsonify(error="JobNotFoundError", message=f"no finality recovery job {job_id}"), 404
        return jsonify(job), 200

    @app.get("/api/finality/<any(getFlowTransaction, getFlowTransactionByTxnId):name>/<key>")
    @authenticated
    def flow_transaction(name: str, key: str) -> tuple[Response, int]:
        argument = "flowId" if name == "getFlowTransaction" else "txnId"
        info = start(commands[name], {argument: key})
        if info is None:
            what = f"flow {key}" if argument == "flowId" else f"transaction {key}"
            return jsonify(
                error="TransactionNotFoundError", message=f"no finality transaction for {what}"
            ), 404
        return jsonify(info), 200

    # Ledger Recovery (docs/ledger-recovery.md): the body is LedgerRecoveryFlow's parameters (either
    # shape) with an optional timeout; the summary when it ends within it, else 202 with its flowId.
    @app.post("/api/recovery/<any(ledgerRecovery, recover):name>")
    @authenticated
    def ledger_recovery(name: str) -> Response:
        command = "LedgerRecoveryFlow" if name == "ledgerRecovery" else "recover"
        return jsonify(start(commands[command], _optional_body()))

    @app.get("/api/recovery/results/<flow_id>")
    @authenticated
    def ledger_recovery_results(flow_id: str) -> Response:
        return jsonify(flowId=flow_id, results=start(commands["ledgerRecoveryResults"], {"id": flow_id}))

    @app.get("/api/recovery/progress")
    @authenticated
    def ledger_recovery_progress() -> Response:
        return jsonify(start(commands["ledgerRecoveryProgress"], {}))

    @app.get("/api/recovery/heldByNoPeer")
    @authenticated
    def held_by_no_peer() -> Response:
        return jsonify(start(commands["heldByNoPeer"], {}))

    @app.get("/api/flows")
    @authenticated
    def flows() -> Response:
        # The query's keys are listFlows's parameters (?status=FAILED&flowName=FinalityFlow&olderThan=60).
        listing = commands["listFlows"]
        return jsonify(start(listing, _query(listing.command)))

    return app

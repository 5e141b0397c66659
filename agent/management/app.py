"""The management endpoint as one WSGI app: /health for probes, the REST API under /api, and the MBean
adapters (JSON-RPC /rpc, Jolokia /jolokia, Prometheus /metrics) over the agent's beans.

The REST API starts the catalogue's commands (agent.management.commands): every flow by name at
`POST /api/flows/start/<Flow>`, the token flows also at their own routes, and the engine's verbs
(`GET /api/flows`, `POST /api/flows/{kill,pause,resume}/<id>`); the role each needs is the catalogue's.
Every /api call needs HTTP basic auth with a user from node.conf's managementUsers. Errors are JSON
{"error": <named error>, "message": ...}; never a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from agent.errors import AgentError, ConfigurationError, DatabaseError, IdentityError, InvalidNameError
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowTimeoutError
from agent.ledger.hashing import SecureHash
from agent.ledger.vault import TransactionStatus
from agent.management.auth import ManagementAuth
from agent.management.beans import register_agent_beans
from agent.management.commands import (
    FlowArgumentError,
    NodeCommand,
    NodeCommands,
    UnknownFlowError,
    result_text,
)
from agent.management.flow_replies import flow_reply
from agent.management.recovery_routes import recovery_blueprint
from agent.runtime import AgentRuntime
from mbeans.access import REALM, require_action
from mbeans.errors import SecurityException
from mbeans.jolokia import jolokia_blueprint
from mbeans.jsonrpc import jsonrpc_blueprint
from mbeans.prometheus import metrics_blueprint
from mbeans.registry import MBeanRegistry

log = logging.getLogger("ledger_agent.management")
F = TypeVar("F", bound=Callable[..., Any])


class BadRequestError(AgentError):
    """A management call with a missing or malformed field."""


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def create_management_app(runtime: AgentRuntime) -> Flask:
    app = Flask("ledger_agent.management")
    app.url_map.strict_slashes = False
    auth = ManagementAuth(runtime.node.config.management_users)
    commands = NodeCommands(runtime)
    registry = MBeanRegistry()
    register_agent_beans(registry, runtime, commands)
    app.extensions["ledger_agent.mbeans"] = registry  # for tests and benchmarks that read the beans
    app.register_blueprint(jolokia_blueprint(registry, auth.principal))
    app.register_blueprint(jsonrpc_blueprint(registry, auth.principal))
    app.register_blueprint(metrics_blueprint(registry, auth.principal))
    app.register_blueprint(recovery_blueprint(runtime, auth))  # finality recovery, until the catalogue has it
    node = runtime.node

    def guarded(view: F, *, act: bool) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = auth.principal(request.authorization)
            if principal is None:
                response = jsonify(
                    error="AuthenticationRequired", message="management calls need credentials"
                )
                response.status_code = 401
                response.headers["WWW-Authenticate"] = REALM
                return response
            if act:
                require_action(principal, f"{request.method} {request.path}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def authenticated(view: F) -> F:
        """Any management user: reads."""
        return guarded(view, act=False)

    def operator(view: F) -> F:
        """Users with the operator role: calls that change something."""
        return guarded(view, act=True)

    @app.errorhandler(AgentError)
    def agent_error(exc: AgentError) -> tuple[Response, int]:
        # A bad request is 400, an unknown party 404, a refusal by the ledger or the notary 409.
        bad = BadRequestError | ConfigurationError | InvalidNameError | FlowArgumentError
        status = 400 if isinstance(exc, bad) else 409
        if isinstance(exc, IdentityError | UnknownFlowError):
            status = 404
        if isinstance(exc, SecurityException):
            status = 403
        return jsonify(error=type(exc).__name__, message=str(exc)), status

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
            status=FlowStatus.RUNNABLE.name,
            step=exc.step,
            waitingFor=exc.waiting_for,
            message=str(exc),
        ), 202

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        return jsonify(error=type(exc).__name__, message=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def internal_error(exc: Exception) -> tuple[Response, int]:
        log.exception("management call failed")
        return jsonify(error="InternalError", message="internal error; see the agent's log"), 500

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="UP", node=str(node.identity.name), role="notary" if node.notary else "node")

    def start(command: NodeCommand, body: dict[str, Any]) -> Any:
        """The command, once the caller's role allows it (the catalogue's `act`)."""
        if command.command.act:
            principal = auth.principal(request.authorization)
            assert principal is not None  # checked by @authenticated
            require_action(principal, command.command.name)
        return command.start(body)

    def token_flow(name: str) -> Response:
        try:
            tx_id = start(commands.flow(name), _body())
        except FlowArgumentError as exc:
            # These three routes answered BadRequestError before the catalogue; clients match on it.
            raise BadRequestError(str(exc)) from exc
        return jsonify(txId=tx_id)

    @app.post("/api/flows/issue")
    @operator
    def issue() -> Response:
        return token_flow("IssueTokensFlow")

    @app.post("/api/flows/pay")
    @operator
    def pay() -> Response:
        return token_flow("PayTokensFlow")

    @app.post("/api/flows/exit")
    @operator
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
        ), 200

    @app.post("/api/flows/start/<name>")
    @authenticated
    def start_flow(name: str) -> Response:
        command = commands.flow(name)
        body = request.get_json(force=True, silent=True) if request.data else {}
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object of the flow's named arguments")
        unit = command.command.unit
        result = start(command, body)
        if unit:
            result = None  # what Corda's flow returns, whatever the agent's does
        text = f"Flow completed with result: {result_text(result, unit=unit)}"
        return flow_reply(name, result, text)

    def verb(name: str, flow_id: str, answer: str) -> Response:
        done = start(commands[name], {"id": flow_id})
        return jsonify({"id": flow_id, answer: done})

    @app.post("/api/flows/kill/<flow_id>")
    @operator
    def kill_flow(flow_id: str) -> Response:
        return verb("killFlow", flow_id, "killed")

    @app.post("/api/flows/pause/<flow_id>")
    @operator
    def pause_flow(flow_id: str) -> Response:
        return verb("pauseFlow", flow_id, "paused")

    @app.post("/api/flows/resume/<flow_id>")
    @operator
    def resume_flow(flow_id: str) -> Response:
        return verb("resumeFlow", flow_id, "resumed")

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

    @app.get("/api/flows")
    @authenticated
    def flows() -> Response:
        # The query's keys are listFlows's parameters (?status=FAILED&flowName=FinalityFlow&olderThan=60).
        listing = commands["listFlows"].command
        arguments: dict[str, Any] = {}
        for param in listing.params:
            value: Any = request.args.get(param.name) or None
            if value is not None and param.kind == "seconds":
                try:
                    value = float(value)
                except ValueError:
                    raise FlowArgumentError(listing.name, param.name, value, param.allowed) from None
            arguments[param.name] = value
        unknown = sorted(set(request.args) - {p.name for p in listing.params})
        if unknown:
            raise BadRequestError(
                f"unknown query parameter(s) {', '.join(unknown)}; allowed: "
                + ", ".join(p.name for p in listing.params)
            )
        return jsonify(start(commands["listFlows"], arguments))

    return app

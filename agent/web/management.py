"""The management endpoint: /health for probes, and a small authenticated API to start token flows
and read the vault and flows (the full management plane, MBeans and Jolokia, comes later).

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
from agent.flows.catalogue import (
    FlowArgumentError,
    UnknownFlowError,
    ledgersync_flows,
    result_text,
)
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowNotFoundError, FlowTimeoutError
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.vault import TransactionStatus
from agent.runtime import AgentRuntime
from agent.web.auth import REALM, ManagementAuth
from agent.web.flow_replies import flow_reply
from mbeans.access import require_action
from mbeans.agent_beans import register_agent_beans
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


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequestError(f"field {name!r}: expected {kind.__name__}, got {value!r}")
    return value


def _name(value: Any, field: str) -> X500Name:
    if not isinstance(value, str):
        raise BadRequestError(f"field {field!r}: expected an X.500 name, got {value!r}")
    return X500Name.parse(value)


DEFAULT_FLOW_WAIT_S = 60.0
MAX_FLOW_WAIT_S = 3600.0


def _wait(body: dict[str, Any]) -> float:
    """How long a call that starts a flow waits for it: the body's "timeout" in seconds (default 60)."""
    value = body.get("timeout", DEFAULT_FLOW_WAIT_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_FLOW_WAIT_S:
        raise BadRequestError(
            f"field 'timeout': {value!r} is not allowed; seconds from 0 to {MAX_FLOW_WAIT_S:.0f}"
        )
    return float(value)


def create_management_app(runtime: AgentRuntime) -> Flask:
    app = Flask("ledger_agent.management")
    app.url_map.strict_slashes = False
    auth = ManagementAuth(runtime.node.config.management_users)
    registry = MBeanRegistry()
    register_agent_beans(registry, runtime)
    # The other management adapters (JSON-RPC, Jolokia, /metrics) find the beans and the users here.
    app.extensions["ledger_agent.mbeans"] = registry
    app.extensions["ledger_agent.auth"] = auth
    app.register_blueprint(jolokia_blueprint())
    app.register_blueprint(jsonrpc_blueprint(registry, auth.principal))
    app.register_blueprint(metrics_blueprint(registry, auth))
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

    @app.post("/api/flows/issue")
    @operator
    def issue() -> Response:
        body = _body()
        holdings = []
        for entry in _field(body, "holdings", list):
            if not isinstance(entry, dict):
                raise BadRequestError(f"holdings[]: expected objects {{owner, amount}}, got {entry!r}")
            holdings.append((_name(entry.get("owner"), "holdings[].owner"), _field(entry, "amount", int)))
        observers = [_name(o, "observers[]") for o in body.get("observers", [])]
        stx = runtime.tokens.issue(holdings, _field(body, "currency", str), observers, timeout=_wait(body))
        return jsonify(txId=str(stx.id))

    @app.post("/api/flows/pay")
    @operator
    def pay() -> Response:
        body = _body()
        observers = [_name(o, "observers[]") for o in body.get("observers", [])]
        stx = runtime.tokens.pay(
            _name(body.get("to"), "to"),
            _field(body, "amount", int),
            _field(body, "currency", str),
            _name(body.get("issuer"), "issuer"),
            observers,
            timeout=_wait(body),
        )
        return jsonify(txId=str(stx.id))

    @app.post("/api/flows/exit")
    @operator
    def exit_tokens() -> Response:
        body = _body()
        stx = runtime.tokens.exit(
            _field(body, "amount", int), _field(body, "currency", str), timeout=_wait(body)
        )
        return jsonify(txId=str(stx.id))

    @app.get("/api/vault")
    @authenticated
    def vault() -> Response:
        return jsonify(
            node=str(node.identity.name),
            holdings=[
                {"currency": h.currency, "issuer": str(h.issuer), "amount": h.amount, "states": h.states}
                for h in runtime.tokens.holdings()
            ],
            transactions={s.name: node.store.count_transactions(s) for s in TransactionStatus},
        )

    @app.get("/api/transactions/<tx_id>")
    @authenticated
    def transaction(tx_id: str) -> tuple[Response, int]:
        stored = node.store.get_stored(SecureHash.parse(tx_id, "tx_id"))
        if stored is None:
            return jsonify(error="TransactionNotFoundError", message=f"transaction {tx_id} not found"), 404
        return jsonify(
            txId=str(stored.stx.id),
            status=stored.status.name,
            timestamp=stored.timestamp.isoformat(),
            stateMachineRunId=stored.state_machine_run_id,
        ), 200

    catalogue = ledgersync_flows(runtime.ledgersync) if runtime.ledgersync is not None else {}

    @app.post("/api/flows/start/<name>")
    @authenticated
    def start_flow(name: str) -> Response:
        found = catalogue.get(name)
        if found is None:
            offered = ", ".join(sorted(catalogue)) or "none (LedgerSync is not enabled on this node)"
            raise UnknownFlowError(f"no flow {name!r} on this node; offered: {offered}")
        flow = found.flow
        if flow.act:
            principal = auth.principal(request.authorization)
            assert principal is not None  # checked by @authenticated
            require_action(principal, name)
        body = request.get_json(force=True, silent=True) if request.data else {}
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a JSON object of the flow's named arguments")
        result = found.start(body)
        if flow.unit:
            result = None
        text = f"Flow completed with result: {result_text(result, unit=flow.unit)}"
        return flow_reply(name, result, text)

    @app.post("/api/flows/kill/<flow_id>")
    @operator
    def kill_flow(flow_id: str) -> Response:
        killed = runtime.ledgersync.kill_flow(flow_id) if runtime.ledgersync is not None else False
        if not killed:
            try:
                killed = runtime.engine.kill(flow_id)
            except FlowNotFoundError:
                killed = False
        return jsonify(id=flow_id, killed=killed)

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
        wanted = request.args.get("status") or ""
        status = FlowStatus[wanted] if wanted in FlowStatus.__members__ else None
        if wanted and status is None:
            raise BadRequestError(f"status {wanted!r}: allowed {', '.join(FlowStatus.__members__)}")
        return jsonify(
            [
                {
                    "flowId": cp.flow_id,
                    "flowName": cp.flow_name,
                    "status": cp.status.name,
                    "step": cp.progress_step,
                    "txId": None if cp.tx_id is None else str(cp.tx_id),
                    "counterparties": [str(c) for c in cp.counterparties],
                    "error": cp.error,
                    "waitingFor": runtime.engine.waiting_for(cp.flow_id),
                }
                for cp in node.store.iter_checkpoints(status)
            ]
        )

    return app

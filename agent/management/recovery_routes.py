"""Finality recovery over REST: a provisional surface for issue 14's first slice.

Each route is one operation of Corda's FlowRPCOps or NodeFlowStatusRpcOps, under its own name, so
that the catalogue of operator commands (a later slice: the shell's `flow recoverFinality ...`,
JSON-RPC, Jolokia) can take them over unchanged. Reads need any management user; recoveries the
operator role. Bodies are JSON; `forceRecover` (default false), `timeout` in seconds (default 60:
a recovery still running then is answered 202 with its flow id, and goes on) and `reason` (text, for
the audit log) apply to each. Every recovery call, refused, failed or done, is written to the audit
log (node_audit_log) with the caller, the operation, its arguments and the answer's status.

    POST /api/finality/recoverFinalityFlow            {"id"}                    -> {"id", "recovered"}
    POST /api/finality/recoverFinalityFlows           {"ids": [...]}            -> {"results": {id: bool}}
    POST /api/finality/recoverAllFinalityFlows        {}                        -> {"results": {id: bool}}
    POST /api/finality/recoverFinalityFlowByTxnId     {"txnId"}                 -> {"txnId", "recovered"}
    POST /api/finality/recoverFinalityFlowByTxnIds    {"txnIds": [...]}         -> {"results": {txnId: bool}}
    POST /api/finality/recoverFinalityFlowsMatching   {"flowStartFromTime", "flowStartUntilTime",
                                                       "initiatedBy", "counterParties"} -> {"results"}
    GET  /api/finality/getFlowTransaction/<flowId>, /api/finality/getFlowTransactionByTxnId/<txnId>
                                                     -> FlowTransactionInfo, or 404

Every answer also has `text`, the line the reference's shell prints ("Recovered finality flow [id]",
"Failed to recover finality flow id"). A FlowRecoveryException is 409 with its message.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import BadRequest

from agent.errors import FlowRecoveryException
from agent.finality.queries import FlowRecoveryQuery, FlowTimeWindow, FlowTransactionInfo
from agent.hospital.records import AuditEntry
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.management.auth import ManagementAuth
from agent.runtime import AgentRuntime
from mbeans.access import REALM, Caller, require_action
from mbeans.caller import client_of

DEFAULT_TIMEOUT_S = 60.0
log = logging.getLogger("ledger_agent.audit")


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True) if request.data else {}
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _flag(body: dict[str, Any]) -> bool:
    value = body.get("forceRecover", False)
    if not isinstance(value, bool):
        raise BadRequest("forceRecover must be true or false")
    return value


def _timeout(body: dict[str, Any]) -> float:
    value = body.get("timeout", DEFAULT_TIMEOUT_S)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 3600:
        raise BadRequest("timeout must be a number of seconds from 0 to 3600")
    return float(value)


def _strings(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{key} must be a list of strings")
    return value


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key} must be a string")
    return value


def _time(value: Any, key: str) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadRequest(f"{key}: {value!r} is not an ISO-8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _query(body: dict[str, Any]) -> FlowRecoveryQuery:
    start = _time(body.get("flowStartFromTime"), "flowStartFromTime")
    until = _time(body.get("flowStartUntilTime"), "flowStartUntilTime")
    initiated = body.get("initiatedBy")
    initiated_by: X500Name | list[X500Name] | None = None
    if isinstance(initiated, str):
        initiated_by = X500Name.parse(initiated)
    elif initiated is not None:
        initiated_by = [X500Name.parse(n) for n in _strings(body, "initiatedBy")]
    parties = None if body.get("counterParties") is None else _strings(body, "counterParties")
    try:
        return FlowRecoveryQuery(
            timeframe=None if start is None and until is None else FlowTimeWindow(start, until),
            initiated_by=initiated_by,
            counter_parties=None if parties is None else [X500Name.parse(n) for n in parties],
        )
    except FlowRecoveryException as exc:  # no criterion: the caller's mistake, not a refusal
        raise BadRequest(str(exc)) from exc


def info_json(info: FlowTransactionInfo) -> dict[str, Any]:
    return {
        "stateMachineRunId": info.state_machine_run_id,
        "txId": str(info.tx_id),
        "status": info.status.name,
        "timestamp": info.timestamp.isoformat(),
        "initiator": None if info.initiator is None else str(info.initiator),
        "peers": None if info.peers is None else sorted(str(p) for p in info.peers),
    }


def _one(key: str, value: str, recovered: bool) -> Response:
    text = f"Recovered finality flow [{value}]" if recovered else f"Failed to recover finality flow {value}"
    return jsonify({key: value, "recovered": recovered, "text": text})


def _many(results: dict[Any, bool]) -> Response:
    plain = {str(k): v for k, v in results.items()}
    listed = ", ".join(f"[{k}]={str(v).lower()}" for k, v in plain.items())
    text = f"Recovered finality flow(s)\nResults: [{listed}]"
    return jsonify(results=plain, text=text)


def recovery_blueprint(runtime: AgentRuntime, auth: ManagementAuth) -> Blueprint:
    blueprint = Blueprint("finality_recovery", __name__, url_prefix="/api/finality")
    recovery = runtime.recovery

    @blueprint.before_request
    def authorise() -> Response | None:
        principal = auth.principal(request.authorization)
        if principal is None:
            response = jsonify(error="AuthenticationRequired", message="management calls need credentials")
            response.status_code = 401
            response.headers["WWW-Authenticate"] = REALM
            return response
        g.recovery_caller = Caller(principal, "rest", client_of(request.headers.get("User-Agent")))
        if request.method != "GET":
            require_action(principal, f"{request.method} {request.path}")
        return None

    @blueprint.after_request
    def audit(response: Response) -> Response:
        caller: Caller | None = g.get("recovery_caller")
        if request.method == "GET" or caller is None:
            return response
        body = request.get_json(force=True, silent=True) if request.data else {}
        body = body if isinstance(body, dict) else {}
        reason = body.get("reason")
        answer = response.get_json(silent=True) or {}
        said = answer.get("text") or answer.get("message") or ""
        entry = AuditEntry(
            at=runtime.node.clock.now(),
            user=caller.principal.username,
            role=caller.principal.role.value,
            action=request.path.rsplit("/", 1)[-1],
            reason=reason if isinstance(reason, str) else None,
            target=json.dumps({k: v for k, v in body.items() if k != "reason"}, sort_keys=True)[:2000],
            outcome=f"HTTP {response.status_code}: {said}"[:2000],
            surface=caller.via,
        )
        try:
            runtime.node.store.audit.append(entry)
        except Exception:  # the answer stands; an operator must see that its record is missing
            log.error("could not write the audit log's entry %s", entry, exc_info=True)
        return response

    @blueprint.post("/recoverFinalityFlow")
    def recover_finality_flow() -> Response:
        body = _body()
        flow_id = _string(body, "id")
        done = recovery.recover_finality_flow(flow_id, _flag(body), timeout=_timeout(body))
        return _one("id", flow_id, done)

    @blueprint.post("/recoverFinalityFlows")
    def recover_finality_flows() -> Response:
        body = _body()
        ids = _strings(body, "ids")
        return _many(recovery.recover_finality_flows(ids, _flag(body), timeout=_timeout(body)))

    @blueprint.post("/recoverAllFinalityFlows")
    def recover_all_finality_flows() -> Response:
        body = _body()
        return _many(recovery.recover_all_finality_flows(_flag(body), timeout=_timeout(body)))

    @blueprint.post("/recoverFinalityFlowByTxnId")
    def recover_by_txn_id() -> Response:
        body = _body()
        tx_id = SecureHash.parse(_string(body, "txnId"), "txnId")
        done = recovery.recover_finality_flow_by_txn_id(tx_id, _flag(body), timeout=_timeout(body))
        return _one("txnId", str(tx_id), done)

    @blueprint.post("/recoverFinalityFlowByTxnIds")
    def recover_by_txn_ids() -> Response:
        body = _body()
        tx_ids = [SecureHash.parse(t, "txnIds[]") for t in _strings(body, "txnIds")]
        return _many(recovery.recover_finality_flow_by_txn_ids(tx_ids, _flag(body), timeout=_timeout(body)))

    @blueprint.post("/recoverFinalityFlowsMatching")
    def recover_matching() -> Response:
        body = _body()
        query = _query(body)
        return _many(recovery.recover_finality_flows_matching(query, _flag(body), timeout=_timeout(body)))

    def found(info: FlowTransactionInfo | None, what: str) -> tuple[Response, int]:
        if info is None:
            return jsonify(
                error="TransactionNotFoundError", message=f"no finality transaction for {what}"
            ), 404
        return jsonify(info_json(info)), 200

    @blueprint.get("/getFlowTransaction/<flow_id>")
    def get_flow_transaction(flow_id: str) -> tuple[Response, int]:
        return found(recovery.get_flow_transaction(flow_id), f"flow {flow_id}")

    @blueprint.get("/getFlowTransactionByTxnId/<tx_id>")
    def get_flow_transaction_by_txn_id(tx_id: str) -> tuple[Response, int]:
        parsed = SecureHash.parse(tx_id, "txnId")
        return found(recovery.get_flow_transaction_by_txn_id(parsed), f"transaction {tx_id}")

    return blueprint

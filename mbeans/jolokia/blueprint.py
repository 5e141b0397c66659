"""/jolokia over HTTP: POST (one request or a bulk array) and GET URLs, HTTP basic auth."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import PathConverter

from agent.errors import TooManyLoginAttemptsError
from mbeans.access import (
    REALM,
    TOO_MANY_REQUESTS,
    Authenticator,
    Caller,
    client_address,
    client_of,
    retry_after,
)
from mbeans.errors import IllegalArgumentException
from mbeans.jolokia.agent import SURFACE, JolokiaAgent
from mbeans.jolokia.changes import TreeChanges
from mbeans.jolokia.config import MIME_TYPES, URL_KEYS
from mbeans.jolokia.urls import get_request, split_path, split_raw_uri_path, trimmed
from mbeans.limits import (
    MAX_BULK,
    MAX_RESPONSE_BYTES,
    RequestTooLargeError,
    body_too_large,
    bulk_too_large,
    parse_json,
)
from mbeans.registry import MBeanRegistry


class _AnyPath(PathConverter):
    regex = r"[^/][\s\S]*?"


def _raw_elements(prefix: str) -> list[str]:
    """The GET path's elements, read from the raw URI: werkzeug's request.path has decoded %2F."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        path = urlsplit(raw).path if "://" in raw else raw.partition("?")[0]
        # The raw URI is latin-1 per WSGI; its %-escapes are the client's, still to decode.
        if path.startswith(prefix):
            return split_raw_uri_path(path[len(prefix) :])
    return trimmed(split_path(request.path[len(prefix) :] if request.path.startswith(prefix) else ""))


def mime_type(asked: Any, accept: str | None) -> str:
    """The answer's Content-Type: application/json, as Jolokia agents answer since 2.1 (jolokia.js 2
    parses nothing else); text/plain (1.x's default) when mimeType asks for it, or when no mimeType
    is given and Accept takes text/plain but not JSON. Any other mimeType gives the default."""
    if asked in MIME_TYPES:
        return str(asked)
    if accept:
        ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
        if "text/plain" in ranges and not {"application/json", "application/*", "*/*"} & set(ranges):
            return "text/plain"
    return "application/json"


def _answer(body: Any, config: Mapping[str, Any]) -> Response:
    mime = mime_type(config.get("mimeType"), request.headers.get("Accept"))
    # A value JSON cannot carry is shown as text, as Jolokia falls back to toString().
    return Response(json.dumps(body, default=str), status=200, mimetype=mime)


def _payload() -> Any:
    """The POST body as JSON, within limits' bounds (RequestTooLargeError names the one passed)."""
    try:
        text = request.get_data(as_text=True)
    except RequestEntityTooLarge:
        raise body_too_large() from None
    payload = parse_json(text)
    if isinstance(payload, list) and len(payload) > MAX_BULK:
        raise bulk_too_large(len(payload), "bulk request")
    return payload


def _bulk(agent: JolokiaAgent, payload: list[Any], caller: Caller, config: Mapping[str, Any]) -> list[Any]:
    """A bulk's answers in order; once they pass MAX_RESPONSE_BYTES, the rest are not run and each
    is answered with an error that says so."""
    answers: list[Any] = []
    size = 0
    for i, req in enumerate(payload):
        if size > MAX_RESPONSE_BYTES:
            skipped = RequestTooLargeError(
                f"the bulk's answers passed {MAX_RESPONSE_BYTES} bytes at request {i - 1}: "
                "this one was not run; ask for fewer at a time"
            )
            answers.append(agent.error(skipped, req, config))
            continue
        answer = agent.handle(req, caller, config)
        size += len(json.dumps(answer, default=str))
        answers.append(answer)
    return answers


def jolokia_blueprint(registry: MBeanRegistry, authenticate: Authenticator) -> Blueprint:
    """/jolokia: Jolokia's protocol for every user of node.conf's managementUsers (HTTP basic auth)."""
    blueprint = Blueprint("jolokia", __name__)
    changes = TreeChanges(time.time())  # when list's tree last changed, for ifModifiedSince

    def serve(rest: str = "") -> Response:
        del rest  # the raw URI is read instead: werkzeug has decoded %2F in it
        url_config = {k: request.args[k] for k in URL_KEYS if k in request.args}
        try:
            principal = authenticate(
                request.authorization, address=client_address(request.remote_addr), surface=SURFACE
            )
        except TooManyLoginAttemptsError as exc:
            # Jolokia's error shape, with the HTTP status too: a client that cannot log in cannot read
            # a JSON body's status any more than a 401's.
            body = {
                "status": TOO_MANY_REQUESTS,
                "error_type": "java.lang.SecurityException",
                "error": f"java.lang.SecurityException : {exc}",
            }
            response = _answer(body, url_config)
            response.status_code = TOO_MANY_REQUESTS
            response.headers.update(retry_after(exc))
            return response
        if principal is None:
            body = {
                "status": 401,
                "error_type": "java.lang.SecurityException",
                "error": "java.lang.SecurityException : Jolokia calls need credentials (HTTP basic auth)",
            }
            response = _answer(body, url_config)
            response.status_code = 401
            response.headers["WWW-Authenticate"] = REALM
            return response
        agent = JolokiaAgent(registry, changes=changes, url=request.host_url.rstrip("/") + "/jolokia")
        caller = Caller(principal, SURFACE, client_of(request.headers.get("User-Agent")))
        if request.method == "POST":
            try:
                payload = _payload()
            except (IllegalArgumentException, ValueError) as exc:
                failed = (
                    exc
                    if isinstance(exc, IllegalArgumentException)
                    else IllegalArgumentException(f"the body is not valid JSON: {exc}")
                )
                return _answer(agent.error(failed, config=url_config), url_config)
            if isinstance(payload, list):
                return _answer(_bulk(agent, payload, caller, url_config), url_config)
            return _answer(agent.handle(payload, caller, url_config), url_config)
        if "p" in request.args:
            parts = trimmed(split_path(request.args["p"]))
        else:
            parts = _raw_elements(request.script_root + "/jolokia")
        try:
            req = get_request(parts)
        except IllegalArgumentException as exc:
            return _answer(agent.error(exc, {"type": parts[0]}, url_config), url_config)
        return _answer(agent.handle(req, caller, url_config, from_url=True), url_config)

    # Any path, newlines and all (werkzeug's path converter stops at one, and Flask answered a 404 in
    # its own shape): the path is Jolokia's to read and, if it must, to refuse in Jolokia's terms.
    def add_converter(state: BlueprintSetupState) -> None:
        state.app.url_map.converters["jolokia"] = _AnyPath

    blueprint.record_once(add_converter)
    for rule in ("/jolokia", "/jolokia/", "/jolokia/<jolokia:rest>"):
        blueprint.add_url_rule(
            rule, view_func=serve, methods=["GET", "POST"], strict_slashes=False, merge_slashes=False
        )
    return blueprint

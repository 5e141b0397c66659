"""Jolokia (protocol 7.2) over the MBean registry, so that Jolokia clients and tools read and call the beans.

read, write, exec, search, list and version; POST with one request or a bulk array, and Jolokia's GET
URL forms with its `!` escaping. As Jolokia's agent does, every answer is HTTP 200 and the outcome is
the JSON `status`; the one exception is authentication: no or wrong credentials get HTTP 401, since a
client cannot do anything useful with a JSON body it was not allowed to see. Roles are checked per
request (per entry of a bulk request) through mbeans.access. Compatibility notes: docs/management.md.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from flask import Blueprint, Response, current_app, request

from agent import __version__
from agent.errors import AgentError
from agent.web.auth import REALM, ManagementAuth
from mbeans.access import Principal, require_action, require_operation, require_read
from mbeans.errors import (
    AttributeNotFoundException,
    AttributeNotWritableException,
    IllegalArgumentException,
    InstanceNotFoundException,
    MalformedObjectNameException,
    OperationNotFoundException,
    SecurityException,
)
from mbeans.model import JavaType, MBean
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry, as_name

log = logging.getLogger("ledger_agent.jolokia")

PROTOCOL = "7.2"
AGENT_ID = "ledger-agent"
TYPES = ("read", "write", "exec", "search", "list", "version")

# The most specific class first: Jolokia's status for each, and the Java name its clients know.
_ERRORS: tuple[tuple[type[Exception], int, str], ...] = (
    (MalformedObjectNameException, 400, "javax.management.MalformedObjectNameException"),
    (InstanceNotFoundException, 404, "javax.management.InstanceNotFoundException"),
    (AttributeNotFoundException, 404, "javax.management.AttributeNotFoundException"),
    # JMX itself answers a write to a read-only attribute with AttributeNotFoundException.
    (AttributeNotWritableException, 404, "javax.management.AttributeNotFoundException"),
    (OperationNotFoundException, 404, "javax.management.ReflectionException"),
    (IllegalArgumentException, 400, "java.lang.IllegalArgumentException"),
    (SecurityException, 403, "java.lang.SecurityException"),
)


class UnsupportedOperationException(AgentError):
    """A Jolokia feature this agent does not offer (proxy mode, notifications)."""


_ERRORS += ((UnsupportedOperationException, 500, "java.lang.UnsupportedOperationException"),)


def jolokia_error(exc: BaseException) -> tuple[int, str, str]:
    """(status, error_type, message) for an exception, as Jolokia reports it.

    An AgentError raised inside a bean (ReconciliationAlreadyScheduledException, ...) is what JMX
    wraps in an MBeanException; Jolokia unwraps it and answers 500 naming the cause's class, so we
    name the agent's class. Anything else is a bug: its message stays in the log, not the answer.
    """
    for kind, status, java in _ERRORS:
        if isinstance(exc, kind):
            return status, java, str(exc)
    if isinstance(exc, AgentError):
        return 500, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc)
    return 500, "java.lang.RuntimeException", "internal error; see the agent's log"


# -- escaping and paths (pure) ------------------------------------------------------------------------


def split_path(text: str | None) -> list[str]:
    """A Jolokia path (`a/b!/c/d`) into its elements: `/` separates, `!x` is a literal x."""
    if not text:
        return []
    return _split([(c, c == "/") for c in text])


def split_raw_uri_path(raw: str) -> list[str]:
    """The elements of a raw (still %-encoded) URI path after the agent's prefix.

    Only a literal `/` separates: `%2F` is a `/` inside an element, as is Jolokia's `!/`. %-escapes are
    decoded before `!` escapes are read (so `!%2F` is `!/`). Leading and trailing empty elements go.
    """
    chars: list[tuple[str, bool]] = []
    for piece in re.split(r"((?:%[0-9A-Fa-f]{2})+)", raw):
        if piece.startswith("%"):
            chars.extend((c, False) for c in unquote_to_bytes(piece).decode("utf-8", "replace"))
        else:
            chars.extend((c, c == "/") for c in piece)
    return _trimmed(_split(chars))


def _trimmed(parts: list[str]) -> list[str]:
    while parts and parts[0] == "":
        parts.pop(0)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _split(chars: list[tuple[str, bool]]) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(chars):
        char, separator = chars[i]
        if char == "!" and i + 1 < len(chars):
            current.append(chars[i + 1][0])
            i += 2
            continue
        if separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _path_elements(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return split_path(value)
    if isinstance(value, list) and all(isinstance(p, str) for p in value):
        return list(value)
    raise IllegalArgumentException(f"path: {value!r} is not a string")


def navigate(value: Any, path: list[str]) -> Any:
    """The part of value the path names; `*` takes every entry (those the rest does not fit are dropped)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, Mapping):
            return {k: v for k, v in ((k, _try(v, rest)) for k, v in value.items()) if v is not _MISSING}
        if isinstance(value, list):
            return [v for v in (_try(v, rest) for v in value) if v is not _MISSING]
        raise AttributeNotFoundException("value", "*", [])
    if isinstance(value, Mapping):
        if head not in value:
            raise AttributeNotFoundException("value", "/".join(path), sorted(map(str, value)))
        return navigate(value[head], rest)
    if isinstance(value, list):
        return navigate(value[_index(value, head)], rest)
    raise AttributeNotFoundException("value", "/".join(path), [])


_MISSING = object()


def _try(value: Any, path: list[str]) -> Any:
    try:
        return navigate(value, path)
    except (AttributeNotFoundException, IllegalArgumentException):
        return _MISSING


def _index(value: list[Any], element: str) -> int:
    if not element.lstrip("-").isdigit():
        raise IllegalArgumentException(f"path element {element!r}: a list takes an index")
    index = int(element)
    if not 0 <= index < len(value):
        raise AttributeNotFoundException("value", element, [f"0..{len(value) - 1}"])
    return index


def replace_at(value: Any, path: list[str], new: Any) -> tuple[Any, Any]:
    """(a copy of value with the element at path replaced by new, the element's old value)."""
    if not path:
        return new, value
    if "*" in path:
        raise IllegalArgumentException("a write path cannot hold the wildcard '*'")
    whole = copy.deepcopy(value)
    parent = navigate(whole, path[:-1])
    last = path[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise AttributeNotFoundException("value", "/".join(path), sorted(map(str, parent)))
        old, parent[last] = parent[last], new
    elif isinstance(parent, list):
        index = _index(parent, last)
        old, parent[index] = parent[index], new
    else:
        raise AttributeNotFoundException("value", "/".join(path), [])
    return whole, old


# -- GET requests ---------------------------------------------------------------------------------------


def _url_value(text: str) -> Any:
    """Jolokia's GET values: `[null]` is null, `""` the empty string."""
    if text == "[null]":
        return None
    if text == '""':
        return ""
    return text


def get_request(parts: list[str]) -> dict[str, Any]:
    """The request a GET URL's elements (already unescaped) stand for; none is a version request."""
    if not parts:
        return {"type": "version"}
    kind, args = parts[0], parts[1:]
    req: dict[str, Any] = {"type": kind}

    def need(count: int, what: str) -> None:
        if len(args) < count:
            raise IllegalArgumentException(f"GET {kind}: {what} missing (/{kind}/{what})")

    if kind == "read":
        need(1, "mbean")
        req["mbean"] = args[0]
        if len(args) > 1:
            attribute = _url_value(args[1])
            req["attribute"] = attribute.split(",") if attribute and "," in attribute else attribute
        if len(args) > 2:
            req["path"] = args[2:]
    elif kind == "write":
        need(3, "mbean/attribute/value")
        req.update(mbean=args[0], attribute=args[1], value=_url_value(args[2]))
        if len(args) > 3:
            req["path"] = args[3:]
    elif kind == "exec":
        need(2, "mbean/operation")
        req.update(mbean=args[0], operation=args[1], arguments=[_url_value(a) for a in args[2:]])
    elif kind == "search":
        need(1, "pattern")
        req["mbean"] = args[0]
    elif kind == "list":
        req["path"] = args
    return req


# -- the protocol -------------------------------------------------------------------------------------------


def _flag(config: Mapping[str, Any], name: str) -> bool:
    value = config.get(name)
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return value is True or (type(value) is int and value == 1)


def _max_depth(config: Mapping[str, Any]) -> int | None:
    value = config.get("maxDepth")
    if value in (None, "", 0, "0"):
        return None
    try:
        depth = int(value)
    except (TypeError, ValueError):
        raise IllegalArgumentException(f"maxDepth: {value!r} is not an integer") from None
    return depth if depth > 0 else None


def _from_url(kind: JavaType, value: Any) -> Any:
    """A GET value for a list or map parameter may be written as JSON (`["O=A, L=B, C=GB"]`)."""
    if kind in (JavaType.LIST, JavaType.MAP) and isinstance(value, str) and value[:1] in "[{" and value:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class JolokiaAgent:
    """Answers Jolokia requests against one registry; the HTTP side is jolokia_blueprint."""

    def __init__(self, registry: MBeanRegistry, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.clock = clock

    def handle(
        self,
        req: Any,
        principal: Principal,
        url_config: Mapping[str, Any] | None = None,
        *,
        from_url: bool = False,
    ) -> dict[str, Any]:
        """One request's response, a success or an error: never raises."""
        echo = {k: v for k, v in req.items() if k != "config"} if isinstance(req, dict) else req
        config: dict[str, Any] = dict(url_config or {})
        try:
            if not isinstance(req, dict):
                raise IllegalArgumentException(f"a request must be a JSON object, not {req!r}")
            if req.get("config") not in (None, "") and not isinstance(req.get("config"), dict):
                raise IllegalArgumentException("config must be an object")
            config.update(req.get("config") or {})
            value = self._dispatch(req, principal, config, from_url)
            return {"request": echo, "value": value, "status": 200, "timestamp": int(self.clock())}
        except Exception as exc:
            return self.error(exc, echo, config)

    def error(
        self, exc: Exception, echo: Any = None, config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The error response for exc; echo is the request as received, when there was one."""
        status, error_type, message = jolokia_error(exc)
        if status == 500 and not isinstance(exc, AgentError):
            log.error("Jolokia request failed: %r", echo, exc_info=exc)
        response: dict[str, Any] = {
            "status": status,
            "error_type": error_type,
            "error": f"{error_type} : {message}",
        }
        if echo is not None:
            response["request"] = echo
        if config is not None and _flag(config, "serializeException"):
            response["error_value"] = {"message": message, "errorType": error_type}
        return response

    def _dispatch(
        self, req: dict[str, Any], principal: Principal, config: dict[str, Any], from_url: bool
    ) -> Any:
        kind = req.get("type")
        if isinstance(kind, str):
            kind = kind.lower()
        if req.get("target"):
            raise UnsupportedOperationException("proxy requests (target) are not supported by this agent")
        if kind == "notification":
            raise UnsupportedOperationException("notifications are not supported by this agent")
        if kind not in TYPES:
            raise IllegalArgumentException(f"type {kind!r}: one of {', '.join(TYPES)} is needed")
        if kind == "version":
            require_read(principal, "version")
            return self.version()
        if kind == "list":
            require_read(principal, "list")
            return self.list(_path_elements(req.get("path")), _max_depth(config))
        if kind == "search":
            require_read(principal, "search")
            return self.search(self._mbean(req))
        name = self._mbean(req)
        if kind == "read":
            require_read(principal, f"read {name}")
            return self.read(name, req.get("attribute"), _path_elements(req.get("path")), config)
        if name.is_pattern:
            raise IllegalArgumentException(f"{kind} needs one MBean, not the pattern {name}")
        bean = self.registry.get(name)
        if kind == "write":
            attribute = req.get("attribute")
            if not isinstance(attribute, str) or not attribute:
                raise IllegalArgumentException("write needs an attribute")
            require_action(principal, f"write {name} {attribute}")
            return self.write(bean, attribute, req.get("value"), _path_elements(req.get("path")), from_url)
        operation = req.get("operation")
        if not isinstance(operation, str) or not operation:
            raise IllegalArgumentException("exec needs an operation")
        arguments = req.get("arguments")
        if arguments in (None, ""):
            arguments = []
        if not isinstance(arguments, list | dict):
            raise IllegalArgumentException(f"arguments: {arguments!r} is not a list")
        arity = len(arguments) if isinstance(arguments, list) else None
        op = bean.find_operation(operation, arity)
        require_operation(principal, op.impact, f"exec {name} {op.signature}")
        if from_url and isinstance(arguments, list) and len(arguments) == len(op.parameters):
            arguments = [_from_url(p.type, a) for p, a in zip(op.parameters, arguments, strict=True)]
        return op.invoke(arguments)

    @staticmethod
    def _mbean(req: Mapping[str, Any]) -> ObjectName:
        mbean = req.get("mbean")
        if mbean is None or mbean == "":
            raise IllegalArgumentException(f"{req.get('type')} needs an mbean")
        if not isinstance(mbean, str):
            raise IllegalArgumentException(f"mbean: {mbean!r} is not a string")
        return as_name(mbean)

    # -- the operations --

    def read(self, name: ObjectName, attribute: Any, path: list[str], config: Mapping[str, Any]) -> Any:
        if attribute in ("", []):
            attribute = None
        if attribute is not None and not (
            isinstance(attribute, str)
            or (isinstance(attribute, list) and all(isinstance(a, str) for a in attribute))
        ):
            raise IllegalArgumentException(f"attribute: {attribute!r} is not a name or a list of names")
        ignore = _flag(config, "ignoreErrors")
        if name.is_pattern:
            beans = self.registry.query(name)
            if not beans:
                raise InstanceNotFoundException(str(name))
            wanted = None if attribute is None else [attribute] if isinstance(attribute, str) else attribute
            found: dict[str, Any] = {}
            for bean in beans:
                names = (
                    list(bean.attributes) if wanted is None else [a for a in wanted if a in bean.attributes]
                )
                if names:
                    found[bean.name.canonical] = self._read_many(bean, names, ignore)
            if not found:
                raise IllegalArgumentException(
                    f"no MBean matching {name} has attribute(s) {', '.join(wanted or [])}"
                )
            return navigate(found, path)
        bean = self.registry.get(name)
        if isinstance(attribute, str):
            return navigate(bean.get(attribute), path)
        names = list(bean.attributes) if attribute is None else attribute
        return navigate(self._read_many(bean, names, ignore), path)

    @staticmethod
    def _read_many(bean: MBean, names: list[str], ignore: bool) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for attribute in names:
            try:
                values[attribute] = bean.get(attribute)
            except Exception as exc:
                if not ignore:
                    raise
                _, error_type, message = jolokia_error(exc)
                values[attribute] = f"ERROR: {message} ({error_type})"
        return values

    def write(self, bean: MBean, attribute: str, value: Any, path: list[str], from_url: bool) -> Any:
        found = bean.find_attribute(attribute)
        if from_url:
            value = _from_url(found.type, value)
        if not path:
            return bean.set(attribute, value)
        whole, old = replace_at(bean.get(attribute), path, value)
        bean.set(attribute, whole)
        return old

    def search(self, pattern: ObjectName) -> list[str]:
        return [bean.name.canonical for bean in self.registry.query(pattern)]

    def list(self, path: list[str], max_depth: int | None) -> Any:
        tree: dict[str, dict[str, Any]] = {}
        for bean in self.registry.query():
            tree.setdefault(bean.name.domain, {})[bean.name.canonical.partition(":")[2]] = describe(bean)
        if len(path) >= 2 and path[0] in tree and path[1] not in tree[path[0]]:
            # Keys may be given in any order: look the bean up by its canonical name.
            with contextlib.suppress(MalformedObjectNameException):
                path = [path[0], as_name(f"{path[0]}:{path[1]}").canonical.partition(":")[2], *path[2:]]
        if path and path[0] not in tree:
            raise InstanceNotFoundException(f"domain {path[0]} (list path)")
        if len(path) > 1 and path[1] not in tree[path[0]]:
            raise InstanceNotFoundException(f"{path[0]}:{path[1]} (list path)")
        value = navigate(tree, path)
        return value if max_depth is None else _truncate(value, max_depth)

    def version(self) -> dict[str, Any]:
        return {
            "agent": __version__,
            "protocol": PROTOCOL,
            "config": {"agentId": AGENT_ID, "agentType": "servlet", "authentication": "basic"},
            "info": {"product": "ledger-agent", "vendor": "ledger-agent", "version": __version__},
        }


def describe(bean: MBean) -> dict[str, Any]:
    """A bean as Jolokia's list shows it; an overloaded operation is a list of its signatures."""
    out: dict[str, Any] = {"desc": bean.description, "class": bean.class_name}
    if bean.attributes:
        out["attr"] = {
            a.name: {"type": a.type.value, "desc": a.description, "rw": a.writable}
            for a in bean.attributes.values()
        }
    ops: dict[str, Any] = {}
    for name, overloads in bean.operations.items():
        shown = [
            {
                "args": [{"name": p.name, "type": p.type.value, "desc": p.description} for p in o.parameters],
                "ret": o.returns.value,
                "desc": o.description,
            }
            for o in overloads
        ]
        ops[name] = shown[0] if len(shown) == 1 else shown
    if ops:
        out["op"] = ops
    return out


def _truncate(value: Any, depth: int) -> Any:
    """Jolokia's maxDepth for list: maps below the depth become the placeholder 1."""
    if not isinstance(value, dict):
        return value
    if depth <= 0:
        return 1
    return {k: _truncate(v, depth - 1) for k, v in value.items()}


# -- HTTP ---------------------------------------------------------------------------------------------------

_CONFIG_KEYS = (
    "maxDepth",
    "maxCollectionSize",
    "maxObjects",
    "ignoreErrors",
    "mimeType",
    "canonicalNaming",
    "includeStackTrace",
    "serializeException",
    "ifModifiedSince",
)


def _raw_elements(prefix: str) -> list[str]:
    """The GET path's elements, read from the raw URI: werkzeug's request.path has decoded %2F."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        path = urlsplit(raw).path if "://" in raw else raw.partition("?")[0]
        # The raw URI is latin-1 per WSGI; its %-escapes are the client's, still to decode.
        if path.startswith(prefix):
            return split_raw_uri_path(path[len(prefix) :])
    return _trimmed(split_path(request.path[len(prefix) :] if request.path.startswith(prefix) else ""))


def _answer(body: Any, config: Mapping[str, Any]) -> Response:
    mime = "application/json" if config.get("mimeType") == "application/json" else "text/plain"
    # A value JSON cannot carry is shown as text, as Jolokia falls back to toString().
    return Response(json.dumps(body, default=str), status=200, mimetype=mime)


def jolokia_blueprint() -> Blueprint:
    """/jolokia: Jolokia's protocol for every user of node.conf's managementUsers (HTTP basic auth)."""
    blueprint = Blueprint("jolokia", __name__)

    def serve(rest: str = "") -> Response:
        del rest  # the raw URI is read instead: werkzeug has decoded %2F in it
        auth: ManagementAuth = current_app.extensions["ledger_agent.auth"]
        registry: MBeanRegistry = current_app.extensions["ledger_agent.mbeans"]
        url_config = {k: request.args[k] for k in _CONFIG_KEYS if k in request.args}
        principal = auth.principal(request.authorization)
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
        agent = JolokiaAgent(registry)
        if request.method == "POST":
            try:
                payload = json.loads(request.get_data(as_text=True))
            except ValueError as exc:
                failed = IllegalArgumentException(f"the body is not valid JSON: {exc}")
                return _answer(agent.error(failed, config=url_config), url_config)
            if isinstance(payload, list):
                return _answer([agent.handle(r, principal, url_config) for r in payload], url_config)
            return _answer(agent.handle(payload, principal, url_config), url_config)
        if "p" in request.args:
            parts = _trimmed(split_path(request.args["p"]))
        else:
            parts = _raw_elements(request.script_root + "/jolokia")
        try:
            req = get_request(parts)
        except IllegalArgumentException as exc:
            return _answer(agent.error(exc, {"type": parts[0]}, url_config), url_config)
        return _answer(agent.handle(req, principal, url_config, from_url=True), url_config)

    for rule in ("/jolokia", "/jolokia/", "/jolokia/<path:rest>"):
        blueprint.add_url_rule(
            rule, view_func=serve, methods=["GET", "POST"], strict_slashes=False, merge_slashes=False
        )
    return blueprint

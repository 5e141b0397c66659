"""JSON-RPC 2.0 over the MBeans: `POST /rpc` (and `/rpc/`), HTTP basic auth, one method per member.

Method names (docs/management.md, "JSON-RPC"):

- `<type>.<Attribute>` reads an attribute, `<type>.set<Attribute>` writes one (returns the old value,
  as Jolokia's write does), `<type>.<Operation>` calls an operation; `<type>` is the `type` key of a
  `ledgeragent:type=...` name (`LedgerSync.NumberOfFailedReconciliations`), or the whole canonical
  ObjectName for any other bean.
- The LedgerSync bean's members also go by their bare names (the reference's JMX names:
  `FailedParties`, `ReconciliationStatus`, ...) unless another bean has a member of that name.
- `read`, `write`, `exec` (mbean, attribute/operation, value/arguments; an overload by its Jolokia
  signature) and `list_methods` / `rpc.discover` for introspection.

Params are positional (a list) or named (the bean's parameter names); an overloaded operation is
chosen by the number of arguments or by the set of names.

A batch is answered element by element (JSON-RPC 2.0 section 6): jsonrpcserver dispatches each one,
since it would refuse a whole batch for one invalid element; an invalid element gets its own -32600
with a null id, notifications no answer, a batch of notifications only none at all (HTTP 204).
`rpc.discover`'s OpenRPC document is mbeans/openrpc.py's.

Error codes: the standard ones (-32700, -32600, -32601, -32602, -32603), and the agent's errors as
below, each with `data = {"type": <the error's class name>}`. Nothing else goes in `data`: an
unexpected failure is logged here and answered -32603 "internal error; see the agent's log".
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, request
from oslash.either import Left  # type: ignore[import-untyped]  # jsonrpcserver's Either
from werkzeug.exceptions import RequestEntityTooLarge

from agent.errors import AgentError, DatabaseError, SerializationError, TooManyLoginAttemptsError
from mbeans.access import (
    REALM,
    TOO_MANY_REQUESTS,
    Authenticator,
    Caller,
    Principal,
    authorize,
    client_address,
    client_of,
    require_action,
    require_read,
    retry_after,
)
from mbeans.errors import (
    AttributeNotFoundException,
    AttributeNotWritableException,
    IllegalArgumentException,
    InstanceNotFoundException,
    MalformedObjectNameException,
    OperationNotFoundException,
    SecurityException,
)
from mbeans.limits import MAX_BULK, JsonTooDeepError, body_too_large, bulk_too_large, parse_json
from mbeans.model import Impact, JavaType, MBean, Operation
from mbeans.names import DOMAIN, LEDGER_SYNC
from mbeans.objectname import ObjectName
from mbeans.openrpc import MethodInfo, openrpc_document
from mbeans.registry import MBeanRegistry

with warnings.catch_warnings():
    # jsonrpcserver 5.0.9 reads its schema with importlib.resources.read_text, deprecated since 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from jsonrpcserver import Error, JsonRpcError, Result, Success, dispatch_to_response
    from jsonrpcserver.response import ErrorResponse, InvalidRequestResponse

log = logging.getLogger("ledger_agent.jsonrpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001  # no such MBean, attribute (or writable attribute) or operation
ILLEGAL_ARGUMENT = -32002  # a value the bean refuses: wrong type, out of range, not an X.500 name
FORBIDDEN = -32003  # the caller's role does not allow the call
REFUSED = -32004  # the agent refused (ReconciliationAlreadyScheduledException, ...)
UNAUTHENTICATED = -32005  # only with HTTP 401: credentials missing or wrong
TOO_MANY_LOGINS = -32006  # only with HTTP 429: the address is backed off after failed logins

ALIASED_TYPE = str(LEDGER_SYNC.key("type"))  # whose members also go by their bare (the reference's JMX) names
INTERNAL_MESSAGE = "internal error; see the agent's log"
SURFACE = "jsonrpc"  # what the audit log records of a call that came this way

Method = Callable[..., Result]


def code_for(exc: AgentError) -> int:
    """The application error code of one of the agent's errors."""
    if isinstance(exc, SecurityException):
        return FORBIDDEN
    not_found = (
        InstanceNotFoundException,
        AttributeNotFoundException,
        AttributeNotWritableException,
        OperationNotFoundException,
    )
    if isinstance(exc, not_found):
        return NOT_FOUND
    if isinstance(exc, IllegalArgumentException | MalformedObjectNameException | SerializationError):
        return ILLEGAL_ARGUMENT
    return REFUSED


def method_prefix(name: ObjectName) -> str:
    """`LedgerSync` for `ledgeragent:type=LedgerSync`; the canonical name for any other bean."""
    bean_type = name.key("type")
    if name.domain == DOMAIN and len(name.properties) == 1 and bean_type is not None:
        return bean_type
    return name.canonical


def _invalid(message: str) -> JsonRpcError:
    return JsonRpcError(INVALID_PARAMS, f"invalid params: {message}")


def _bind(
    what: str, names: Sequence[str], required: int, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> list[Any]:
    """args or kwargs as a list in the order of names; the first `required` must be given."""
    if args and kwargs:
        raise _invalid(f"{what}: give params as a list or as an object, not both")
    if kwargs:
        unknown = sorted(set(kwargs) - set(names))
        if unknown:
            raise _invalid(f"{what}: unknown {', '.join(unknown)}; parameters: {', '.join(names) or 'none'}")
        missing = [n for n in names[:required] if n not in kwargs]
        if missing:
            raise _invalid(f"{what}: missing {', '.join(missing)}")
        return [kwargs.get(n) for n in names]
    if not required <= len(args) <= len(names):
        wanted = str(required) if required == len(names) else f"{required} to {len(names)}"
        raise _invalid(f"{what} takes {wanted} param(s) ({', '.join(names) or 'none'}), got {len(args)}")
    return [*args, *([None] * (len(names) - len(args)))]


def _choose_overload(
    what: str, overloads: Sequence[Operation], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> Operation:
    if args and kwargs:
        raise _invalid(f"{what}: give params as a list or as an object, not both")
    if kwargs:
        fitting = [o for o in overloads if {p.name for p in o.parameters} == set(kwargs)]
    else:
        fitting = [o for o in overloads if len(o.parameters) == len(args)]
    if len(fitting) == 1:
        return fitting[0]
    forms = " | ".join("(" + ", ".join(p.name for p in o.parameters) + ")" for o in overloads)
    given = ", ".join(sorted(kwargs)) if kwargs else f"{len(args)} positional"
    if fitting:
        raise _invalid(f"{what}: {given} fits several overloads; use exec with a signature")
    raise _invalid(f"{what}: no overload takes {given or 'no params'}; parameters: {forms}")


def _checked(result: Any) -> Any:
    json.dumps(result)  # a bean returning something JSON cannot carry is our bug: -32603, not a 500
    return result


Call = Callable[[Caller, Sequence[Any], Mapping[str, Any]], Any]


def _guarded(what: str, call: Call) -> Method:
    """A jsonrpcserver method that maps every error itself, so nothing internal reaches `data`."""

    def method(caller: Caller, /, *args: Any, **kwargs: Any) -> Result:
        try:
            return Success(_checked(call(caller, args, kwargs)))
        except JsonRpcError:
            raise
        except DatabaseError:  # the store failed: its text stays in the log
            log.exception("JSON-RPC method %s failed", what)
            return Error(INTERNAL_ERROR, INTERNAL_MESSAGE)
        except AgentError as exc:
            return Error(code_for(exc), str(exc), {"type": type(exc).__name__})
        except Exception:
            log.exception("JSON-RPC method %s failed", what)
            return Error(INTERNAL_ERROR, INTERNAL_MESSAGE)

    return method


class MethodTable:
    """The methods of one registry's beans, rebuilt when the set of registered beans changes."""

    def __init__(self, registry: MBeanRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._built_for: tuple[str, ...] | None = None
        self._methods: dict[str, Method] = {}
        self._infos: list[MethodInfo] = []

    def methods(self) -> dict[str, Method]:
        names = tuple(self._registry.names())
        with self._lock:
            if names != self._built_for:
                self._methods, self._infos = self._build()
                self._built_for = names
            return self._methods

    def infos(self) -> list[MethodInfo]:
        self.methods()
        return list(self._infos)

    # -- building ----------------------------------------------------------------------------------

    def _build(self) -> tuple[dict[str, Method], list[MethodInfo]]:
        methods: dict[str, Method] = {}
        infos: list[MethodInfo] = []

        def add(name: str, method: Method, new_infos: list[MethodInfo]) -> None:
            if name in methods:
                raise ValueError(f"JSON-RPC method {name!r} defined twice")
            methods[name] = method
            infos.extend(new_infos)

        self._add_generic(add)
        per_bean: dict[str, dict[str, tuple[Method, list[MethodInfo]]]] = {}
        for bean in self._registry.query():
            members = per_bean.setdefault(method_prefix(bean.name), {})
            members.update(self._bean_methods(bean))
        member_owners: dict[str, int] = {}
        for members in per_bean.values():
            for member in members:
                member_owners[member] = member_owners.get(member, 0) + 1
        for prefix, members in per_bean.items():
            for member, (method, member_infos) in members.items():
                add(f"{prefix}.{member}", method, [_renamed(i, f"{prefix}.{member}") for i in member_infos])
        for member, (method, member_infos) in per_bean.get(ALIASED_TYPE, {}).items():
            if member_owners[member] == 1 and member not in methods:
                add(member, method, [_renamed(i, member) for i in member_infos])
        return methods, infos

    def _bean_methods(self, bean: MBean) -> dict[str, tuple[Method, list[MethodInfo]]]:
        out: dict[str, tuple[Method, list[MethodInfo]]] = {}
        mbean = bean.name.canonical
        for attribute in bean.attributes.values():
            out[attribute.name] = (
                _guarded(attribute.name, _getter(bean, attribute.name)),
                [
                    MethodInfo(
                        attribute.name,
                        "attribute",
                        mbean,
                        attribute.name,
                        (),
                        attribute.type.value,
                        attribute.description,
                        "read-only",
                    )
                ],
            )
            if attribute.writable:
                setter = f"set{attribute.name}"
                out[setter] = (
                    _guarded(setter, _setter(bean, attribute.name)),
                    [
                        MethodInfo(
                            setter,
                            "setter",
                            mbean,
                            attribute.name,
                            (("value", attribute.type.value),),
                            attribute.type.value,
                            f"Write {attribute.name}; returns the old value",
                            "operator",
                        )
                    ],
                )
        for name, overloads in bean.operations.items():
            if name in out:
                raise ValueError(f"{bean.name}: {name!r} is both an attribute and an operation")
            out[name] = (
                _guarded(name, _operation(bean, name)),
                [
                    MethodInfo(
                        name,
                        "operation",
                        mbean,
                        op.signature,
                        tuple((p.name, p.type.value) for p in op.parameters),
                        op.returns.value,
                        op.description,
                        "operator" if op.impact is Impact.ACTION else "read-only",
                    )
                    for op in overloads
                ],
            )
        return out

    def _add_generic(self, add: Callable[[str, Method, list[MethodInfo]], None]) -> None:
        registry = self._registry

        def read(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
            mbean, attribute = _bind("read", ("mbean", "attribute"), 2, args, kwargs)
            bean = registry.get(_text(mbean, "mbean"))
            require_read(caller.principal, f"read {attribute}")
            return bean.get(_text(attribute, "attribute"))

        def write(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
            mbean, attribute, value = _bind("write", ("mbean", "attribute", "value"), 3, args, kwargs)
            bean = registry.get(_text(mbean, "mbean"))
            name = _text(attribute, "attribute")
            _require_write(bean, name, caller, f"write {attribute}")
            return bean.set(name, value, caller)

        def exec_(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
            mbean, spec, arguments = _bind("exec", ("mbean", "operation", "arguments"), 2, args, kwargs)
            bean = registry.get(_text(mbean, "mbean"))
            if arguments is not None and not isinstance(arguments, list | dict):
                raise IllegalArgumentException(f"exec arguments: {arguments!r} is not a list or an object")
            arity = len(arguments) if isinstance(arguments, list) else None
            op = bean.find_operation(_text(spec, "operation"), arity)
            authorize(caller, op, op.signature)
            return op.invoke(arguments, caller)

        def list_methods(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
            _bind("list_methods", (), 0, args, kwargs)
            return [i.as_dict() for i in self._infos]

        def discover(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
            _bind("rpc.discover", (), 0, args, kwargs)
            return openrpc_document(self._infos)

        string, anything = JavaType.STRING.value, JavaType.OBJECT.value
        generics: list[tuple[str, Callable[..., Any], tuple[tuple[str, str], ...], str, str, str]] = [
            ("read", read, (("mbean", string), ("attribute", string)), anything, "read-only", "An attribute"),
            (
                "write",
                write,
                (("mbean", string), ("attribute", string), ("value", anything)),
                anything,
                "operator",
                "Write an attribute; returns the old value",
            ),
            (
                "exec",
                exec_,
                (("mbean", string), ("operation", string), ("arguments", JavaType.LIST.value)),
                anything,
                "read-only for INFO operations, operator for ACTION ones",
                "Call an operation; an overload as name(java.lang.String,...)",
            ),
            ("list_methods", list_methods, (), JavaType.LIST.value, "read-only", "These methods"),
            ("rpc.discover", discover, (), JavaType.MAP.value, "read-only", "These methods, as OpenRPC"),
        ]
        for name, call, params, returns, role, text in generics:
            add(
                name,
                _guarded(name, call),
                # exec's arguments may be left out (an operation without params)
                [
                    MethodInfo(
                        name,
                        "generic",
                        None,
                        None,
                        params,
                        returns,
                        text,
                        role,
                        2 if name == "exec" else None,
                    )
                ],
            )


def _renamed(info: MethodInfo, name: str) -> MethodInfo:
    return replace(info, name=name)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise IllegalArgumentException(f"{what}: {value!r} is not a non-empty string")
    return value


def _getter(bean: MBean, name: str) -> Call:
    def get(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        _bind(name, (), 0, args, kwargs)
        require_read(caller.principal, name)
        return bean.get(name)

    return get


def _setter(bean: MBean, name: str) -> Call:
    def set_(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        (value,) = _bind(f"set{name}", ("value",), 1, args, kwargs)
        _require_write(bean, name, caller, f"set{name}")
        return bean.set(name, value, caller)

    return set_


def _require_write(bean: MBean, name: str, caller: Caller, what: str) -> None:
    # A guarded attribute (an operator's setting) checks the role itself, so that a refusal is
    # audited with the caller as Jolokia's are; any other needs the operator role here.
    found = bean.attributes.get(name)
    if found is None or found.guard is None:
        require_action(caller.principal, what)


def _operation(bean: MBean, name: str) -> Call:
    def call(caller: Caller, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        op = _choose_overload(name, bean.operations[name], args, kwargs)
        authorize(caller, op, name)
        return op.invoke(dict(kwargs) if kwargs else list(args), caller)

    return call


# -- responses ----------------------------------------------------------------------------------------


def _serialisable(response: Any) -> dict[str, Any]:
    """One response as JSON, with the library's own errors made readable and free of internals."""
    if not isinstance(response, Left):
        value = response._value
        return {"jsonrpc": "2.0", "result": value.result, "id": value.id}
    error: ErrorResponse = response._error
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.code == PARSE_ERROR:
        body["message"] = "parse error: the body is not valid JSON"
    elif error.code == INVALID_REQUEST:
        body["message"] = "invalid request: not a JSON-RPC 2.0 request object or a non-empty batch of them"
    elif error.code == METHOD_NOT_FOUND:
        body["message"] = f"method not found: {error.data}; list_methods lists them"
        body["data"] = error.data
    elif error.code in (INVALID_PARAMS, NOT_FOUND, ILLEGAL_ARGUMENT, FORBIDDEN, REFUSED):
        if isinstance(error.data, dict):  # {"type": ...} from _guarded; never the library's text
            body["data"] = error.data
    else:  # -32603, or -32000 when the library fails on its own: its data would be str(exc)
        body = {"code": INTERNAL_ERROR, "message": INTERNAL_MESSAGE}
    return {"jsonrpc": "2.0", "error": body, "id": error.id}


def handle(body: str, table: MethodTable, caller: Caller | Principal) -> Any:
    """The JSON reply to one HTTP body (a dict, a list for a batch), or None for notifications only."""
    if isinstance(caller, Principal):
        caller = Caller(caller, SURFACE)
    try:
        parsed = parse_json(body)
    except ValueError:
        parsed = None  # jsonrpcserver answers it, -32700
    except JsonTooDeepError as exc:
        return _refused(PARSE_ERROR, f"parse error: {exc}")
    if isinstance(parsed, list) and len(parsed) > MAX_BULK:
        return _refused(INVALID_REQUEST, f"invalid request: {bulk_too_large(len(parsed), 'batch')}")
    try:
        if isinstance(parsed, list) and parsed:
            return _batch(parsed, table.methods(), caller)
        # One request, an empty batch (-32600) or not JSON (-32700): jsonrpcserver answers them all.
        return dispatch_to_response(body, table.methods(), context=caller, post_process=_serialisable)
    except Exception:  # not reached unless jsonrpcserver itself breaks; still no traceback out
        log.exception("JSON-RPC dispatch failed")
        return {"jsonrpc": "2.0", "error": {"code": INTERNAL_ERROR, "message": INTERNAL_MESSAGE}, "id": None}


def _batch(elements: list[Any], methods: dict[str, Method], caller: Caller) -> list[Any] | None:
    """Each element of a batch answered on its own (JSON-RPC 2.0 section 6), in order, notifications
    left out; None when nothing is left. jsonrpcserver validates a batch as a whole, so one invalid
    element would void the rest: it is given the elements one at a time instead."""
    replies = []
    for number, element in enumerate(elements, 1):
        if isinstance(element, dict):  # an array inside a batch would pass as a batch of its own
            reply = dispatch_to_response(
                "", methods, context=caller, deserializer=_given(element), post_process=_serialisable
            )
        else:
            reply = _serialisable(Left(InvalidRequestResponse(None)))
        if not isinstance(reply, dict):  # None for a notification (one element: never a list)
            continue
        if reply.get("error", {}).get("code") == INVALID_REQUEST:  # say which element, the id being null
            reply["error"]["message"] = (
                f"invalid request: element {number} of the batch is not a JSON-RPC 2.0 request object"
            )
        replies.append(reply)
    return replies or None


def _given(element: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """A deserializer that hands jsonrpcserver an element already parsed."""
    return lambda _body: element


def _refused(code: int, message: str) -> dict[str, Any]:
    """A whole request refused before any call runs (as the spec answers an unparseable one)."""
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": None}


def jsonrpc_blueprint(registry: MBeanRegistry, authenticate: Authenticator) -> Blueprint:
    """POST /rpc (and /rpc/) for the registry's beans; every call needs a management user."""
    blueprint = Blueprint("jsonrpc", __name__)
    table = MethodTable(registry)

    def rpc() -> Response:
        try:
            principal = authenticate(
                request.authorization, address=client_address(request.remote_addr), surface=SURFACE
            )
        except TooManyLoginAttemptsError as exc:
            error = {"code": TOO_MANY_LOGINS, "message": str(exc), "data": {"type": type(exc).__name__}}
            return Response(
                json.dumps({"jsonrpc": "2.0", "error": error, "id": None}),
                status=TOO_MANY_REQUESTS,
                content_type="application/json",
                headers=retry_after(exc),
            )
        if principal is None:
            error = {
                "code": UNAUTHENTICATED,
                "message": "authentication required: HTTP basic, a management user",
            }
            response = Response(
                json.dumps({"jsonrpc": "2.0", "error": error, "id": None}),
                status=401,
                content_type="application/json",
            )
            response.headers["WWW-Authenticate"] = REALM
            return response
        caller = Caller(principal, SURFACE, client_of(request.headers.get("User-Agent")))
        try:
            body = request.get_data(as_text=True)
        except RequestEntityTooLarge:
            refused = _refused(INVALID_REQUEST, f"invalid request: {body_too_large()}")
            return Response(json.dumps(refused), status=413, content_type="application/json")
        reply = handle(body, table, caller)
        if reply is None:
            return Response(status=204)
        return Response(json.dumps(reply), content_type="application/json")

    blueprint.add_url_rule("/rpc", "rpc", rpc, methods=["POST"], strict_slashes=False)
    blueprint.add_url_rule("/rpc/", "rpc_slash", rpc, methods=["POST"])
    return blueprint

"""JolokiaAgent: one request (or one entry of a bulk request) in, its answer out, roles checked first."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from agent.errors import AgentError, DatabaseError
from mbeans.access import Caller, Principal, authorize, authorize_write, require_action, require_read
from mbeans.errors import IllegalArgumentException
from mbeans.jolokia import operations
from mbeans.jolokia.changes import NotModified, TreeChanges
from mbeans.jolokia.config import flag, if_modified_since, include_request, longs_as_strings, max_depth
from mbeans.jolokia.errors import UnsupportedOperationException, jmx_error_type, jolokia_error
from mbeans.jolokia.urls import path_elements
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry, as_name

SURFACE = "jolokia"  # what the audit log records of a call that came this way

log = logging.getLogger("ledger_agent.jolokia")

TYPES = ("read", "write", "exec", "search", "list", "version")


class JolokiaAgent:
    """Answers Jolokia requests against one registry; the HTTP side is jolokia_blueprint."""

    def __init__(
        self,
        registry: MBeanRegistry,
        clock: Callable[[], float] = time.time,
        changes: TreeChanges | None = None,
        url: str | None = None,
    ) -> None:
        self.registry = registry
        self.clock = clock
        # Shared by every request of one endpoint (jolokia_blueprint); one of its own otherwise.
        self.changes = changes or TreeChanges(clock())
        self.url = url

    def handle(
        self,
        req: Any,
        caller: Caller | Principal,
        url_config: Mapping[str, Any] | None = None,
        *,
        from_url: bool = False,
    ) -> dict[str, Any]:
        """One request's response, a success or an error: never raises."""
        if isinstance(caller, Principal):
            caller = Caller(caller, SURFACE)
        echo = {k: v for k, v in req.items() if k != "config"} if isinstance(req, dict) else req
        config: dict[str, Any] = dict(url_config or {})
        try:
            if not isinstance(req, dict):
                raise IllegalArgumentException(f"a request must be a JSON object, not {req!r}")
            if req.get("config") not in (None, "") and not isinstance(req.get("config"), dict):
                raise IllegalArgumentException("config must be an object")
            config.update(req.get("config") or {})
            longs_as_strings(config)  # a bad serializeLong is refused before anything runs
            value = self._dispatch(req, caller, config, from_url)
            response = {"request": echo, "value": value, "status": 200, "timestamp": int(self.clock())}
        except NotModified:
            response = {"request": echo, "status": 304, "timestamp": int(self.clock())}
        except Exception as exc:
            return self.error(exc, echo, config)
        if not include_request(config):
            del response["request"]
        return response

    def error(
        self, exc: Exception, echo: Any = None, config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The error response for exc; echo is the request as received, when there was one."""
        status, error_type, message = jolokia_error(exc)
        if status == 500 and (not isinstance(exc, AgentError) or isinstance(exc, DatabaseError)):
            log.error("Jolokia request failed: %r", echo, exc_info=exc)
        response: dict[str, Any] = {
            "status": status,
            "error_type": error_type,
            # "<class> : <message>", as Jolokia 1.x and 2.0-2.2 give it and their clients show it.
            "error": f"{error_type} : {message}",
        }
        jmx = jmx_error_type(error_type)
        if jmx is not None:
            response["error_type_jmx"] = jmx
        if echo is not None and (config is None or include_request(config)):
            response["request"] = echo
        if config is not None and flag(config, "serializeException"):
            response["error_value"] = {"message": message, "errorType": error_type}
        return response

    def _dispatch(self, req: dict[str, Any], caller: Caller, config: dict[str, Any], from_url: bool) -> Any:
        principal = caller.principal
        kind = req.get("type")
        if isinstance(kind, str):
            kind = kind.lower()
        if req.get("target"):
            raise UnsupportedOperationException("proxy requests (target) are not supported by this agent")
        if kind == "notification":
            # This agent has no notification backend (pull, sse): a request it cannot serve, named as
            # such (400), not the 500 of something that failed while running.
            raise IllegalArgumentException(
                "notifications are not supported by this agent: it has no notification backend "
                "(pull or sse); poll with read, or list with ifModifiedSince"
            )
        if kind not in TYPES:
            raise IllegalArgumentException(f"type {kind!r}: one of {', '.join(TYPES)} is needed")
        if kind == "version":
            require_read(principal, "version")
            return operations.version(self.url)
        if kind == "list":
            require_read(principal, "list")
            return self._list(req, config)
        if kind == "search":
            require_read(principal, "search")
            return operations.search(self.registry, _mbean(req))
        name = _mbean(req)
        if kind == "read":
            require_read(principal, f"read {name}")
            path = path_elements(req.get("path"))
            return operations.read(self.registry, name, req.get("attribute"), path, config)
        if name.is_pattern:
            raise IllegalArgumentException(f"{kind} needs one MBean, not the pattern {name}")
        bean = self.registry.get(name)
        if kind == "write":
            attribute = req.get("attribute")
            if not isinstance(attribute, str) or not attribute:
                raise IllegalArgumentException("write needs an attribute")
            what = f"write {name} {attribute}"
            found = bean.attributes.get(attribute)
            if found is None:
                require_action(principal, what)  # the role first, as for any write; then "no such"
            else:
                authorize_write(caller, found, what)
            path = path_elements(req.get("path"))
            return operations.write(bean, attribute, req.get("value"), path, from_url, caller, config)
        operation = req.get("operation")
        if not isinstance(operation, str) or not operation:
            raise IllegalArgumentException("exec needs an operation")
        arguments = operations.exec_arguments(req.get("arguments"))
        op = bean.find_operation(operation, len(arguments) if isinstance(arguments, list) else None)
        authorize(caller, op, f"exec {name} {op.signature}")
        return operations.execute(op, arguments, from_url, caller, config)

    def _list(self, req: Mapping[str, Any], config: Mapping[str, Any]) -> Any:
        """list, or NotModified when ifModifiedSince is given and the tree has not changed since."""
        keys = flag(config, "listKeys")
        tree = operations.tree_of(self.registry, keys=keys)
        since = if_modified_since(config)
        if since is not None:
            plain = tree if not keys else operations.tree_of(self.registry)
            if since >= self.changes.changed_at(plain, self.clock()):
                raise NotModified()
        return operations.list_beans(
            self.registry, path_elements(req.get("path")), max_depth(config), keys=keys, tree=tree
        )


def _mbean(req: Mapping[str, Any]) -> ObjectName:
    mbean = req.get("mbean")
    if mbean is None or mbean == "":
        raise IllegalArgumentException(f"{req.get('type')} needs an mbean")
    if not isinstance(mbean, str):
        raise IllegalArgumentException(f"mbean: {mbean!r} is not a string")
    return as_name(mbean)

"""Jolokia's operations on the registry: read, write, exec, search, list and version. Roles are
checked before these run (mbeans/jolokia/agent.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from agent import __version__
from mbeans.caller import Caller
from mbeans.errors import IllegalArgumentException, InstanceNotFoundException, MalformedObjectNameException
from mbeans.jolokia.config import flag
from mbeans.jolokia.errors import jolokia_error
from mbeans.jolokia.paths import navigate, replace_at
from mbeans.jolokia.urls import from_url
from mbeans.model import MBean, Operation
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry, as_name

PROTOCOL = "7.2"
AGENT_ID = "ledger-agent"


def read(
    registry: MBeanRegistry, name: ObjectName, attribute: Any, path: list[str], config: Mapping[str, Any]
) -> Any:
    """One attribute, several (a map) or, for a pattern, {objectName: {attr: value}}; then the path."""
    if attribute in ("", []):
        attribute = None
    if attribute is not None and not (
        isinstance(attribute, str)
        or (isinstance(attribute, list) and all(isinstance(a, str) for a in attribute))
    ):
        raise IllegalArgumentException(f"attribute: {attribute!r} is not a name or a list of names")
    ignore = flag(config, "ignoreErrors")
    if name.is_pattern:
        beans = registry.query(name)
        if not beans:
            raise InstanceNotFoundException(str(name))
        wanted = None if attribute is None else [attribute] if isinstance(attribute, str) else attribute
        found: dict[str, Any] = {}
        for bean in beans:
            names = list(bean.attributes) if wanted is None else [a for a in wanted if a in bean.attributes]
            if names:
                found[bean.name.canonical] = _read_many(bean, names, ignore)
        if not found:
            raise IllegalArgumentException(
                f"no MBean matching {name} has attribute(s) {', '.join(wanted or [])}"
            )
        return navigate(found, path)
    bean = registry.get(name)
    if isinstance(attribute, str):
        return navigate(bean.get(attribute), path)
    names = list(bean.attributes) if attribute is None else attribute
    return navigate(_read_many(bean, names, ignore), path)


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


def write(bean: MBean, attribute: str, value: Any, path: list[str], url: bool) -> Any:
    """Set the attribute (or the element at path in its value); the old value. url: a GET's value."""
    found = bean.find_attribute(attribute)
    if url:
        value = from_url(found.type, value)
    if not path:
        return bean.set(attribute, value)
    whole, old = replace_at(bean.get(attribute), path, value)
    bean.set(attribute, whole)
    return old


def exec_arguments(arguments: Any) -> list[Any] | dict[str, Any]:
    """An exec request's arguments: a list, or (an extension) a map of the parameters' names."""
    if arguments in (None, ""):
        return []
    if not isinstance(arguments, list | dict):
        raise IllegalArgumentException(f"arguments: {arguments!r} is not a list")
    return arguments


def execute(
    op: Operation, arguments: list[Any] | dict[str, Any], url: bool, caller: Caller | None = None
) -> Any:
    """Invoke the operation for caller; url: the arguments come from a GET URL (lists and maps may be
    JSON)."""
    if url and isinstance(arguments, list) and len(arguments) == len(op.parameters):
        arguments = [from_url(p.type, a) for p, a in zip(op.parameters, arguments, strict=True)]
    return op.invoke(arguments, caller)


def search(registry: MBeanRegistry, pattern: ObjectName) -> list[str]:
    return [bean.name.canonical for bean in registry.query(pattern)]


def list_beans(registry: MBeanRegistry, path: list[str], max_depth: int | None) -> Any:
    """Jolokia's list: {domain: {keys: describe(bean)}}, then the path and maxDepth."""
    tree: dict[str, dict[str, Any]] = {}
    for bean in registry.query():
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


def version() -> dict[str, Any]:
    return {
        "agent": __version__,
        "protocol": PROTOCOL,
        "config": {"agentId": AGENT_ID, "agentType": "servlet", "authentication": "basic"},
        "info": {"product": "ledger-agent", "vendor": "ledger-agent", "version": __version__},
    }

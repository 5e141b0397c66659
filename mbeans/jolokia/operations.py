"""Jolokia's operations on the registry: read, write, exec, search, list and version. Roles are
checked before these run (mbeans/jolokia/agent.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from agent import __version__
from mbeans.caller import Caller
from mbeans.errors import (
    AttributeNotFoundException,
    IllegalArgumentException,
    InstanceNotFoundException,
    MalformedObjectNameException,
)
from mbeans.jolokia.config import flag, longs_as_strings
from mbeans.jolokia.errors import jolokia_error
from mbeans.jolokia.paths import navigate, replace_at
from mbeans.jolokia.urls import from_url
from mbeans.model import JavaType, MBean, Operation
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry, as_name

PROTOCOL = "8.0"  # Jolokia 2's protocol, the fields of docs/management.md's Jolokia section
AGENT_ID = "ledger-agent"
ALL_ATTRIBUTES = "*"  # what jolokia.js sends (GET /read/<mbean>/*) for every attribute

# Types whose values may hold Java longs somewhere inside (counts in a map, amounts in a list).
_CONTAINERS = (JavaType.MAP, JavaType.LIST, JavaType.OBJECT)


def serialized(value: Any, kind: JavaType, config: Mapping[str, Any]) -> Any:
    """value as serializeLong asks: with "string", a long (and any whole number inside a map or list,
    which JSON carries as Java longs) is a string, as a JavaScript client keeps its digits then."""
    if not longs_as_strings(config):
        return value
    if kind is JavaType.LONG:
        return _longs(value)
    if kind in _CONTAINERS:
        return _longs(value)
    return value


def _longs(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {k: _longs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_longs(v) for v in value]
    return value


def read(
    registry: MBeanRegistry, name: ObjectName, attribute: Any, path: list[str], config: Mapping[str, Any]
) -> Any:
    """One attribute, several (a map) or, for a pattern, {objectName: {attr: value}}; then the path.
    No attribute, or `*` (jolokia.js's GET for all), reads every one."""
    if attribute in ("", [], ALL_ATTRIBUTES, [ALL_ATTRIBUTES]):
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
                found[bean.name.canonical] = _read_many(bean, names, ignore, config)
        if not found:
            raise IllegalArgumentException(
                f"no MBean matching {name} has attribute(s) {', '.join(wanted or [])}"
            )
        return navigate(found, path)
    bean = registry.get(name)
    if isinstance(attribute, str):
        found_attribute = bean.find_attribute(attribute)
        return navigate(serialized(found_attribute.read(), found_attribute.type, config), path)
    names = list(bean.attributes) if attribute is None else attribute
    return navigate(_read_many(bean, names, ignore, config), path)


def _read_many(bean: MBean, names: list[str], ignore: bool, config: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for attribute in names:
        try:
            found = bean.find_attribute(attribute)
            values[attribute] = serialized(found.read(), found.type, config)
        except Exception as exc:
            if not ignore:
                raise
            _, error_type, message = jolokia_error(exc)
            values[attribute] = f"ERROR: {message} ({error_type})"
    return values


def write(
    bean: MBean,
    attribute: str,
    value: Any,
    path: list[str],
    url: bool,
    caller: Caller | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """Set the attribute (or the element at path in its value) for caller; the old value. url: a GET's
    value."""
    found = bean.find_attribute(attribute)
    if url:
        value = from_url(found.type, value)
    if not path:
        return serialized(bean.set(attribute, value, caller), found.type, config or {})
    whole, old = replace_at(bean.get(attribute), path, value)
    bean.set(attribute, whole, caller)
    return serialized(old, JavaType.OBJECT, config or {})


def exec_arguments(arguments: Any) -> list[Any] | dict[str, Any]:
    """An exec request's arguments: a list, or (an extension) a map of the parameters' names."""
    if arguments in (None, ""):
        return []
    if not isinstance(arguments, list | dict):
        raise IllegalArgumentException(f"arguments: {arguments!r} is not a list")
    return arguments


def execute(
    op: Operation,
    arguments: list[Any] | dict[str, Any],
    url: bool,
    caller: Caller | None = None,
    config: Mapping[str, Any] | None = None,
) -> Any:
    """Invoke the operation for caller; url: the arguments come from a GET URL (lists and maps may be
    JSON)."""
    if url and isinstance(arguments, list) and len(arguments) == len(op.parameters):
        arguments = [from_url(p.type, a) for p, a in zip(op.parameters, arguments, strict=True)]
    return serialized(op.invoke(arguments, caller), op.returns, config or {})


def search(registry: MBeanRegistry, pattern: ObjectName) -> list[str]:
    return [bean.name.canonical for bean in registry.query(pattern)]


def tree_of(registry: MBeanRegistry, *, keys: bool = False) -> dict[str, dict[str, Any]]:
    """Every bean as Jolokia's list shows it: {domain: {keys: describe(bean)}}."""
    tree: dict[str, dict[str, Any]] = {}
    for bean in registry.query():
        tree.setdefault(bean.name.domain, {})[bean.name.canonical.partition(":")[2]] = describe(
            bean, keys=keys
        )
    return tree


def list_beans(
    registry: MBeanRegistry,
    path: list[str],
    max_depth: int | None,
    *,
    keys: bool = False,
    tree: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """Jolokia's list: {domain: {keys: describe(bean)}}, then the path and maxDepth. A path that leads
    nowhere is `{}`, as Jolokia 2 answers it (an empty list, not an error)."""
    if tree is None:
        tree = tree_of(registry, keys=keys)
    if len(path) >= 2 and path[0] in tree and path[1] not in tree[path[0]]:
        # Keys may be given in any order: look the bean up by its canonical name.
        with contextlib.suppress(MalformedObjectNameException):
            path = [path[0], as_name(f"{path[0]}:{path[1]}").canonical.partition(":")[2], *path[2:]]
    try:
        value = navigate(tree, path)
    except (AttributeNotFoundException, IllegalArgumentException, InstanceNotFoundException):
        return {}
    return value if max_depth is None else _truncate(value, max_depth)


def describe(bean: MBean, *, keys: bool = False) -> dict[str, Any]:
    """A bean as Jolokia's list shows it (protocol 8: each attribute's r, w, rw and is; with keys, the
    name's key properties as listKeys asks); an overloaded operation is a list of its signatures."""
    out: dict[str, Any] = {"desc": bean.description, "class": bean.class_name}
    if keys:
        out["keys"] = dict(bean.name.properties)
    if bean.attributes:
        out["attr"] = {
            a.name: {
                "type": a.type.value,
                "desc": a.description,
                "rw": a.writable,
                "r": True,
                "w": a.writable,
                # JMX's isIs: a boolean's getter is isX (the only attributes read that way).
                "is": a.type in (JavaType.BOOLEAN, JavaType.BOOLEAN_OBJECT),
            }
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


def version(url: str | None = None) -> dict[str, Any]:
    """The agent and the protocol it speaks: Jolokia 2's id and details, and 1.x's info and config."""
    return {
        "agent": __version__,
        "protocol": PROTOCOL,
        "id": AGENT_ID,
        "details": {
            "agent_version": __version__,
            "agent_id": AGENT_ID,
            "agent_description": "ledger-agent's management plane (Jolokia protocol over its MBeans)",
            "server_vendor": "ledger-agent",
            "server_product": "ledger-agent",
            "server_version": __version__,
            "secured": True,
            **({"url": url} if url else {}),
        },
        "config": {"agentId": AGENT_ID, "agentType": "servlet", "authentication": "basic"},
        "info": {"product": "ledger-agent", "vendor": "ledger-agent", "version": __version__},
    }

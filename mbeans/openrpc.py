"""The description of the JSON-RPC methods: one entry per overload as `list_methods` gives them,
and the OpenRPC document (https://spec.open-rpc.org) that `rpc.discover` answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent import __version__
from mbeans.model import JavaType


@dataclass(frozen=True)
class MethodInfo:
    """One method as list_methods describes it (one entry per overload)."""

    name: str
    kind: str  # attribute, setter, operation, generic
    mbean: str | None
    member: str | None
    params: tuple[tuple[str, str], ...]  # (name, Java type)
    returns: str
    description: str
    role: str  # the role it needs: read-only or operator
    required: int | None = None  # how many of params must be given (the first ones); None: all

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "mbean": self.mbean,
            "member": self.member,
            "params": [{"name": n, "type": t} for n, t in self.params],
            "returns": self.returns,
            "description": self.description,
            "role": self.role,
        }


_SCHEMA = {
    JavaType.STRING: "string",
    JavaType.INT: "integer",
    JavaType.LONG: "integer",
    JavaType.BOOLEAN: "boolean",
    JavaType.BOOLEAN_OBJECT: "boolean",
    JavaType.DOUBLE: "number",
    JavaType.DOUBLE_OBJECT: "number",
    JavaType.INTEGER_OBJECT: "integer",
    JavaType.LIST: "array",
    JavaType.MAP: "object",
}


def _schema(java_type: str) -> dict[str, Any]:
    for kind, schema in _SCHEMA.items():
        if kind.value == java_type:
            return {"type": schema}
    return {"type": "null"} if java_type == JavaType.VOID.value else {}


OPENRPC_VERSION = "1.2.6"


def openrpc_document(infos: Sequence[MethodInfo]) -> dict[str, Any]:
    """The OpenRPC document of these methods: one method object per name, overloads merged."""
    by_name: dict[str, list[MethodInfo]] = {}
    for info in infos:
        by_name.setdefault(info.name, []).append(info)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": "ledger-agent management", "version": __version__},
        "methods": [_openrpc_method(overloads) for overloads in by_name.values()],
    }


def _openrpc_method(overloads: Sequence[MethodInfo]) -> dict[str, Any]:
    """One OpenRPC method object. Overloads (an operation of one name with several signatures) become
    one method whose params are all their params, required when every overload has it, listed
    required first (as OpenRPC asks). When each overload's params begin the longest one's, the
    params work by position and by name ("either"); otherwise only by name, since a position then
    means different params in different overloads. `x-overloads` names each signature exactly: a call
    by name must give one overload's set of names."""
    first = overloads[0]
    if len(overloads) == 1:
        required = first.required if first.required is not None else len(first.params)
        params = [_content(n, t, i < required) for i, (n, t) in enumerate(first.params)]
        method: dict[str, Any] = {"name": first.name, "description": first.description, "params": params}
    else:
        longest = max(overloads, key=lambda o: len(o.params))
        types: dict[str, str] = {}
        for overload in sorted(overloads, key=lambda o: -len(o.params)):
            for param, java_type in overload.params:
                types.setdefault(param, java_type)
        in_all = set(types).intersection(*({n for n, _ in o.params} for o in overloads))
        ordered = [n for n in types if n in in_all] + [n for n in types if n not in in_all]
        by_position = (
            all(o.params == longest.params[: len(o.params)] for o in overloads)
            and [n for n, _ in longest.params] == ordered
        )
        method = {
            "name": first.name,
            "description": first.description,
            "paramStructure": "either" if by_position else "by-name",
            "params": [_content(n, types[n], n in in_all) for n in ordered],
            "x-overloads": [
                {"signature": o.member, "params": [n for n, _ in o.params], "description": o.description}
                for o in overloads
            ],
        }
    returns = {o.returns for o in overloads}
    schema = _schema(first.returns) if len(returns) == 1 else {}
    method["result"] = {"name": "result", "schema": schema}
    return method


def _content(name: str, java_type: str, required: bool) -> dict[str, Any]:
    return {"name": name, "schema": _schema(java_type), "required": required}

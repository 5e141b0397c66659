"""MBeans: named beans with typed attributes and operations, as JMX has them and Jolokia lists them.

Types are named as Java names them (`java.lang.String`, `int`, ...) because Jolokia's `list` and its
overload syntax (`ReconciliationStatus(java.lang.String)`) use those names, and its clients send them.
Values a bean returns are plain JSON values (see mbeans.values); arguments arrive as JSON values, or
as strings from Jolokia's GET URLs, and are coerced to the parameter's type here, with an
IllegalArgumentException naming the parameter otherwise.

Access: reading an attribute and an INFO operation need the read-only role; writing an attribute and
an ACTION operation need the operator role (see mbeans.access). An operation built with a guard
checks its caller itself: the guard sees the caller and the arguments as given before anything else
is looked at (a refusal comes before a bad argument), and the call is handed the caller first. A
writable attribute built with a guard does the same for its writes (the agent's run-time settings,
whose writes are audited): guard(caller, value as given), then write(caller, value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mbeans.caller import Caller
from mbeans.errors import (
    AttributeNotFoundException,
    AttributeNotWritableException,
    IllegalArgumentException,
    OperationNotFoundException,
)
from mbeans.objectname import ObjectName


class JavaType(Enum):
    STRING = "java.lang.String"
    INT = "int"
    LONG = "long"
    BOOLEAN = "boolean"
    BOOLEAN_OBJECT = "java.lang.Boolean"  # boxed, so it may be null (an optional flag)
    DOUBLE = "double"
    DOUBLE_OBJECT = "java.lang.Double"  # boxed, so it may be null (an optional number)
    INTEGER_OBJECT = "java.lang.Integer"  # boxed, so it may be null (an optional whole number)
    LIST = "java.util.List"
    MAP = "java.util.Map"
    OBJECT = "java.lang.Object"
    VOID = "void"


class Impact(Enum):
    """JMX's operation impact: INFO reads, ACTION changes something (and needs the operator role)."""

    INFO = "INFO"
    ACTION = "ACTION"


def coerce(kind: JavaType, value: Any, what: str) -> Any:
    """value as kind; strings from URLs are parsed; anything else is refused naming `what`."""

    def refuse(allowed: str) -> IllegalArgumentException:
        return IllegalArgumentException(f"{what}: {value!r} is not {allowed}")

    if value is None:
        if kind in (JavaType.INT, JavaType.LONG, JavaType.BOOLEAN, JavaType.DOUBLE):
            raise refuse(f"a {kind.value}")
        return None
    if kind is JavaType.STRING:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise refuse("a string")
        return str(value)
    if kind in (JavaType.INT, JavaType.LONG, JavaType.INTEGER_OBJECT):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise refuse(f"an integer ({kind.value})")
        bits = 63 if kind is JavaType.LONG else 31
        if not -(2**bits) <= value < 2**bits:
            raise refuse(f"within the range of a Java {kind.value}")
        return value
    if kind in (JavaType.BOOLEAN, JavaType.BOOLEAN_OBJECT):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if kind in (JavaType.DOUBLE, JavaType.DOUBLE_OBJECT):
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise refuse("a number") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise refuse("a number")
        return float(value)
    if kind is JavaType.LIST:
        if isinstance(value, str):  # Jolokia's GET form: comma-separated
            return [] if value == "" else value.split(",")
        if not isinstance(value, list):
            raise refuse("a list")
        return value
    if kind is JavaType.MAP:
        if not isinstance(value, dict):
            raise refuse("a map")
        return value
    return value


WriteGuard = Callable[[Caller | None, Any], None]
"""Checks the caller (None: code in this process) of a write and the value as given; raises to refuse."""


@dataclass(frozen=True)
class Attribute:
    name: str
    type: JavaType
    description: str
    read: Callable[[], Any]
    write: Callable[..., None] | None = None  # write(value), or with a guard write(caller, value)
    guard: WriteGuard | None = None

    @property
    def writable(self) -> bool:
        return self.write is not None

    @property
    def checks_caller(self) -> bool:
        """The adapters leave the role of a write to its guard, and hand it the caller."""
        return self.guard is not None


@dataclass(frozen=True)
class Parameter:
    name: str
    type: JavaType
    description: str


Guard = Callable[[Caller | None, Mapping[str, Any]], None]
"""Checks the caller (None: code in this process) and the arguments as given, by name; raises to refuse."""


@dataclass(frozen=True)
class Operation:
    name: str
    parameters: tuple[Parameter, ...]
    returns: JavaType
    description: str
    call: Callable[..., Any]
    impact: Impact = Impact.INFO
    guard: Guard | None = None  # with one, call(caller, *arguments): it checks the caller itself

    @property
    def checks_caller(self) -> bool:
        """The adapters leave the role to its guard, and hand it the caller."""
        return self.guard is not None

    @property
    def signature(self) -> str:
        """Jolokia's overload syntax: `name(java.lang.String,int)`."""
        return f"{self.name}({','.join(p.type.value for p in self.parameters)})"

    def invoke(
        self, arguments: Sequence[Any] | Mapping[str, Any] | None, caller: Caller | None = None
    ) -> Any:
        """Call with positional (a list) or named (a map) arguments, each coerced to its type; caller
        is who asked, through which adapter (None: code in this process, as tests call beans)."""
        params = self.parameters
        if arguments is None:
            arguments = []
        if self.guard is not None:
            # By name as given; a wrong count is refused below, after the guard.
            names = (p.name for p in params)
            given = arguments if isinstance(arguments, Mapping) else dict(zip(names, arguments, strict=False))
            self.guard(caller, given)
        if isinstance(arguments, Mapping):
            unknown = set(arguments) - {p.name for p in params}
            if unknown:
                raise IllegalArgumentException(
                    f"{self.signature}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                    f"parameters: {', '.join(p.name for p in params) or 'none'}"
                )
            missing = [p.name for p in params if p.name not in arguments]
            if missing:
                raise IllegalArgumentException(f"{self.signature}: missing {', '.join(missing)}")
            values = [arguments[p.name] for p in params]
        else:
            values = list(arguments)
            if len(values) != len(params):
                raise IllegalArgumentException(
                    f"{self.signature} takes {len(params)} argument(s), got {len(values)}"
                )
        coerced = [
            coerce(p.type, v, f"{self.name} parameter {p.name!r}")
            for p, v in zip(params, values, strict=True)
        ]
        if self.guard is not None:
            return self.call(caller, *coerced)
        return self.call(*coerced)


@dataclass
class MBean:
    """One bean; build it with `attribute` and `operation`, then register it."""

    name: ObjectName
    description: str
    class_name: str = "ledgeragent.MBean"
    attributes: dict[str, Attribute] = field(default_factory=dict)
    operations: dict[str, list[Operation]] = field(default_factory=dict)

    def attribute(
        self,
        name: str,
        type: JavaType,
        description: str,
        read: Callable[[], Any],
        write: Callable[..., None] | None = None,
        *,
        guard: WriteGuard | None = None,
    ) -> MBean:
        if name in self.attributes:
            raise ValueError(f"attribute {name!r} defined twice on {self.name}")
        if guard is not None and write is None:
            raise ValueError(f"attribute {name!r} of {self.name}: a guard needs a write")
        self.attributes[name] = Attribute(name, type, description, read, write, guard)
        return self

    def operation(
        self,
        name: str,
        parameters: Sequence[tuple[str, JavaType, str]],
        returns: JavaType,
        description: str,
        call: Callable[..., Any],
        impact: Impact = Impact.INFO,
        *,
        guard: Guard | None = None,
    ) -> MBean:
        op = Operation(
            name, tuple(Parameter(*p) for p in parameters), returns, description, call, impact, guard
        )
        overloads = self.operations.setdefault(name, [])
        if any(o.signature == op.signature for o in overloads):
            raise ValueError(f"operation {op.signature} defined twice on {self.name}")
        overloads.append(op)
        return self

    # -- use -----------------------------------------------------------------------------------------

    def find_attribute(self, name: str) -> Attribute:
        found = self.attributes.get(name)
        if found is None:
            raise AttributeNotFoundException(str(self.name), name, sorted(self.attributes))
        return found

    def get(self, name: str) -> Any:
        return self.find_attribute(name).read()

    def set(self, name: str, value: Any, caller: Caller | None = None) -> Any:
        """Write the attribute for caller (None: code in this process); returns the old value (what
        Jolokia's write answers). A guarded attribute sees the caller before the value is coerced."""
        attribute = self.find_attribute(name)
        if attribute.write is None:
            raise AttributeNotWritableException(str(self.name), name)
        if attribute.guard is not None:
            attribute.guard(caller, value)
        old = attribute.read()
        coerced = coerce(attribute.type, value, f"attribute {name!r}")
        if attribute.guard is not None:
            attribute.write(caller, coerced)
        else:
            attribute.write(coerced)
        return old

    def find_operation(
        self, spec: str, arity: int | None = None, names: frozenset[str] | None = None
    ) -> Operation:
        """By `name`, or `name(type,...)` for an overload; with several overloads, by argument count
        (positional arguments) or by parameter names (named ones)."""
        name, paren, rest = spec.partition("(")
        overloads = self.operations.get(name)
        if not overloads:
            raise OperationNotFoundException(
                str(self.name), spec, f"it has {', '.join(sorted(self.operations)) or 'none'}"
            )
        if paren:
            if not rest.endswith(")"):
                raise OperationNotFoundException(str(self.name), spec, "a signature must end with ')'")
            wanted = [t.strip() for t in rest[:-1].split(",")] if rest[:-1].strip() else []
            for op in overloads:
                if [p.type.value for p in op.parameters] == wanted:
                    return op
            raise OperationNotFoundException(
                str(self.name), spec, "signatures: " + ", ".join(o.signature for o in overloads)
            )
        if len(overloads) == 1:
            return overloads[0]
        fitting = [
            o
            for o in overloads
            if (arity is None or len(o.parameters) == arity)
            and (names is None or {p.name for p in o.parameters} == names)
        ]
        if len(fitting) == 1:
            return fitting[0]
        raise OperationNotFoundException(
            str(self.name),
            spec,
            "overloaded: give the signature, one of " + ", ".join(o.signature for o in overloads),
        )

    def invoke(
        self, spec: str, arguments: Sequence[Any] | Mapping[str, Any] | None, caller: Caller | None = None
    ) -> Any:
        if isinstance(arguments, Mapping):
            return self.find_operation(spec, names=frozenset(arguments)).invoke(arguments, caller)
        arity = 0 if arguments is None else len(arguments)
        return self.find_operation(spec, arity).invoke(arguments, caller)

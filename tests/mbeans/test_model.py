"""The MBean model: typed attributes, operations with overloads, the registry, and the roles."""

from __future__ import annotations

from typing import Any

import pytest

from mbeans.access import Principal, Role, require_action, require_operation
from mbeans.errors import (
    AttributeNotFoundException,
    AttributeNotWritableException,
    IllegalArgumentException,
    InstanceAlreadyExistsException,
    InstanceNotFoundException,
    OperationNotFoundException,
    SecurityException,
)
from mbeans.model import Impact, JavaType, MBean, coerce
from mbeans.objectname import ObjectName
from mbeans.registry import MBeanRegistry

S, INT, B = JavaType.STRING, JavaType.INT, JavaType.BOOLEAN


def bean(name: str = "test:type=Thing") -> MBean:
    state: dict[str, Any] = {"Limit": 5}
    made = MBean(ObjectName.parse(name), "a test bean")
    made.attribute("Name", S, "read-only", lambda: "thing")
    made.attribute("Limit", INT, "writable", lambda: state["Limit"], lambda v: state.update(Limit=v))
    made.operation("Greet", [("who", S, "")], S, "", lambda who: f"hello {who}")
    made.operation("Greet", [("who", S, ""), ("times", INT, "")], S, "", lambda who, n: f"hello {who} x{n}")
    made.operation("Reset", [], JavaType.VOID, "", lambda: state.update(Limit=0), Impact.ACTION)
    return made


def test_attributes_read_write_and_refuse_by_name() -> None:
    thing = bean()
    assert thing.get("Name") == "thing"
    assert thing.set("Limit", "7") == 5  # the old value, as Jolokia's write answers; "7" from a URL
    assert thing.get("Limit") == 7
    with pytest.raises(AttributeNotWritableException, match="'Name' of test:type=Thing is read-only"):
        thing.set("Name", "x")
    with pytest.raises(AttributeNotFoundException, match=r"'Nope'.*it has: Limit, Name"):
        thing.get("Nope")
    with pytest.raises(IllegalArgumentException, match="attribute 'Limit': 'many' is not an integer"):
        thing.set("Limit", "many")


def test_overloads_are_chosen_by_signature_or_argument_count() -> None:
    thing = bean()
    assert thing.invoke("Greet", ["ann"]) == "hello ann"
    assert thing.invoke("Greet", ["ann", 2]) == "hello ann x2"
    assert thing.invoke("Greet(java.lang.String,int)", ["ann", "3"]) == "hello ann x3"
    assert thing.invoke("Greet(java.lang.String)", ["bob"]) == "hello bob"
    assert thing.invoke("Greet", {"who": "cy", "times": 1}) == "hello cy x1"
    assert thing.invoke("Reset()", None) is None and thing.get("Limit") == 0
    assert thing.invoke("Greet", {"who": "x"}) == "hello x"  # named arguments pick the overload too
    with pytest.raises(OperationNotFoundException, match="overloaded: give the signature"):
        thing.invoke("Greet", ["a", 1, 2])
    with pytest.raises(OperationNotFoundException, match=r"signatures: Greet\(java.lang.String\)"):
        thing.invoke("Greet(int)", [1])
    with pytest.raises(OperationNotFoundException, match="it has Greet, Reset"):
        thing.invoke("Wave", [])
    with pytest.raises(IllegalArgumentException, match="takes 0 argument"):
        thing.invoke("Reset", [1])
    with pytest.raises(IllegalArgumentException, match="unknown parameter"):
        thing.find_operation("Greet(java.lang.String)").invoke({"who": "a", "extra": 1})


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        (JavaType.BOOLEAN, "TRUE", True),
        (JavaType.BOOLEAN, False, False),
        (JavaType.LONG, "-12", -12),
        (JavaType.LIST, "a,b", ["a", "b"]),
        (JavaType.LIST, "", []),
        (JavaType.DOUBLE, "1.5", 1.5),
        (JavaType.STRING, None, None),
    ],
)
def test_values_from_json_or_urls_are_coerced(kind: JavaType, value: Any, expected: Any) -> None:
    assert coerce(kind, value, "x") == expected


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (JavaType.INT, 2**31),
        (JavaType.INT, True),
        (JavaType.BOOLEAN, "yes"),
        (JavaType.STRING, [1]),
        (JavaType.LONG, None),
    ],
)
def test_bad_values_are_refused_naming_what(kind: JavaType, value: Any) -> None:
    with pytest.raises(IllegalArgumentException, match=r"^p: "):
        coerce(kind, value, "p")


def test_the_registry_refuses_duplicates_and_finds_by_pattern() -> None:
    registry = MBeanRegistry()
    registry.register(bean("test:type=Thing"))
    registry.register(bean("test:type=Other,name=x"))
    with pytest.raises(InstanceAlreadyExistsException, match="test:type=Thing"):
        registry.register(bean("test:type=Thing"))
    with pytest.raises(ValueError, match="is a pattern"):
        registry.register(bean("test:type=*"))
    assert registry.get("test:type=Thing").get("Name") == "thing"
    assert registry.get("test:name=x,type=Other").name.canonical == "test:name=x,type=Other"
    with pytest.raises(InstanceNotFoundException, match="no MBean named test:type=Nothing"):
        registry.get("test:type=Nothing")
    assert [b.name.canonical for b in registry.query("test:*")] == [
        "test:name=x,type=Other",
        "test:type=Thing",
    ]
    assert len(registry.query("test:type=Thing")) == 1 and registry.query("other:*") == []
    registry.unregister("test:type=Thing")
    assert registry.names() == ["test:name=x,type=Other"]


def test_roles_allow_reads_to_all_and_actions_to_operators() -> None:
    reader, operator = Principal("monitor", Role.READ_ONLY), Principal("operator", Role.OPERATOR)
    require_operation(reader, Impact.INFO, "Greet")
    require_operation(operator, Impact.ACTION, "Reset")
    with pytest.raises(
        SecurityException, match="Reset needs the operator role; user 'monitor' has read-only"
    ):
        require_operation(reader, Impact.ACTION, "Reset")
    with pytest.raises(SecurityException):
        require_action(reader, "write Limit")

"""rpc.discover's OpenRPC document: one method object per name (OpenRPC: "The name MUST be unique
within the methods array"), overloads merged, and the whole document valid against OpenRPC's own
meta-schema. Beside this file, unchanged: `openrpc-meta-schema-1.14.9.json`, the schema of the npm
package @open-rpc/meta-schema 1.14.9 written out as JSON, and `json-schema-tools-meta-schema-1.8.0.json`,
the schema.json of @json-schema-tools/meta-schema 1.8.0, which it refers to for every JSON schema in a
document (https://meta.json-schema.tools); both Apache-2.0, from the OpenRPC project."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonrpcclient import Ok, parse, request
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from mbeans.jsonrpc import MethodTable, handle
from mbeans.openrpc import openrpc_document
from tests.mbeans.test_jsonrpc import OPERATOR, Served, post, served, toy_registry  # noqa: F401

HERE = Path(__file__).parent
META_SCHEMA = json.loads((HERE / "openrpc-meta-schema-1.14.9.json").read_text())
JSON_SCHEMA = json.loads((HERE / "json-schema-tools-meta-schema-1.8.0.json").read_text())
# Both are draft 7 schemas ("$schema" names the second one, which jsonschema does not know).
SCHEMAS = Registry().with_resources(
    (uri, Resource(JSON_SCHEMA, DRAFT7)) for uri in ("https://meta.json-schema.tools", JSON_SCHEMA["$id"])
)
VALIDATOR = jsonschema.Draft7Validator(META_SCHEMA, registry=SCHEMAS)


def valid(document: dict[str, Any]) -> None:
    """Raises unless the document is valid OpenRPC with unique method names (which no JSON schema
    can say)."""
    VALIDATOR.validate(document)
    repeated = [name for name, n in Counter(m["name"] for m in document["methods"]).items() if n > 1]
    assert repeated == [], f"method names repeat: {repeated}"
    for method in document["methods"]:
        flags = [p["required"] for p in method["params"]]
        assert flags == sorted(flags, reverse=True), (
            f"{method['name']}: an optional param before a required one"
        )


def discover(table: MethodTable) -> dict[str, Any]:
    reply = handle('{"jsonrpc": "2.0", "method": "rpc.discover", "id": 1}', table, OPERATOR)
    document: dict[str, Any] = reply["result"]
    return document


def test_the_meta_schema_is_the_real_one_and_refuses_what_it_should() -> None:
    assert META_SCHEMA["$id"] == "https://meta.open-rpc.org/"
    good = {"openrpc": "1.2.6", "info": {"title": "t", "version": "1"}, "methods": []}
    VALIDATOR.validate(good)
    for bad in (
        {**good, "openrpc": "9.9.9"},
        {**good, "methods": [{"name": "x"}]},  # no params
        {**good, "methods": [{"name": "x", "params": [{"name": "a"}]}]},  # a param without schema
        {**good, "methods": [{"name": "x", "params": [], "paramStructure": "any"}]},
        {
            **good,
            "methods": [{"name": "x", "params": [{"name": "a", "schema": {"type": 3}}]}],
        },  # not a schema
    ):
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(bad)
    repeated = {**good, "methods": [{"name": "x", "params": []}, {"name": "x", "params": []}]}
    with pytest.raises(AssertionError, match="repeat"):
        valid(repeated)


def test_overloads_with_a_common_prefix_merge_into_one_method_by_position_or_name() -> None:
    registry, _ = toy_registry()
    document = discover(MethodTable(registry))
    valid(document)
    echo = [m for m in document["methods"] if m["name"] == "Toy.Echo"]
    assert len(echo) == 1
    assert echo[0]["paramStructure"] == "either"
    assert [(p["name"], p["required"]) for p in echo[0]["params"]] == [("text", True), ("times", False)]
    assert [o["signature"] for o in echo[0]["x-overloads"]] == [
        "Echo(java.lang.String)",
        "Echo(java.lang.String,int)",
    ]
    exec_ = next(m for m in document["methods"] if m["name"] == "exec")
    assert [p["required"] for p in exec_["params"]] == [True, True, False]
    limit = next(m for m in document["methods"] if m["name"] == "Toy.setLimit")
    assert limit["params"] == [{"name": "value", "schema": {"type": "integer"}, "required": True}]
    assert "paramStructure" not in limit and "x-overloads" not in limit


def test_the_agents_own_document_is_valid_openrpc_with_unique_names(served: Served) -> None:  # noqa: F811
    reply = parse(post(served, request("rpc.discover")))
    assert isinstance(reply, Ok)
    document = reply.result
    valid(document)
    methods = {m["name"]: m for m in document["methods"]}
    listed = parse(post(served, request("list_methods")))
    assert isinstance(listed, Ok)
    assert set(methods) == {m["name"] for m in listed.result}  # every name, once
    statuses = methods["LedgerSync.GetReconciliationStatuses"]
    # (isRequester) and (party, lastReconciliationStatus, isRequester): a position means different
    # params in the two, so by name only, isRequester the one required
    assert statuses["paramStructure"] == "by-name"
    assert [(p["name"], p["required"]) for p in statuses["params"]] == [
        ("isRequester", True),
        ("party", False),
        ("lastReconciliationStatus", False),
    ]
    assert len(statuses["x-overloads"]) == 2
    schedule = methods["ScheduleReconciliation"]
    assert schedule["paramStructure"] == "either"
    assert [(p["name"], p["required"]) for p in schedule["params"]] == [
        ("parties", True),
        ("bothDirections", False),
    ]


def test_a_document_of_no_methods_is_valid() -> None:
    valid(openrpc_document([]))

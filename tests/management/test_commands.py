"""The catalogue of operator commands on a node: every entry has an implementation, is a bean operation
of the catalogue's name, signature and role, and a bad argument is a named error, not a crash."""

from __future__ import annotations

import pytest

from agent.flows.checkpoints import FlowStatus
from agent.hospital.selection import VERBS
from agent.hospital.staff import Diagnosis
from agent.management.beans import PARAM_TYPES, RESULT_TYPES, register_agent_beans
from agent.management.commands import FlowArgumentError, NodeCommands, UnknownFlowError
from agent.operator_api.catalogue import (
    BULK_ACTIONS,
    COMMANDS,
    DIAGNOSES,
    FLOW_STATUSES,
    KINDS,
    Kind,
    Result,
    flows,
    verbs,
)
from mbeans.errors import IllegalArgumentException
from mbeans.model import Impact
from mbeans.names import DOMAIN
from mbeans.registry import MBeanRegistry
from tests.ledgersync.conftest import A, Net, net

__all__ = ["net"]  # the fixture, from the LedgerSync tests


def test_the_catalogue_holds_every_flow_and_verb_with_a_role_and_a_result() -> None:
    assert [c.name for c in verbs()][:5] == ["listFlows", "killFlow", "pauseFlow", "resumeFlow", "retryFlow"]
    assert {"IssueTokensFlow", "PayTokensFlow", "ExitTokensFlow"} <= {c.name for c in flows()}
    assert len([c for c in flows() if c.bean == "LedgerSync"]) == 8
    for command in COMMANDS.values():
        assert command.role in ("operator", "read-only")
        assert command.kind is Kind.VERB or command.name.endswith("Flow"), command.name
        assert all(p.kind in KINDS for p in command.params), command.name
        names = {p.name for p in command.params}
        assert all(set(o) <= names for o in command.overloads), command.name
    assert not COMMANDS["listFlows"].act and COMMANDS["killFlow"].act
    assert tuple(FlowStatus.__members__) == FLOW_STATUSES  # the pure copy of the engine's statuses
    highest_first = sorted(Diagnosis, key=lambda d: -d.value)
    assert tuple(d.name for d in highest_first) == DIAGNOSES  # and of the hospital's diagnoses
    assert set(BULK_ACTIONS) == set(VERBS)


def test_every_command_runs_on_a_ledgersync_node(net: Net) -> None:
    commands = NodeCommands(net[A])
    assert [c.command.name for c in commands] == list(COMMANDS)


def test_each_command_is_a_bean_operation_taking_its_parameters_by_name(net: Net) -> None:
    registry = MBeanRegistry()
    register_agent_beans(registry, net[A])
    for command in COMMANDS.values():
        bean = registry.get(f"{DOMAIN}:type={command.bean}")
        overloads = bean.operations[command.operation]
        signatures = [[p.name for p in op.parameters] for op in overloads]
        assert [p.name for p in command.params] in signatures, command.name
        assert len(overloads) == 1 + len(command.overloads), command.name
        assert {op.impact for op in overloads} == {Impact.ACTION if command.act else Impact.INFO}, (
            command.name
        )
        assert {op.returns for op in overloads} == {RESULT_TYPES[command.result]}, command.name
        full = next(op for op in overloads if len(op.parameters) == len(command.params))
        assert [p.type for p in full.parameters] == [PARAM_TYPES[p.kind] for p in command.params]
    assert set(PARAM_TYPES) == set(KINDS) and set(RESULT_TYPES) == set(Result)


def test_a_list_where_a_status_belongs_is_an_argument_error_not_a_crash(net: Net) -> None:
    # A JSON list is not hashable: the membership test raised TypeError (a 500, a shell traceback).
    flow = NodeCommands(net[A])["GetReconciliationStatusesFlow"]
    with pytest.raises(FlowArgumentError) as raised:
        flow.start({"lastReconciliationStatus": ["FAILED"]})
    assert raised.value.parameter == "lastReconciliationStatus"
    assert "DIFFERENCES_FOUND" in raised.value.allowed


def test_the_verbs_answer_false_for_a_flow_they_do_not_know(net: Net) -> None:
    commands = NodeCommands(net[A])
    for verb in ("killFlow", "pauseFlow", "resumeFlow"):
        assert commands[verb].start({"id": "c243222b-1940-45df-8828-a8496196d274"}) is False
    with pytest.raises(FlowArgumentError, match="'status' = 'DONE'"):
        commands["listFlows"].start({"status": "DONE"})
    with pytest.raises(UnknownFlowError, match="IssueTokensFlow"):
        commands.flow("killFlow")  # a verb, not a flow to start


def test_listing_filters_the_engines_flows(net: Net) -> None:
    runtime = net[A]
    holder = str(runtime.node.identity.name)
    commands = NodeCommands(runtime)
    tx_id = commands["IssueTokensFlow"].start(
        {"holdings": [{"owner": holder, "amount": 5}], "currency": "GBP", "timeout": 30}
    )
    listed = commands["listFlows"].start({"txId": tx_id})
    assert [f["flowName"] for f in listed] == ["FinalityFlow"]
    assert listed[0]["status"] == "COMPLETED" and listed[0]["txId"] == tx_id
    assert commands["listFlows"].start({"txId": tx_id, "status": "FAILED"}) == []
    assert commands["listFlows"].start({"txId": tx_id, "olderThan": 3600}) == []


def test_a_bean_caller_gets_an_illegal_argument_for_a_bad_name(net: Net) -> None:
    registry = MBeanRegistry()
    register_agent_beans(registry, net[A])
    sync = registry.get(f"{DOMAIN}:type=LedgerSync")
    with pytest.raises(IllegalArgumentException, match="party: 'O=Nobody'"):
        sync.invoke("IsReconciliationScheduledForParty", ["O=Nobody"])

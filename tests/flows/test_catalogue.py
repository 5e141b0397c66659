"""The operator flows' catalogue against the LedgerSync bean, whose operations the shell calls by name."""

from __future__ import annotations

import pytest

from agent.flows.catalogue import OPERATOR_FLOWS, FlowArgumentError
from mbeans.agent_beans import LEDGER_SYNC, register_agent_beans
from mbeans.model import Impact
from mbeans.registry import MBeanRegistry
from tests.ledgersync.conftest import A, Net, net

__all__ = ["net"]  # the fixture, from the LedgerSync tests


def test_each_flow_is_a_bean_operation_taking_its_parameters_by_name(net: Net) -> None:
    registry = MBeanRegistry()
    register_agent_beans(registry, net[A])
    bean = registry.get(LEDGER_SYNC)
    for flow in OPERATOR_FLOWS.values():
        overloads = bean.operations[flow.operation]
        signatures = [[p.name for p in op.parameters] for op in overloads]
        assert [p.name for p in flow.params] in signatures, flow.name
        assert {op.impact for op in overloads} == {Impact.ACTION if flow.act else Impact.INFO}, flow.name


def test_a_list_where_a_status_belongs_is_an_argument_error_not_a_crash(net: Net) -> None:
    # A JSON list is not hashable: the membership test raised TypeError (a 500, a shell traceback).
    sync = net[A].ledgersync
    assert sync is not None
    flow = OPERATOR_FLOWS["GetReconciliationStatusesFlow"]
    with pytest.raises(FlowArgumentError) as raised:
        flow.start(sync, {"lastReconciliationStatus": ["FAILED"]})
    assert raised.value.parameter == "lastReconciliationStatus"
    assert "DIFFERENCES_FOUND" in raised.value.allowed

"""The operator flows' catalogue against the LedgerSync bean, whose operations the shell calls by name."""

from __future__ import annotations

from agent.flows.catalogue import OPERATOR_FLOWS
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

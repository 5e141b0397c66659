"""The agent's beans over real runtimes: what each attribute reads and each operation does."""

from __future__ import annotations

import threading
import time

import pytest

from agent.errors import CannotReconcileWithSelfException
from agent.management.beans import register_agent_beans
from agent.management.beans_settings import LOGGING
from mbeans.errors import IllegalArgumentException
from mbeans.model import Impact
from mbeans.names import (
    FLOW_HOSPITAL,
    FLOW_RPC_OPS,
    FLOWS,
    LEDGER_GRAPH,
    LEDGER_RECOVERY,
    LEDGER_SYNC,
    NODE,
    NODE_FLOW_STATUS_RPC_OPS,
    TOKENS,
)
from mbeans.registry import MBeanRegistry
from tests.ledgersync.conftest import A, B, C, Net, net

__all__ = ["net"]  # the fixture, from the LedgerSync tests


@pytest.fixture
def beans(net: Net) -> MBeanRegistry:
    registry = MBeanRegistry()
    register_agent_beans(registry, net[A])
    return registry


def test_every_attribute_reads_a_plain_value(beans: MBeanRegistry) -> None:
    assert beans.names() == sorted(
        str(n)
        for n in (
            FLOWS,
            FLOW_HOSPITAL,
            FLOW_RPC_OPS,
            LEDGER_GRAPH,
            LEDGER_RECOVERY,
            LEDGER_SYNC,
            LOGGING,
            NODE,
            NODE_FLOW_STATUS_RPC_OPS,
            TOKENS,
        )
    )
    for bean in beans.query():
        for name in bean.attributes:
            value = bean.get(name)
            assert value is None or isinstance(value, str | int | float | bool | list | dict), (
                bean.name,
                name,
            )


def test_node_and_graph_beans_follow_the_ledger(net: Net, beans: MBeanRegistry) -> None:
    node, graph = beans.get(NODE), beans.get(LEDGER_GRAPH)
    assert node.get("Identity") == str(A) and node.get("Role") == "node"
    before = node.get("Transactions")
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP")
    assert node.get("Transactions") == before + 1
    assert node.get("TransactionsByStatus")["VERIFIED"] == before + 1
    assert node.get("InFlightTransactions") == 0 and node.get("UnconsumedStates") >= 1
    assert graph.get("IsInitialized") is True and graph.get("IsSelfConsistent") is True
    assert graph.get("Errors") == [] and graph.get("ErrorCount") == 0
    assert graph.invoke("CheckConsistency", []) is True
    assert graph.get("Size") == before + 1
    assert beans.get(FLOWS).get("FlowsByStatus")["COMPLETED"] >= 1


def test_the_ledgersync_bean_runs_the_reference_flows(net: Net, beans: MBeanRegistry) -> None:
    sync = beans.get(LEDGER_SYNC)
    assert sync.get("FailedParties") == [] and sync.get("NumberOfScheduledReconciliations") == 0
    assert sync.invoke("ReconciliationStatus", [str(B)]) is None
    assert sync.find_operation("ScheduleReconciliation(java.util.List)").impact is Impact.ACTION
    assert sync.find_operation("ReconciliationStatus").impact is Impact.INFO
    sync.invoke("ScheduleReconciliation", [[str(B), str(C)]])
    deadline = time.monotonic() + 30
    tick = threading.Event()
    while sync.invoke("IsReconciliationScheduledForParty", [str(B)]) or sync.invoke(
        "IsReconciliationScheduledForParty", [str(C)]
    ):
        assert time.monotonic() < deadline
        tick.wait(0.02)
    status = sync.invoke("ReconciliationStatus", [str(B)])
    assert status["partyName"] == str(B) and status["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND"
    assert sync.get("NumberOfReconciliationsWithoutDifferences") == 2
    statuses = sync.invoke(
        "GetReconciliationStatuses(java.lang.String,java.lang.String,boolean)", [None, None, True]
    )
    assert [s["partyName"] for s in statuses] == sorted([str(B), str(C)])
    assert sync.invoke("GetReconciliationStatuses", [True]) == statuses
    assert sync.invoke(
        "GetReconciliationStatuses", {"party": str(C), "lastReconciliationStatus": None, "isRequester": True}
    )[0]["partyName"] == str(C)
    assert sync.invoke("GetReconciliationStatusForParty", [str(B), False]) is None
    assert sync.invoke("RefreshReconciliationStatuses", []) == 0
    sync.invoke("StopReconciliationForParty", [str(B)])
    assert sync.invoke("ReconciliationStatus", [str(B)])["lastReconciliationStatus"] == "STOPPED"
    assert sync.invoke("killFlow", ["no-such-flow"]) is False
    assert beans.get(FLOWS).invoke("killFlow", ["no-such-flow"]) is False
    with pytest.raises(IllegalArgumentException, match="party: 'O=Nobody'"):
        sync.invoke("ReconciliationStatus", ["O=Nobody"])
    with pytest.raises(IllegalArgumentException, match="lastReconciliationStatus: 'DONE'"):
        sync.invoke("GetReconciliationStatuses", [None, "DONE", True])
    with pytest.raises(CannotReconcileWithSelfException):
        sync.invoke("ScheduleReconciliation", [[str(A)]])
    figures = sync.invoke("ReconcileWithParty", {"party": str(C), "bothDirections": True, "method": "list"})
    assert figures["missingHere"] == [] and figures["usedIdList"] is True and figures["exchanges"] >= 3
    with pytest.raises(IllegalArgumentException, match="method: 'smoke'"):
        sync.invoke("ReconcileWithParty", [str(C), False, "smoke"])

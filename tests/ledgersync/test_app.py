"""LedgerSync as a node runs it: refusals while the graph is not ready, scheduled reconciliations from
the config, and the operator's flows by their Corda names with checked arguments."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent.errors import CannotReconcileWithSelfException, LedgerGraphNotReadyException
from agent.ledgersync.app import LedgerSync
from agent.ledgersync.config import LedgerSyncConfig, ScheduledReconciliation
from agent.management.commands import FlowArgumentError, NodeCommands, result_json, result_text
from agent.network.bootstrap import DEFAULT_NOTARY, init_network
from agent.node import open_node
from agent.operator_api.status import ReconciliationStatus, ReconciliationStatusValue
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.runtime import build_runtime, ledgersync_ports
from tests.ledgersync.conftest import A, B, C, Net


def sync_of(net: Net, name: object) -> LedgerSync:
    sync = net[name].ledgersync  # type: ignore[index]
    assert sync is not None
    return sync


def test_nothing_is_scheduled_or_served_before_the_graph_is_ready(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", [A, B], DEFAULT_NOTARY)
    entry = next(e for e in layout.nodes if e.name == A)
    node = open_node(entry.config)
    network = InProcessNetwork()
    runtime = build_runtime(node, InProcessTransport(network))  # LedgerSync off: build it by hand
    try:
        sync = LedgerSync(
            node.identity,
            ledgersync_ports(node.store),
            runtime.peers,
            node.network_map,
            LedgerSyncConfig(),
            node.clock,
            runtime.engine,
        )
        assert not sync.report.is_initialized
        with pytest.raises(LedgerGraphNotReadyException, match="being built"):
            sync.schedule_reconciliation([B])
        with pytest.raises(LedgerGraphNotReadyException):
            sync.service._on_begin(B, {"salt": bytes(16), "size": 0})
        assert sync.statuses.get(B, False) is None  # refused before admission: no row
        sync.start(background=False)
        assert sync.report.is_initialized and sync.report.is_self_consistent
        with pytest.raises(CannotReconcileWithSelfException):
            sync.schedule_reconciliation([A])
        sync.stop(5)
    finally:
        runtime.stop(5)


def test_a_scheduled_reconciliation_runs_from_the_config(net: Net) -> None:
    sync = sync_of(net, A)
    # A timetable as the config gives one, on the runtime's scheduler and real clock.
    from agent.ledgersync.timetable import ReconciliationTimetable

    table = ReconciliationTimetable(
        [ScheduledReconciliation(party=B, every=timedelta(milliseconds=200))],
        sync.schedule_reconciliation,
        sync.clock,
    )
    table.start()
    try:
        deadline = time.monotonic() + 30
        tick = threading.Event()
        while sync.get_reconciliation_status_for_party(B) is None:
            assert time.monotonic() < deadline, "the scheduled reconciliation never ran"
            tick.wait(0.02)
    finally:
        table.stop()
    status = sync.get_reconciliation_status_for_party(B)
    assert status is not None and status.is_requester


def test_the_operators_flows_check_their_arguments(net: Net) -> None:
    flows = {c.command.name: c for c in NodeCommands(net[A]) if c.command.bean == "LedgerSync"}
    assert set(flows) == {
        "ScheduleReconciliationFlow",
        "GetReconciliationStatusesFlow",
        "GetReconciliationStatusForPartyFlow",
        "RefreshReconciliationStatusesFlow",
        "StopReconciliationForPartyFlow",
        "IsReconciliationScheduledForPartyFlow",
        "IsRespondingToReconciliationForPartyFlow",
        "ReconcileWithPartyFlow",
    }
    get = flows["GetReconciliationStatusForPartyFlow"]
    with pytest.raises(FlowArgumentError, match="'party' = None; required"):
        get.start({})
    with pytest.raises(FlowArgumentError, match="'party' = 'O=Nobody'"):
        get.start({"party": "O=Nobody"})
    with pytest.raises(FlowArgumentError, match="'isRequester' = 'yes'; allowed: true or false"):
        get.start({"party": str(B), "isRequester": "yes"})
    with pytest.raises(FlowArgumentError, match="'color' = 'red'; unknown; parameters: isRequester, party"):
        get.start({"party": str(B), "color": "red"})
    with pytest.raises(FlowArgumentError, match="'parties'"):
        flows["ScheduleReconciliationFlow"].start({"parties": []})
    with pytest.raises(FlowArgumentError, match="one of riblt, list"):
        flows["ReconcileWithPartyFlow"].start({"party": str(B), "method": "carrier-pigeon"})
    assert get.start({"party": str(B)}) is None
    assert result_text(None) == "null" and result_text(None, unit=True) == "kotlin.Unit"

    flows["ScheduleReconciliationFlow"].start({"parties": [str(B), str(C)]})
    scheduled = flows["IsReconciliationScheduledForPartyFlow"]
    deadline = time.monotonic() + 30
    tick = threading.Event()
    while scheduled.start({"party": str(B)}) or scheduled.start({"party": str(C)}):
        assert time.monotonic() < deadline
        tick.wait(0.02)
    found = flows["GetReconciliationStatusesFlow"].start(
        {"lastReconciliationStatus": "DIFFERENCES_NOT_FOUND", "isRequester": True}
    )
    assert [s.party_name for s in found] == sorted([str(B), str(C)])
    status = get.start({"party": str(B), "isRequester": True})
    assert isinstance(status, ReconciliationStatus)
    as_json = result_json(status)
    assert as_json["partyName"] == str(B) and as_json["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND"
    assert as_json["lastSuccessfulReconciliationResult"] == []
    assert result_text(status).startswith("ReconciliationStatus(\n    partyName=")
    assert status.last_reconciliation_status is ReconciliationStatusValue.DIFFERENCES_NOT_FOUND
    assert flows["RefreshReconciliationStatusesFlow"].start({}) == 0
    flows["StopReconciliationForPartyFlow"].start({"party": str(B)})
    stopped = get.start({"party": str(B)})
    assert stopped is not None and stopped.last_reconciliation_status is ReconciliationStatusValue.STOPPED
    assert flows["IsRespondingToReconciliationForPartyFlow"].start({"party": str(B)}) is False

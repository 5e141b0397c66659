"""The composition root: one call builds a whole agent from its node.conf, started and stopped by the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.composition import build_agent
from agent.errors import ConfigurationError
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport


def test_a_node_conf_becomes_an_agent_with_both_apps(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", default_node_names(2), DEFAULT_NOTARY)
    entry = next(n for n in layout.nodes if n.role == "node")
    agent = build_agent(
        entry.config, transport=InProcessTransport(InProcessNetwork()), ledgersync_background=False
    )
    try:
        assert not agent.runtime.started and agent.runtime.ledgersync is not None
        agent.start()
        assert agent.runtime.ledgersync.report.is_initialized
        health = agent.management_app.test_client().get("/health").get_json()
        assert health == {"status": "UP", "node": str(entry.name), "role": "node"}
        assert "/p2p/v1/message" in {rule.rule for rule in agent.peer_app.url_map.iter_rules()}
    finally:
        agent.stop(5)


def test_a_bad_ledgersync_setting_stops_the_build_and_closes_the_store(tmp_path: Path) -> None:
    layout = init_network(tmp_path / "net", default_node_names(2), DEFAULT_NOTARY)
    entry = next(n for n in layout.nodes if n.role == "node")
    (entry.folder / "ledgersync.conf").write_text("maxNumberOfParallelReconciliationRequests = -1\n")
    with pytest.raises(ConfigurationError, match="maxNumberOfParallelReconciliationRequests"):
        build_agent(entry.config, transport=InProcessTransport(InProcessNetwork()))

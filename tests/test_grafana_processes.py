"""The dashboards' legends on real agents scraped with the config the demo prints: every series a
`{{node}}` legend draws carries the node's legal name (joined from ledgeragent_node_info), so no
legend shows 127.0.0.1:port."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable

import pytest

from agent.client.launcher import AgentProcess
from agent.network.bootstrap import NetworkLayout
from agent.network.pki import NOTARY_ROLE
from grafana.panels import NODE_LABEL
from tests.test_grafana import concrete, dashboards, targets
from tests.test_monitoring_processes import Prometheus, network, prometheus_for  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not installed (.ci/run installs it)",
)


def legend(template: str, labels: dict[str, str]) -> str:
    """What Grafana draws for a series: legendFormat with each {{label}} replaced by its value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda found: labels.get(found.group(1), ""), template)


def test_legends_show_the_nodes_legal_names(
    network: tuple[NetworkLayout, dict[str, AgentProcess]],  # noqa: F811
    prometheus_for: Callable[[NetworkLayout], Prometheus],  # noqa: F811
) -> None:
    layout, _ = network
    prometheus = prometheus_for(layout)
    names = {str(node.name) for node in layout.nodes}
    members = {str(node.name) for node in layout.nodes if node.role != NOTARY_ROLE}
    prometheus.wait_for(f"count(up == 1) == {len(layout.nodes)}", "a scrape of every agent")

    drawn: dict[str, set[str]] = {}
    for title, target in targets(dashboards()["ledgeragent-network.json"]):
        if "{{" + NODE_LABEL + "}}" not in target["legendFormat"]:
            continue
        for series in prometheus.query(concrete(target["expr"], ".*")):
            assert series["metric"].get(NODE_LABEL) in names, (title, series["metric"])
            drawn.setdefault(title, set()).add(legend(target["legendFormat"], series["metric"]))
    assert drawn, "no series to draw"
    for title, legends in drawn.items():
        assert not any(re.search(r"\d+\.\d+\.\d+\.\d+:\d+", text) for text in legends), (title, legends)
    # The gauges every LedgerSync node exposes are drawn once per node, by its legal name.
    assert drawn["Ledger graph self-consistent, by node"] == members

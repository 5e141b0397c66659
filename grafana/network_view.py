"""Every agent at once: which nodes are healthy, reconciled and caught up (`node` picks some or all)."""

from __future__ import annotations

from grafanalib.core import Dashboard, Template, Templating

from grafana.hospital_rows import network_row
from grafana.modern import SCHEMA_VERSION
from grafana.panels import (
    DATASOURCE,
    NODE_LEGEND,
    Row,
    datasource_variable,
    layout,
    problems,
    selector,
    series,
    stat,
)
from mbeans import metrics as m

UID = "ledgeragent-network"


def on(metric: m.Metric, labels: str = "") -> str:
    """The metric on the selected nodes, with extra label matchers."""
    return selector(metric, "=~", labels)


def dashboard() -> Dashboard:
    health = Row(
        "Health",
        [
            (
                stat(
                    "Nodes with a ledger graph not initialised",
                    problems("orange"),
                    f"count({on(m.LEDGER_GRAPH_INITIALIZED)} == 0) or vector(0)",
                ),
                6,
                4,
            ),
            (
                stat(
                    "Nodes not self-consistent",
                    problems(),
                    f"count({on(m.LEDGER_GRAPH_SELF_CONSISTENT)} == 0) or vector(0)",
                ),
                6,
                4,
            ),
            (
                stat(
                    "Missing transactions, all nodes",
                    problems("orange"),
                    f"sum({on(m.MISSING_TRANSACTIONS)})",
                ),
                6,
                4,
            ),
            (
                stat(
                    "IN_FLIGHT transactions, all nodes",
                    problems("yellow"),
                    "sum(" + on(m.TRANSACTIONS, 'status="IN_FLIGHT"') + ")",
                ),
                6,
                4,
            ),
            (
                series(
                    "Ledger graph self-consistent, by node",
                    (on(m.LEDGER_GRAPH_SELF_CONSISTENT), NODE_LEGEND),
                ),
                12,
                8,
            ),
            (series("Consistency errors, by node", (on(m.LEDGER_GRAPH_ERRORS), NODE_LEGEND)), 12, 8),
        ],
    )
    reconciliation = Row(
        "Reconciliation",
        [
            (
                series(
                    "Since the last successful reconciliation, worst peer by node",
                    (f"max by (instance) ({on(m.RECONCILIATION_LAST_SUCCESS_AGE)})", NODE_LEGEND),
                    unit="s",
                ),
                12,
                8,
            ),
            (
                series(
                    # Only each peer's current outcome is exposed, so count them: a node with no
                    # failed peer still draws its other outcomes instead of "No data".
                    "Peers by the outcome of their last reconciliation, by node",
                    (
                        f"count by (instance, outcome) ({on(m.RECONCILIATION_LAST_OUTCOME)})",
                        NODE_LEGEND + " {{outcome}}",
                    ),
                ),
                12,
                8,
            ),
            (series("Missing transactions, by node", (on(m.MISSING_TRANSACTIONS), NODE_LEGEND)), 12, 8),
            (
                series(
                    "Reconciliation queue, by node",
                    (on(m.RECONCILIATIONS_SCHEDULED), NODE_LEGEND + " scheduled"),
                    (on(m.RECONCILIATIONS_IN_PROGRESS), NODE_LEGEND + " in progress"),
                    (on(m.INCOMING_RECONCILIATIONS), NODE_LEGEND + " incoming"),
                ),
                12,
                8,
            ),
        ],
    )
    activity = Row(
        "Finality and flows",
        [
            (
                series(
                    "Transactions recorded per second, by node",
                    (
                        f"sum by (instance) (deriv({on(m.TRANSACTIONS)}[$__rate_interval]))",
                        NODE_LEGEND,
                    ),
                    unit="ops",
                ),
                8,
                8,
            ),
            (
                series(
                    "IN_FLIGHT transactions, by node",
                    (on(m.TRANSACTIONS, 'status="IN_FLIGHT"'), NODE_LEGEND),
                ),
                8,
                8,
            ),
            (
                series(
                    "Hospitalised and failed flows, by node",
                    (on(m.FLOWS, 'status=~"HOSPITALIZED|FAILED"'), NODE_LEGEND + " {{status}}"),
                ),
                8,
                8,
            ),
        ],
    )
    return Dashboard(
        title="ledger-agent: network",
        uid=UID,
        description="Every ledger-agent of the network: health, reconciliation, finality, the flow hospital",
        tags=["ledger-agent"],
        schemaVersion=SCHEMA_VERSION,
        templating=Templating(
            list=[
                datasource_variable(),
                Template(
                    name="node",
                    label="nodes",
                    query=f"label_values({m.LEDGER_GRAPH_INITIALIZED.name}, instance)",
                    dataSource=DATASOURCE,
                    includeAll=True,
                    multi=True,
                    allValue=".*",
                    default="$__all",
                ),
            ]
        ),
        panels=layout([health, reconciliation, activity, network_row(on)]),
    ).auto_panel_ids()

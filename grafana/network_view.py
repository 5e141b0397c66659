"""Every agent at once: which nodes are healthy, reconciled and caught up (`node` picks some or all)."""

from __future__ import annotations

from grafanalib.core import Dashboard, Template, Templating

from grafana.hospital_rows import network_row
from grafana.panels import DATASOURCE, Row, layout, prometheus_input, selector, series, stat
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
                    f"count({on(m.LEDGER_GRAPH_INITIALIZED)} == 0) or vector(0)",
                ),
                6,
                4,
            ),
            (
                stat(
                    "Nodes not self-consistent",
                    f"count({on(m.LEDGER_GRAPH_SELF_CONSISTENT)} == 0) or vector(0)",
                ),
                6,
                4,
            ),
            (stat("Missing transactions, all nodes", f"sum({on(m.MISSING_TRANSACTIONS)})"), 6, 4),
            (
                stat(
                    "IN_FLIGHT transactions, all nodes",
                    "sum(" + on(m.TRANSACTIONS, 'status="IN_FLIGHT"') + ")",
                ),
                6,
                4,
            ),
            (
                series(
                    "Ledger graph self-consistent, by node",
                    (on(m.LEDGER_GRAPH_SELF_CONSISTENT), "{{instance}}"),
                ),
                12,
                8,
            ),
            (series("Consistency errors, by node", (on(m.LEDGER_GRAPH_ERRORS), "{{instance}}")), 12, 8),
        ],
    )
    reconciliation = Row(
        "Reconciliation",
        [
            (
                series(
                    "Since the last successful reconciliation, worst peer by node",
                    (f"max by (instance) ({on(m.RECONCILIATION_LAST_SUCCESS_AGE)})", "{{instance}}"),
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
                        "{{instance}} {{outcome}}",
                    ),
                ),
                12,
                8,
            ),
            (series("Missing transactions, by node", (on(m.MISSING_TRANSACTIONS), "{{instance}}")), 12, 8),
            (
                series(
                    "Reconciliation queue, by node",
                    (on(m.RECONCILIATIONS_SCHEDULED), "{{instance}} scheduled"),
                    (on(m.RECONCILIATIONS_IN_PROGRESS), "{{instance}} in progress"),
                    (on(m.INCOMING_RECONCILIATIONS), "{{instance}} incoming"),
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
                        "{{instance}}",
                    ),
                    unit="ops",
                ),
                8,
                8,
            ),
            (
                series(
                    "IN_FLIGHT transactions, by node",
                    (on(m.TRANSACTIONS, 'status="IN_FLIGHT"'), "{{instance}}"),
                ),
                8,
                8,
            ),
            (
                series(
                    "Hospitalised and failed flows, by node",
                    (on(m.FLOWS, 'status=~"HOSPITALIZED|FAILED"'), "{{instance}} {{status}}"),
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
        inputs=[prometheus_input()],
        templating=Templating(
            list=[
                Template(
                    name="node",
                    label="nodes",
                    query=f"label_values({m.LEDGER_GRAPH_INITIALIZED.name}, instance)",
                    dataSource=DATASOURCE,
                    includeAll=True,
                    multi=True,
                    allValue=".*",
                    default="$__all",
                )
            ]
        ),
        panels=layout([health, reconciliation, activity, network_row(on)]),
    ).auto_panel_ids()

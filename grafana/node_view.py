"""One agent: LedgerSync, the ledger graph's health, flows, the flow hospital, finality (transactions
IN_FLIGHT) and Ledger Recovery."""

from __future__ import annotations

from grafanalib.core import Dashboard, Template, Templating

from grafana import ledger_recovery_rows
from grafana.hospital_rows import node_row
from grafana.modern import SCHEMA_VERSION
from grafana.panels import (
    DATASOURCE,
    NEUTRAL,
    Row,
    ages,
    datasource_variable,
    flag,
    layout,
    problems,
    selector,
    series,
    stat,
)
from mbeans import metrics as m

UID = "ledgeragent-node"


def on(metric: m.Metric, labels: str = "") -> str:
    """The metric on the selected node, with extra label matchers (`status="IN_FLIGHT"`)."""
    return selector(metric, "=", labels)


def dashboard() -> Dashboard:
    ledgersync = Row(
        "LedgerSync",
        [
            (
                stat(
                    "Scheduled",
                    NEUTRAL,
                    on(m.RECONCILIATIONS_SCHEDULED),
                    description=m.RECONCILIATIONS_SCHEDULED.help,
                ),
                4,
                4,
            ),
            (stat("In progress", NEUTRAL, on(m.RECONCILIATIONS_IN_PROGRESS)), 4, 4),
            (
                stat(
                    "Incoming",
                    NEUTRAL,
                    on(m.INCOMING_RECONCILIATIONS),
                    description=m.INCOMING_RECONCILIATIONS.help,
                ),
                4,
                4,
            ),
            (
                stat(
                    "Failed peers",
                    problems(),
                    on(m.RECONCILIATIONS_FAILED),
                    description=m.RECONCILIATIONS_FAILED.help,
                ),
                4,
                4,
            ),
            (
                stat(
                    "Missing transactions",
                    problems("orange"),
                    on(m.MISSING_TRANSACTIONS),
                    description=m.MISSING_TRANSACTIONS.help,
                ),
                4,
                4,
            ),
            (
                stat(
                    "Oldest missing (lower bound)",
                    ages(60, 3600),
                    # Without a sample there is nothing missing: show 0 rather than "no data".
                    f"{on(m.MISSING_TRANSACTIONS_OLDEST_AGE)} or {on(m.MISSING_TRANSACTIONS)} * 0",
                    unit="s",
                    description=m.MISSING_TRANSACTIONS_OLDEST_AGE.help,
                ),
                4,
                4,
            ),
            (
                series(
                    "Reconciliations",
                    (on(m.RECONCILIATIONS_SCHEDULED), "scheduled"),
                    (on(m.RECONCILIATIONS_IN_PROGRESS), "in progress"),
                    (on(m.RECONCILIATIONS_WITH_DIFFERENCES), "with differences"),
                    (on(m.RECONCILIATIONS_WITHOUT_DIFFERENCES), "without differences"),
                    (on(m.RECONCILIATIONS_FAILED), "failed"),
                ),
                12,
                8,
            ),
            (
                series(
                    "Since the last successful reconciliation, by peer",
                    (on(m.RECONCILIATION_LAST_SUCCESS_AGE), "{{party}}"),
                    unit="s",
                    description=m.RECONCILIATION_LAST_SUCCESS_AGE.help,
                ),
                12,
                8,
            ),
            (
                series(
                    "Last outcome, by peer",
                    (f"{on(m.RECONCILIATION_LAST_OUTCOME)} == 1", "{{party}}: {{outcome}}"),
                    description=m.RECONCILIATION_LAST_OUTCOME.help,
                ),
                12,
                8,
            ),
            (series("Missing transactions", (on(m.MISSING_TRANSACTIONS), "missing")), 12, 8),
        ],
    )
    graph = Row(
        "Ledger graph",
        [
            (
                stat(
                    "Initialised",
                    flag("built", "building", "orange"),
                    on(m.LEDGER_GRAPH_INITIALIZED),
                    description="1: built; 0: still building",
                ),
                6,
                4,
            ),
            (
                stat(
                    "Self-consistent",
                    flag("consistent", "not consistent"),
                    on(m.LEDGER_GRAPH_SELF_CONSISTENT),
                    description="1: passed; 0: failed or not checked",
                ),
                6,
                4,
            ),
            (stat("Consistency errors", problems(), on(m.LEDGER_GRAPH_ERRORS)), 6, 4),
            (stat("Transactions in the graph", NEUTRAL, on(m.LEDGER_GRAPH_TRANSACTIONS)), 6, 4),
        ],
    )
    flows = Row(
        "Flows",
        [
            (stat("Hospitalised", problems(), on(m.FLOWS, 'status="HOSPITALIZED"')), 4, 8),
            (stat("Failed", problems(), on(m.FLOWS, 'status="FAILED"')), 4, 8),
            (series("Flows by status", (on(m.FLOWS), "{{status}}")), 16, 8),
        ],
    )
    finality = Row(
        "Finality",
        [
            (
                stat(
                    "IN_FLIGHT transactions",
                    problems("yellow"),
                    on(m.TRANSACTIONS, 'status="IN_FLIGHT"'),
                    description="Two-phase finality begun and not finished; should drain to 0",
                ),
                4,
                8,
            ),
            (stat("Unconsumed states", NEUTRAL, on(m.VAULT_UNCONSUMED_STATES)), 4, 8),
            (series("Transactions by status", (on(m.TRANSACTIONS), "{{status}}")), 16, 8),
            (
                stat(
                    "Oldest IN_FLIGHT",
                    ages(300, 1800),
                    on(m.IN_FLIGHT_OLDEST_AGE),
                    unit="s",
                    description=m.IN_FLIGHT_OLDEST_AGE.help
                    + " (FinalityInFlightTooLong fires over 30 minutes)",
                ),
                4,
                8,
            ),
            (
                series(
                    "IN_FLIGHT by age (at most)",
                    (on(m.IN_FLIGHT_BY_AGE), "<= {{age}}"),
                    description=m.IN_FLIGHT_BY_AGE.help,
                ),
                20,
                8,
            ),
        ],
    )
    return Dashboard(
        title="ledger-agent: node",
        uid=UID,
        description="One ledger-agent: LedgerSync, the ledger graph, flows, the flow hospital, finality and "
        "Ledger Recovery",
        tags=["ledger-agent"],
        schemaVersion=SCHEMA_VERSION,
        templating=Templating(
            list=[
                datasource_variable(),
                Template(
                    name="node",
                    label="node",
                    query=f"label_values({m.LEDGER_GRAPH_INITIALIZED.name}, instance)",
                    dataSource=DATASOURCE,
                ),
            ]
        ),
        panels=layout([ledgersync, graph, flows, node_row(on), finality, ledger_recovery_rows.node_row(on)]),
    ).auto_panel_ids()

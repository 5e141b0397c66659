"""Every Prometheus metric the agent exposes, in one place.

The collectors (mbeans.prometheus), the dashboards (grafana/) and the alert rules (alerts/) take
their names from here, and tests check that every name they use is one of these. All are gauges:
each reads the current state of a bean at scrape time, so none is a counter and none ends in
`_total`. Labels are bounded: status names, outcome names and peer party names (a network's peers
are few and known), never transaction or flow ids.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "ledgeragent_"


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    labels: tuple[str, ...] = ()


def _gauge(suffix: str, help: str, *labels: str) -> Metric:
    return Metric(PREFIX + suffix, help, labels)


# -- LedgerSync (the reference's JMX counts, from requester rows' last_reconciliation_status) -------
RECONCILIATIONS_SCHEDULED = _gauge("reconciliations_scheduled", "Reconciliations queued for execution")
RECONCILIATIONS_IN_PROGRESS = _gauge("reconciliations_in_progress", "Reconciliations executing now")
RECONCILIATIONS_FAILED = _gauge(
    "reconciliations_failed", "Peers whose last reconciliation requested by this node failed"
)
RECONCILIATIONS_WITH_DIFFERENCES = _gauge(
    "reconciliations_with_differences", "Peers whose last reconciliation found differences"
)
RECONCILIATIONS_WITHOUT_DIFFERENCES = _gauge(
    "reconciliations_without_differences", "Peers whose last reconciliation found no difference"
)
INCOMING_RECONCILIATIONS = _gauge(
    "incoming_reconciliations", "Reconciliations other parties are running with this node now"
)
RECONCILIATION_LAST_SUCCESS_AGE = _gauge(
    "reconciliation_last_success_age_seconds",
    "Seconds since the last reconciliation with the peer that ended without error finished "
    "(peers never reconciled successfully have no sample)",
    "party",
)
RECONCILIATION_LAST_OUTCOME = _gauge(
    "reconciliation_last_outcome",
    "1, labelled with the outcome of the last reconciliation with the peer (lastReconciliationStatus)",
    "party",
    "outcome",
)
MISSING_TRANSACTIONS = _gauge(
    "missing_transactions",
    "Distinct transaction ids the latest successful reconciliations found missing here and not yet "
    "recovered (RefreshReconciliationStatusesFlow drops the recovered ones)",
)
MISSING_TRANSACTIONS_OLDEST_AGE = _gauge(
    "missing_transactions_oldest_age_seconds",
    "Seconds since the earliest finish of a successful reconciliation whose result still lists missing "
    "ids (a lower bound: a later successful run that finds them again restarts it); no sample when none",
)

# -- the ledger graph ------------------------------------------------------------------------------
LEDGER_GRAPH_INITIALIZED = _gauge("ledger_graph_initialized", "1 once the ledger graph is built")
LEDGER_GRAPH_SELF_CONSISTENT = _gauge(
    "ledger_graph_self_consistent", "1 if the ledger passed the self-consistency check"
)
LEDGER_GRAPH_ERRORS = _gauge("ledger_graph_errors", "Errors the self-consistency check found")
LEDGER_GRAPH_TRANSACTIONS = _gauge("ledger_graph_transactions", "Transactions in the ledger graph")

# -- the node --------------------------------------------------------------------------------------
TRANSACTIONS = _gauge("transactions", "Transactions recorded, by status (VERIFIED, IN_FLIGHT, ...)", "status")
FLOWS = _gauge("flows", "Flows by checkpoint status (RUNNABLE, FAILED, HOSPITALIZED, ...)", "status")
VAULT_UNCONSUMED_STATES = _gauge("vault_unconsumed_states", "Unconsumed states in the vault")
SCRAPE_ERRORS = _gauge(
    "scrape_errors", "Bean reads that failed during this scrape (their metrics are left out; see the log)"
)

ALL: tuple[Metric, ...] = (
    RECONCILIATIONS_SCHEDULED,
    RECONCILIATIONS_IN_PROGRESS,
    RECONCILIATIONS_FAILED,
    RECONCILIATIONS_WITH_DIFFERENCES,
    RECONCILIATIONS_WITHOUT_DIFFERENCES,
    INCOMING_RECONCILIATIONS,
    RECONCILIATION_LAST_SUCCESS_AGE,
    RECONCILIATION_LAST_OUTCOME,
    MISSING_TRANSACTIONS,
    MISSING_TRANSACTIONS_OLDEST_AGE,
    LEDGER_GRAPH_INITIALIZED,
    LEDGER_GRAPH_SELF_CONSISTENT,
    LEDGER_GRAPH_ERRORS,
    LEDGER_GRAPH_TRANSACTIONS,
    TRANSACTIONS,
    FLOWS,
    VAULT_UNCONSUMED_STATES,
    SCRAPE_ERRORS,
)
NAMES: frozenset[str] = frozenset(m.name for m in ALL)

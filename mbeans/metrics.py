"""Every Prometheus metric the agent exposes, in one place.

The collectors (mbeans.prometheus), the dashboards (grafana/) and the alert rules (alerts/) take
their names from here, and tests check that every name they use is one of these. Almost all are
gauges, each reading the current state of a bean at scrape time; the flow hospital's admissions and
retries are counters (the hospital counts them in memory since the agent started), named `_total` as
exposed; flows' durations are a histogram. Labels are bounded: status names, outcome names, peer party names (a network's peers are few
and known), the hospital's diagnoses and staff names (its members and node.conf's `rules[i]`), never
transaction or flow ids.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "ledgeragent_"


GAUGE = "gauge"
COUNTER = "counter"
HISTOGRAM = "histogram"


@dataclass(frozen=True)
class Metric:
    name: str  # as exposed and queried: a counter's ends in _total
    help: str
    labels: tuple[str, ...] = ()
    kind: str = GAUGE


def _gauge(suffix: str, help: str, *labels: str) -> Metric:
    return Metric(PREFIX + suffix, help, labels)


def _counter(suffix: str, help: str, *labels: str) -> Metric:
    assert suffix.endswith("_total"), suffix
    return Metric(PREFIX + suffix, help, labels, COUNTER)


def _histogram(suffix: str, help: str, *labels: str) -> Metric:
    # Queried as name_bucket{le=...}, name_sum and name_count.
    return Metric(PREFIX + suffix, help, labels, HISTOGRAM)


# -- the agent itself (Prometheus' conventions: an info metric of value 1 carries the labels) --------
BUILD_INFO = _gauge("build_info", "1, labelled with the agent's version and Python's", "version", "python")
NODE_INFO = _gauge(
    "node_info",
    "1, labelled with the node's legal name and role (node or notary): join on instance to name a "
    "series by node (Grafana's legends do)",
    "node",
    "role",
)


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
RECONCILIATION_LAST_SUCCESS_TIME = _gauge(
    "reconciliation_last_success_timestamp_seconds",
    "Unix time at which the last reconciliation with the peer that ended without error finished "
    "(Prometheus' guidance: export when, and let the query take time() - it); no sample if never",
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

MISSING_TRANSACTIONS_OLDEST_TIME = _gauge(
    "missing_transactions_oldest_timestamp_seconds",
    "Unix time of the earliest finish of a successful reconciliation whose result still lists missing "
    "ids; no sample when none",
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

# -- finality (agent.finality.ages; docs/finality-recovery.md, "Monitoring finality") ---------------
IN_FLIGHT_OLDEST_AGE = _gauge(
    "in_flight_oldest_age_seconds",
    "Seconds since the oldest transaction IN_FLIGHT here (two-phase finality begun, not finished) was "
    "recorded; 0 without one",
)
IN_FLIGHT_BY_AGE = _gauge(
    "in_flight_transactions_by_age",
    "Transactions IN_FLIGHT here at most `age` old (1m, 10m, 1h, 1d; +Inf is all of them): cumulative, "
    "like a histogram's buckets",
    "age",
)
IN_FLIGHT_OLDEST_TIME = _gauge(
    "in_flight_oldest_timestamp_seconds",
    "Unix time at which the oldest transaction IN_FLIGHT here was recorded; no sample without one",
)
FINALITY_AUTO_RECOVERY_SCANS = _counter(
    "finality_auto_recovery_scans_total",
    "Scans of the automatic finality recovery (node.conf's finalityRecovery.autoRecover) begun since the "
    "agent started; 0 while it is off",
)

# -- the flow hospital (agent.hospital; docs/hospital.md, "Monitoring the hospital") -----------------
HOSPITAL_PATIENTS = _gauge(
    "hospital_patients",
    "Flows under the flow hospital's care (kept for observation, or waiting for a retry of the step "
    "that failed), by checkpoint status, last diagnosis and the staff member or node.conf rule that gave it",
    "status",
    "diagnosis",
    "staff",
)
HOSPITAL_OLDEST_PATIENT_AGE = _gauge(
    "hospital_oldest_patient_age_seconds",
    "Seconds since the first error, at its current checkpoint, of the longest-staying patient of the group "
    "(progress to a new checkpoint starts it again)",
    "status",
    "diagnosis",
    "staff",
)
HOSPITAL_PATIENT_ATTEMPTS_MAX = _gauge(
    "hospital_patient_attempts_max",
    "The most errors any patient of the group has had at its current checkpoint",
    "status",
    "diagnosis",
    "staff",
)
HOSPITAL_ADMISSIONS = _counter(
    "hospital_admissions_total",
    "Flow errors the hospital diagnosed since the agent started, by the staff member or node.conf rule "
    "that decided (- when nobody's specialty) and the diagnosis",
    "staff",
    "diagnosis",
)
HOSPITAL_RETRIES = _counter(
    "hospital_retries_total",
    "Retries the hospital ordered (DISCHARGE) since the agent started, by staff member or node.conf rule; "
    "0 for every member and retry rule until its first",
    "staff",
)

# -- Ledger Recovery (agent.management.ledger_recovery_monitoring; docs/ledger-recovery.md, "Monitoring") --
# A row of node_recovery_missing is one transaction missing here, as one peer's record showed it.
LEDGER_RECOVERY_MISSING = _gauge(
    "ledger_recovery_missing_transactions",
    "Transactions Ledger Recovery found missing here, by peer and status (PENDING, RECOVERED, "
    "UNRECOVERABLE): rows of node_recovery_missing, one per peer and record",
    "peer",
    "status",
)
LEDGER_RECOVERY_RECOVERED = _counter(
    "ledger_recovery_recovered_transactions_total",
    "Missing transactions Ledger Recovery recovered from the peer (its RECOVERED rows, which only ever "
    "grow: kept in the database, so a restart does not reset it); rate() of it is the recovery rate",
    "peer",
)
LEDGER_RECOVERY_ESTIMATED_REMAINING = _gauge(
    "ledger_recovery_estimated_seconds_remaining",
    "The peer's PENDING rows divided by the rows that left PENDING in the agent's last minute: 0 with "
    "nothing pending, no sample while nothing moved",
    "peer",
)
LEDGER_RECOVERY_LAST_PROGRESS = _gauge(
    "ledger_recovery_last_progress_timestamp_seconds",
    "Unix time of the latest change to one of the peer's missing-transaction rows (found, recovered or "
    "given up)",
    "peer",
)
LEDGER_RECOVERY_RUNNING = _gauge("ledger_recovery_running", "LedgerRecoveryFlows RUNNABLE now")

# -- the peer endpoint ----------------------------------------------------------------------------------
PEER_MESSAGES_REFUSED = _counter(
    "peer_messages_refused_total",
    "Messages to the peer endpoint refused before any handler saw them, since the agent started, by "
    "error (MalformedMessageError, StaleMessageError, ReplayedMessageError, BadMessageSignatureError, "
    "UnknownSenderError, SenderCertificateMismatchError, MessageTooLargeError, UnknownTopicError, ...)",
    "error",
)

# -- flows' durations (agent.flows.durations) ----------------------------------------------------------
FLOW_DURATION = _histogram(
    "flow_duration_seconds",
    "Time from a flow's start to its end, by flow name (ReconcileWithPartyFlow is a reconciliation, "
    "LedgerRecoveryFlow a recovery, FinalityFlow and ReceiveFinalityFlow finality) and how it ended "
    "(COMPLETED, FAILED, KILLED), since the agent started",
    "flow",
    "outcome",
)

SCRAPE_ERRORS = _gauge(
    "scrape_errors", "Bean reads that failed during this scrape (their metrics are left out; see the log)"
)

ALL: tuple[Metric, ...] = (
    BUILD_INFO,
    NODE_INFO,
    RECONCILIATIONS_SCHEDULED,
    RECONCILIATIONS_IN_PROGRESS,
    RECONCILIATIONS_FAILED,
    RECONCILIATIONS_WITH_DIFFERENCES,
    RECONCILIATIONS_WITHOUT_DIFFERENCES,
    INCOMING_RECONCILIATIONS,
    RECONCILIATION_LAST_SUCCESS_AGE,
    RECONCILIATION_LAST_SUCCESS_TIME,
    RECONCILIATION_LAST_OUTCOME,
    MISSING_TRANSACTIONS,
    MISSING_TRANSACTIONS_OLDEST_AGE,
    MISSING_TRANSACTIONS_OLDEST_TIME,
    LEDGER_GRAPH_INITIALIZED,
    LEDGER_GRAPH_SELF_CONSISTENT,
    LEDGER_GRAPH_ERRORS,
    LEDGER_GRAPH_TRANSACTIONS,
    TRANSACTIONS,
    FLOWS,
    VAULT_UNCONSUMED_STATES,
    IN_FLIGHT_OLDEST_AGE,
    IN_FLIGHT_OLDEST_TIME,
    IN_FLIGHT_BY_AGE,
    FINALITY_AUTO_RECOVERY_SCANS,
    HOSPITAL_PATIENTS,
    HOSPITAL_OLDEST_PATIENT_AGE,
    HOSPITAL_PATIENT_ATTEMPTS_MAX,
    HOSPITAL_ADMISSIONS,
    HOSPITAL_RETRIES,
    LEDGER_RECOVERY_MISSING,
    LEDGER_RECOVERY_RECOVERED,
    LEDGER_RECOVERY_ESTIMATED_REMAINING,
    LEDGER_RECOVERY_LAST_PROGRESS,
    LEDGER_RECOVERY_RUNNING,
    PEER_MESSAGES_REFUSED,
    FLOW_DURATION,
    SCRAPE_ERRORS,
)
NAMES: frozenset[str] = frozenset(m.name for m in ALL)
# The series a histogram is queried by.
SERIES: frozenset[str] = NAMES | frozenset(
    f"{m.name}{suffix}" for m in ALL if m.kind == HISTOGRAM for suffix in ("_bucket", "_sum", "_count")
)
# Prometheus' own series for each target, and the process and runtime metrics the agent exports
# (prometheus_client's process, platform and GC collectors).
STANDARD: frozenset[str] = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "python_info",
        "python_gc_objects_collected_total",
        "python_gc_collections_total",
    }
)
# No sample until a flow has ended, or a peer's message was refused, since the agent started.
FLOW_EVENT_NAMES: frozenset[str] = frozenset({FLOW_DURATION.name})
PEER_EVENT_NAMES: frozenset[str] = frozenset({PEER_MESSAGES_REFUSED.name})
# No sample at all until the hospital has a patient (the gauges by group) or has diagnosed an error.
HOSPITAL_EVENT_NAMES: frozenset[str] = frozenset(
    m.name
    for m in (
        HOSPITAL_PATIENTS,
        HOSPITAL_OLDEST_PATIENT_AGE,
        HOSPITAL_PATIENT_ATTEMPTS_MAX,
        HOSPITAL_ADMISSIONS,
    )
)
# No sample until Ledger Recovery has found a missing transaction (per peer; the estimate also needs a
# rate); LEDGER_RECOVERY_RUNNING is always there.
LEDGER_RECOVERY_EVENT_NAMES: frozenset[str] = frozenset(
    m.name
    for m in (
        LEDGER_RECOVERY_MISSING,
        LEDGER_RECOVERY_RECOVERED,
        LEDGER_RECOVERY_ESTIMATED_REMAINING,
        LEDGER_RECOVERY_LAST_PROGRESS,
    )
)

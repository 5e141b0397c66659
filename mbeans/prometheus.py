"""Prometheus adapter: a collector that reads the agent's beans at scrape time, and GET /metrics.

Each agent gets its own CollectorRegistry (never prometheus_client's process-global one), so several
agents in one process (the tests' in-process networks) expose only their own figures. Every value is
read through the beans (agent.management.beans; their names are mbeans.names), as the other adapters read them; the names are in
mbeans.metrics.

The text format is served as `text/plain; version=0.0.4`: prometheus-client 0.26 names its own
output version 1.0.0, but the body is the 0.0.4 text format, which every Prometheus 2.x parses.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request
from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from agent.errors import TooManyLoginAttemptsError
from mbeans import metrics as m
from mbeans.access import (
    REALM,
    THROTTLED_ERROR,
    TOO_MANY_REQUESTS,
    Authenticator,
    client_address,
    retry_after,
)
from mbeans.errors import InstanceNotFoundException
from mbeans.model import MBean
from mbeans.names import FLOW_HOSPITAL, FLOWS, LEDGER_GRAPH, LEDGER_RECOVERY, LEDGER_SYNC, NODE
from mbeans.registry import MBeanRegistry

log = logging.getLogger("ledger_agent.management.prometheus")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SURFACE = "metrics"  # what the audit log records of a failed login that came this way
OUTCOMES = ("IN_PROGRESS", "DIFFERENCES_FOUND", "DIFFERENCES_NOT_FOUND", "FAILED", "STOPPED")


def _gauge(metric: m.Metric) -> GaugeMetricFamily:
    return GaugeMetricFamily(metric.name, metric.help, labels=list(metric.labels))


def _single(metric: m.Metric, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(metric.name, metric.help, value=value)


def _counter(metric: m.Metric) -> CounterMetricFamily:
    # The family drops the _total of metric.name; the exposition puts it back on the samples.
    return CounterMetricFamily(metric.name, metric.help, labels=list(metric.labels))


def _family(metric: m.Metric) -> Metric:
    return _counter(metric) if metric.kind == m.COUNTER else _gauge(metric)


class BeanCollector(Collector):
    """The metrics of mbeans.metrics, read from the beans of one agent's MBeanRegistry."""

    def __init__(self, beans: MBeanRegistry) -> None:
        self._beans = beans

    def describe(self) -> Iterator[Metric]:
        # Lets CollectorRegistry refuse a second collector with the same names.
        for metric in m.ALL:
            yield _family(metric)

    def collect(self) -> Iterator[Metric]:
        errors = 0
        for read in (
            self._node,
            self._flows,
            self._hospital,
            self._ledger_graph,
            self._ledger_sync,
            self._ledger_recovery,
        ):
            try:
                # Listed before yielding: a failed read leaves out the whole group, not half of it.
                families = list(read())
            except Exception:
                log.exception("a bean read failed during a scrape; its metrics are left out")
                errors += 1
                continue
            yield from families
        yield _single(m.SCRAPE_ERRORS, errors)

    def _bean(self, name: Any) -> MBean | None:
        try:
            return self._beans.get(name)
        except InstanceNotFoundException:
            return None  # LedgerSync is off on this node (a notary, by default)

    def _node(self) -> Iterator[Metric]:
        node = self._beans.get(NODE)
        if "Version" in node.attributes:
            build = _gauge(m.BUILD_INFO)
            build.add_metric([node.get("Version"), platform.python_version()], 1)
            yield build
        info = _gauge(m.NODE_INFO)
        info.add_metric([node.get("Identity"), node.get("Role")], 1)
        yield info
        if "RefusedPeerMessages" in node.attributes:
            refused = _counter(m.PEER_MESSAGES_REFUSED)
            for error, count in sorted(node.get("RefusedPeerMessages").items()):
                refused.add_metric([error], count)
            yield refused
        transactions = _gauge(m.TRANSACTIONS)
        for status, count in sorted(node.get("TransactionsByStatus").items()):
            transactions.add_metric([status], count)
        yield transactions
        yield _single(m.VAULT_UNCONSUMED_STATES, node.get("UnconsumedStates"))
        if "InFlightByAge" in node.attributes:  # agent.management.finality_monitoring's
            oldest_age = node.get("OldestInFlightAgeSeconds")
            yield _single(m.IN_FLIGHT_OLDEST_AGE, oldest_age)
            oldest = _gauge(m.IN_FLIGHT_OLDEST_TIME)
            if oldest_age:
                oldest.add_metric([], int(node.get("Time")) / 1000 - oldest_age)
            yield oldest
            by_age = _gauge(m.IN_FLIGHT_BY_AGE)
            for age, count in node.get("InFlightByAge").items():
                by_age.add_metric([age], count)
            yield by_age
        if "AutoRecoveryScans" in node.attributes:  # the same module's, when the runtime has the policy
            scans = _counter(m.FINALITY_AUTO_RECOVERY_SCANS)
            scans.add_metric([], node.get("AutoRecoveryScans"))
            yield scans

    def _flows(self) -> Iterator[Metric]:
        bean = self._beans.get(FLOWS)
        flows = _gauge(m.FLOWS)
        for status, count in sorted(bean.get("FlowsByStatus").items()):
            flows.add_metric([status], count)
        yield flows
        if "FlowDurations" in bean.attributes:
            yield flow_duration_metric(bean.get("FlowDurations"))

    def _hospital(self) -> Iterator[Metric]:
        hospital = self._bean(FLOW_HOSPITAL)
        if hospital is None:
            return
        yield from hospital_metrics(
            hospital.get("PatientGroups"), hospital.get("Admissions"), hospital.get("Retries")
        )

    def _ledger_graph(self) -> Iterator[Metric]:
        graph = self._bean(LEDGER_GRAPH)
        if graph is None:
            return
        yield _single(m.LEDGER_GRAPH_INITIALIZED, 1 if graph.get("IsInitialized") else 0)
        yield _single(m.LEDGER_GRAPH_SELF_CONSISTENT, 1 if graph.get("IsSelfConsistent") else 0)
        yield _single(m.LEDGER_GRAPH_ERRORS, graph.get("ErrorCount"))
        yield _single(m.LEDGER_GRAPH_TRANSACTIONS, graph.get("Size"))

    def _ledger_sync(self) -> Iterator[Metric]:
        sync = self._bean(LEDGER_SYNC)
        if sync is None:
            return
        for metric, attribute in (
            (m.RECONCILIATIONS_SCHEDULED, "NumberOfScheduledReconciliations"),
            (m.RECONCILIATIONS_IN_PROGRESS, "NumberOfReconciliationsInProgress"),
            (m.RECONCILIATIONS_FAILED, "NumberOfFailedReconciliations"),
            (m.RECONCILIATIONS_WITH_DIFFERENCES, "NumberOfReconciliationsWithDifferences"),
            (m.RECONCILIATIONS_WITHOUT_DIFFERENCES, "NumberOfReconciliationsWithoutDifferences"),
            (m.INCOMING_RECONCILIATIONS, "NumberOfIncomingReconciliations"),
        ):
            yield _single(metric, sync.get(attribute))
        # Ages are measured on the agent's own clock (the Node bean's Time), the clock that stamped
        # the statuses, so a simulated clock in tests gives exact ages.
        now_ms = int(self._beans.get(NODE).get("Time"))
        yield from status_metrics(sync.get("PeerSummaries"), now_ms)

    def _ledger_recovery(self) -> Iterator[Metric]:
        recovery = self._bean(LEDGER_RECOVERY)
        if recovery is None or "PeerProgress" not in recovery.attributes:
            return
        yield from ledger_recovery_metrics(recovery.get("PeerProgress"), recovery.get("RunningFlows"))


def flow_duration_metric(series: list[dict[str, Any]]) -> Metric:
    """The histogram of flows' durations from the Flows bean's FlowDurations (agent.flows.durations)."""
    family = HistogramMetricFamily(
        m.FLOW_DURATION.name, m.FLOW_DURATION.help, labels=list(m.FLOW_DURATION.labels)
    )
    for entry in series:
        buckets = [(bound, count) for bound, count in entry["buckets"].items()]
        buckets.append(("+Inf", entry["count"]))
        family.add_metric([entry["flow"], entry["outcome"]], buckets, entry["sum"])
    return family


def status_metrics(statuses: list[dict[str, Any]], now_ms: int) -> Iterator[Metric]:
    """The per-peer and missing-transaction gauges from the requester statuses (LedgerSync's `Statuses`)."""
    age = _gauge(m.RECONCILIATION_LAST_SUCCESS_AGE)
    when = _gauge(m.RECONCILIATION_LAST_SUCCESS_TIME)
    outcome = _gauge(m.RECONCILIATION_LAST_OUTCOME)
    missing: set[str] = set()
    oldest_ms: int | None = None
    for status in statuses:
        party = status["partyName"]
        finished = status["lastSuccessfulReconciliationTimeFinished"]
        if finished is not None:
            age.add_metric([party], max(0, now_ms - finished) / 1000)
            when.add_metric([party], finished / 1000)
        # Only the current outcome: four zero samples per peer would be most of a scrape over
        # thousands of peers; a changed outcome's old series goes stale, as Prometheus expects.
        outcome.add_metric([party, status["lastReconciliationStatus"]], 1)
        ids = status["lastSuccessfulReconciliationResult"]
        if ids:
            missing.update(ids)
            if finished is not None and (oldest_ms is None or finished < oldest_ms):
                oldest_ms = finished
    yield age
    yield when
    yield outcome
    yield _single(m.MISSING_TRANSACTIONS, len(missing))
    if oldest_ms is not None:
        yield _single(m.MISSING_TRANSACTIONS_OLDEST_AGE, max(0, now_ms - oldest_ms) / 1000)
        yield _single(m.MISSING_TRANSACTIONS_OLDEST_TIME, oldest_ms / 1000)


def hospital_metrics(
    groups: list[dict[str, Any]], admissions: list[dict[str, Any]], retries: dict[str, int]
) -> Iterator[Metric]:
    """The flow hospital's gauges by patient group and its counters (the FlowHospital bean's
    PatientGroups, Admissions and Retries)."""
    families = {
        "patients": _gauge(m.HOSPITAL_PATIENTS),
        "oldestAgeSeconds": _gauge(m.HOSPITAL_OLDEST_PATIENT_AGE),
        "mostAttempts": _gauge(m.HOSPITAL_PATIENT_ATTEMPTS_MAX),
    }
    # No patient, no sample: a group that empties goes stale, as a flow leaving the hospital should.
    for group in groups:
        labels = [group["status"], group["diagnosis"], group["staff"]]
        for field, family in families.items():
            family.add_metric(labels, group[field])
    yield from families.values()
    admitted = _counter(m.HOSPITAL_ADMISSIONS)
    for row in admissions:
        admitted.add_metric([row["staff"], row["diagnosis"]], row["count"])
    yield admitted
    retried = _counter(m.HOSPITAL_RETRIES)
    for staff, count in sorted(retries.items()):
        retried.add_metric([staff], count)
    yield retried


def ledger_recovery_metrics(peers: list[dict[str, Any]], running: int) -> Iterator[Metric]:
    """Ledger Recovery's progress per peer and its running flows (the LedgerRecovery bean's PeerProgress
    and RunningFlows, agent.management.ledger_recovery_monitoring)."""
    missing = _gauge(m.LEDGER_RECOVERY_MISSING)
    recovered = _counter(m.LEDGER_RECOVERY_RECOVERED)
    remaining = _gauge(m.LEDGER_RECOVERY_ESTIMATED_REMAINING)
    last = _gauge(m.LEDGER_RECOVERY_LAST_PROGRESS)
    # Only peers with rows: the three statuses each (zeros included, so sums and ratios see them).
    for peer in peers:
        name = peer["peer"]
        for status, key in (
            ("PENDING", "pending"),
            ("RECOVERED", "recovered"),
            ("UNRECOVERABLE", "unrecoverable"),
        ):
            missing.add_metric([name, status], peer[key])
        recovered.add_metric([name], peer["recovered"])
        if peer["estimatedSecondsRemaining"] is not None:
            remaining.add_metric([name], peer["estimatedSecondsRemaining"])
        if peer["lastProgressTimestampSeconds"] is not None:
            last.add_metric([name], peer["lastProgressTimestampSeconds"])
    yield missing
    yield recovered
    yield remaining
    yield last
    yield _single(m.LEDGER_RECOVERY_RUNNING, running)


def collector_registry(beans: MBeanRegistry, *, process: bool = True) -> CollectorRegistry:
    """A registry of its own for one agent: the bean collector, and with process the process's CPU,
    memory and file descriptors, Python's version and its garbage collector (prometheus_client's
    standard collectors). Several in-process agents (tests) would report one process: process=False."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BeanCollector(beans))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def metrics_blueprint(beans: MBeanRegistry, authenticate: Authenticator) -> Blueprint:
    """GET /metrics for any management user (Prometheus scrapes with basic_auth as `monitor`)."""
    registry = collector_registry(beans)
    blueprint = Blueprint("ledger_agent_metrics", __name__)

    def view() -> Response | tuple[Response, int, dict[str, str]]:
        try:
            principal = authenticate(
                request.authorization, address=client_address(request.remote_addr), surface=SURFACE
            )
        except TooManyLoginAttemptsError as exc:
            body = jsonify(error=THROTTLED_ERROR, message=str(exc))
            return body, TOO_MANY_REQUESTS, retry_after(exc)
        if principal is None:
            body = jsonify(error="AuthenticationRequired", message="/metrics needs credentials")
            return body, 401, {"WWW-Authenticate": REALM}
        return Response(generate_latest(registry), content_type=CONTENT_TYPE)

    blueprint.add_url_rule("/metrics", "metrics", view, methods=["GET"])
    return blueprint

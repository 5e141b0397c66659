"""/metrics from in-process agents: names from mbeans.metrics, bounded labels, figures that match the
statuses, one registry per agent, and basic auth (any management user; 401 otherwise)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry, Metric

import agent
from agent.flows.checkpoints import FlowStatus
from agent.hospital.hospital import FlowHospital
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.vault import TransactionStatus
from agent.ledgersync.app import LedgerSync
from agent.management.app import create_management_app
from agent.management.beans import flows_bean, node_bean
from agent.management.commands import NodeCommands
from agent.management.hospital_monitoring import add_monitoring_attributes
from agent.network.bootstrap import MONITOR_PASSWORD_FILE, MONITOR_USER
from agent.runtime import AgentRuntime
from agent.store.ledger_store import LedgerStore
from mbeans import metrics as m
from mbeans.model import JavaType, MBean
from mbeans.names import FLOW_HOSPITAL, NODE
from mbeans.prometheus import OUTCOMES, BeanCollector, collector_registry, hospital_metrics, status_metrics
from mbeans.registry import MBeanRegistry
from tests.hospital.test_hospital import Ward
from tests.hospital.test_hospital import store as store  # noqa: PLC0414  (the fixture)
from tests.ledgersync.conftest import A, B, C, Net, net

__all__ = ["net"]  # the fixture, from the LedgerSync tests

Samples = dict[str, list[tuple[dict[str, str], float]]]
# A family's type by its name in the text format (a counter's family name has no _total).
KINDS = {metric.name.removesuffix("_total"): metric.kind for metric in m.ALL}


def sync_of(runtime: AgentRuntime) -> LedgerSync:
    assert runtime.ledgersync is not None
    return runtime.ledgersync


def reconcile(sync: LedgerSync, *parties: object) -> None:
    sync.schedule_reconciliation(list(parties))  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    tick = threading.Event()
    while any(sync.is_reconciliation_scheduled_for_party(p) for p in parties):  # type: ignore[arg-type]
        assert time.monotonic() < deadline, "the reconciliations never finished"
        tick.wait(0.02)


def scrape(runtime: AgentRuntime, auth: tuple[str, str]) -> tuple[str, Samples]:
    client = create_management_app(runtime).test_client()
    response = client.get("/metrics", auth=auth)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        if not family.name.startswith(m.PREFIX):  # the process's and the runtime's: prometheus_client's
            assert family.name.startswith(("process_", "python_")), family.name
        else:
            assert family.type == KINDS[family.name], family.name
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return response.headers["Content-Type"], samples


def monitor(net: Net, name: object) -> tuple[str, str]:
    return MONITOR_USER, (net.entry(name).folder / MONITOR_PASSWORD_FILE).read_text().strip()


def value(samples: Samples, metric: m.Metric, **labels: str) -> float:
    (found,) = [v for got, v in samples[metric.name] if got == labels]
    return found


def test_the_exposition_after_a_restore_and_a_reconciliation(tmp_path: Path, net: Net) -> None:
    net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    net.backup(A, tmp_path / "a-backup.db")
    lost = {net[A].tokens.pay(B, 10, "GBP", A).id, net[B].tokens.pay(C, 5, "GBP", A).id}
    net.restore(A, tmp_path / "a-backup.db")
    sync = sync_of(net[A])
    reconcile(sync, B, C)

    content_type, samples = scrape(net[A], monitor(net, A))
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    # Every metric of mbeans.metrics, and only those (the hospital's by group once it has patients),
    # beside the process's and the runtime's; the flows' histogram as its three series.
    ours = {name for name in samples if name.startswith(m.PREFIX)}
    histogram = {f"{m.FLOW_DURATION.name}{suffix}" for suffix in ("_bucket", "_sum", "_count")}
    expected = m.NAMES - m.HOSPITAL_EVENT_NAMES - m.LEDGER_RECOVERY_EVENT_NAMES - m.PEER_EVENT_NAMES
    expected -= {m.FLOW_DURATION.name}
    assert expected - {m.IN_FLIGHT_OLDEST_TIME.name} | histogram <= ours <= m.SERIES
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= set(samples)
    (build,) = samples[m.BUILD_INFO.name]
    assert build[1] == 1 and build[0]["version"] == agent.__version__
    assert samples[m.NODE_INFO.name] == [({"node": str(A), "role": "node"}, 1.0)]
    # The flows ended since the runtime started (the restore started A's again), each in a bucket.
    completed = {
        s["flow"]: v for s, v in samples[f"{m.FLOW_DURATION.name}_count"] if s["outcome"] == "COMPLETED"
    }
    # (The restore started A's runtime again: the reconciliations since.)
    assert completed == {"ReconcileWithPartyFlow": 2}, completed
    infinite = {
        s["flow"]: v
        for s, v in samples[f"{m.FLOW_DURATION.name}_bucket"]
        if s["le"] == "+Inf" and s["outcome"] == "COMPLETED"
    }
    assert infinite == completed

    assert {s["status"] for s, _ in samples[m.TRANSACTIONS.name]} == {s.name for s in TransactionStatus}
    assert {s["status"] for s, _ in samples[m.FLOWS.name]} == {s.name for s in FlowStatus}
    parties = {str(B), str(C)}
    assert {s["party"] for s, _ in samples[m.RECONCILIATION_LAST_OUTCOME.name]} == parties
    assert {s["outcome"] for s, _ in samples[m.RECONCILIATION_LAST_OUTCOME.name]} <= set(OUTCOMES)
    assert all(v == 1 for _, v in samples[m.RECONCILIATION_LAST_OUTCOME.name])  # one sample a peer
    for party in parties:
        current = [
            s["outcome"] for s, v in samples[m.RECONCILIATION_LAST_OUTCOME.name] if s["party"] == party and v
        ]
        status = sync.get_reconciliation_status_for_party(X500Name.parse(party))
        assert status is not None and current == [status.last_reconciliation_status.value]
        assert 0 <= value(samples, m.RECONCILIATION_LAST_SUCCESS_AGE, party=party) < 60
        finished = status.last_successful_reconciliation_time_finished
        assert finished is not None
        assert value(samples, m.RECONCILIATION_LAST_SUCCESS_TIME, party=party) == finished / 1000

    # What the reconciliations found, counted once however many peers reported it.
    reported = {
        i for s in sync.get_reconciliation_statuses() for i in s.last_successful_reconciliation_result
    }
    assert reported and reported <= {SecureHash(bytes(i)) for i in lost}
    assert value(samples, m.MISSING_TRANSACTIONS) == len(reported)
    assert 0 <= value(samples, m.MISSING_TRANSACTIONS_OLDEST_AGE) < 60
    assert value(samples, m.RECONCILIATIONS_WITH_DIFFERENCES) == len(sync.counts().parties_with_difference)
    assert value(samples, m.LEDGER_GRAPH_INITIALIZED) == 1
    assert value(samples, m.LEDGER_GRAPH_SELF_CONSISTENT) == 1
    assert value(samples, m.LEDGER_GRAPH_ERRORS) == 0
    assert value(samples, m.TRANSACTIONS, status="VERIFIED") == net[
        A
    ].node.store.transactions.count_transactions(TransactionStatus.VERIFIED)
    assert value(samples, m.SCRAPE_ERRORS) == 0
    # Nothing IN_FLIGHT after those payments: every bucket 0, and no age.
    assert value(samples, m.IN_FLIGHT_OLDEST_AGE) == 0
    assert m.IN_FLIGHT_OLDEST_TIME.name not in samples
    assert {s["age"]: v for s, v in samples[m.IN_FLIGHT_BY_AGE.name]} == {
        "1m": 0,
        "10m": 0,
        "1h": 0,
        "1d": 0,
        "+Inf": 0,
    }
    # The peer's side: it answered, it requested nothing.
    _, peer = scrape(net[B], monitor(net, B))
    assert m.RECONCILIATION_LAST_OUTCOME.name not in peer
    assert value(peer, m.MISSING_TRANSACTIONS) == 0
    assert m.MISSING_TRANSACTIONS_OLDEST_AGE.name not in peer


def test_messages_refused_at_the_peer_endpoint_are_counted_by_error(net: Net) -> None:
    _, before = scrape(net[A], monitor(net, A))
    assert m.PEER_MESSAGES_REFUSED.name not in before  # none refused yet: no sample
    service = net[A].peer_service
    for _ in range(3):
        assert service.handle(b"\xff not a sealed message")[0] == 400
    assert service.handle(b"x" * (service.max_message_size + 1))[0] == 413
    _, samples = scrape(net[A], monitor(net, A))
    assert sorted(samples[m.PEER_MESSAGES_REFUSED.name], key=lambda s: s[0]["error"]) == [
        ({"error": "MalformedMessageError"}, 3.0),
        ({"error": "MessageTooLargeError"}, 1.0),
    ]


def test_metrics_need_a_management_user(net: Net) -> None:
    client = create_management_app(net[A]).test_client()
    anonymous = client.get("/metrics")
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert "ledgeragent_" not in anonymous.text
    assert client.get("/metrics", auth=(MONITOR_USER, "not-the-password")).status_code == 401
    assert client.get("/metrics", auth=("nobody", "x")).status_code == 401
    assert client.get("/metrics", auth=monitor(net, A)).status_code == 200
    assert client.post("/metrics", auth=monitor(net, A)).status_code == 405


def test_status_metrics_measure_ages_on_the_given_clock() -> None:
    ids = [str(SecureHash(bytes([n]) * 32)) for n in range(3)]

    def status(party: str, last: str, finished: int | None, result: list[str]) -> dict[str, object]:
        return {
            "partyName": party,
            "lastSuccessfulReconciliationTimeFinished": finished,
            "lastSuccessfulReconciliationResult": result,
            "lastReconciliationStatus": last,
        }

    now = 1_000_000
    families = {
        f.name: f
        for f in status_metrics(
            [
                status("O=P1, L=London, C=GB", "DIFFERENCES_FOUND", now - 90_000, ids[:2]),
                status("O=P2, L=Paris, C=FR", "FAILED", now - 30_000, ids[1:]),  # an earlier success
                status("O=P3, L=Rome, C=IT", "FAILED", None, []),  # never succeeded
            ],
            now,
        )
    }
    ages = {s.labels["party"]: s.value for s in families[m.RECONCILIATION_LAST_SUCCESS_AGE.name].samples}
    assert ages == {"O=P1, L=London, C=GB": 90.0, "O=P2, L=Paris, C=FR": 30.0}
    assert families[m.MISSING_TRANSACTIONS.name].samples[0].value == 3
    assert families[m.MISSING_TRANSACTIONS_OLDEST_AGE.name].samples[0].value == 90.0
    # The same as timestamps (Prometheus' guidance): when, not how long ago.
    assert families[m.MISSING_TRANSACTIONS_OLDEST_TIME.name].samples[0].value == (now - 90_000) / 1000
    finished = {s.labels["party"]: s.value for s in families[m.RECONCILIATION_LAST_SUCCESS_TIME.name].samples}
    assert finished == {
        "O=P1, L=London, C=GB": (now - 90_000) / 1000,
        "O=P2, L=Paris, C=FR": (now - 30_000) / 1000,
    }
    outcomes = families[m.RECONCILIATION_LAST_OUTCOME.name].samples
    assert len(outcomes) == 3  # the current outcome of each peer, no zero samples
    assert {(s.labels["party"], s.labels["outcome"]) for s in outcomes if s.value} == {
        ("O=P1, L=London, C=GB", "DIFFERENCES_FOUND"),
        ("O=P2, L=Paris, C=FR", "FAILED"),
        ("O=P3, L=Rome, C=IT", "FAILED"),
    }
    none = {f.name for f in status_metrics([], now)}
    assert m.MISSING_TRANSACTIONS_OLDEST_AGE.name not in none and m.MISSING_TRANSACTIONS.name in none


def test_one_registry_per_agent_and_none_global(net: Net) -> None:
    registry = MBeanRegistry()
    registry.register(node_bean(net[A]))
    registry.register(flows_bean(net[A], NodeCommands(net[A])))
    own = collector_registry(registry, process=False)
    names = {metric.name for metric in own.collect()}
    # No LedgerSync beans (a notary's agent): the node's gauges only, no empty LedgerSync families.
    assert names == {
        m.BUILD_INFO.name,
        m.NODE_INFO.name,
        m.PEER_MESSAGES_REFUSED.name.removesuffix("_total"),  # a counter's family name
        m.TRANSACTIONS.name,
        m.FLOWS.name,
        m.VAULT_UNCONSUMED_STATES.name,
        m.FLOW_DURATION.name,
        m.SCRAPE_ERRORS.name,
    }
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        own.register(BeanCollector(registry))
    create_management_app(net[A])
    assert not any(f.name.startswith(m.PREFIX) for f in prometheus_client.REGISTRY.collect())


def test_a_failing_bean_leaves_out_its_metrics_and_is_counted(net: Net) -> None:
    registry = MBeanRegistry()

    def broken() -> int:
        raise RuntimeError("the store is closed")

    bean = MBean(NODE, "a node whose store fails")
    bean.attribute("TransactionsByStatus", JavaType.MAP, "", broken)
    registry.register(bean)
    registry.register(flows_bean(net[A], NodeCommands(net[A])))
    families = {f.name: f for f in collector_registry(registry).collect()}
    assert m.TRANSACTIONS.name not in families and m.VAULT_UNCONSUMED_STATES.name not in families
    assert m.FLOWS.name in families
    assert families[m.SCRAPE_ERRORS.name].samples[0].value == 1


class HospitalCollector(Collector):
    def __init__(self, bean: MBean) -> None:
        self.bean = bean

    def collect(self) -> Iterator[Metric]:
        return hospital_metrics(
            self.bean.get("PatientGroups"), self.bean.get("Admissions"), self.bean.get("Retries")
        )


def monitoring_bean(hospital: FlowHospital) -> MBean:
    return add_monitoring_attributes(MBean(FLOW_HOSPITAL, "the hospital, as monitoring reads it"), hospital)


def hospital_samples(hospital: FlowHospital) -> Samples:
    """The hospital's metrics through the FlowHospital bean, in the text format and parsed back."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HospitalCollector(monitoring_bean(hospital)))
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        assert family.type == KINDS[family.name], family.name
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def test_the_hospital_metrics_follow_its_patients(store: LedgerStore) -> None:
    ward = Ward(store)
    try:
        before = hospital_samples(ward.hospital)
        # Before any error: no patient, no admission, and a retry count of 0 for every member.
        assert set(before) == {m.HOSPITAL_RETRIES.name}
        assert {s["staff"]: v for s, v in before[m.HOSPITAL_RETRIES.name]} == {
            member.name: 0 for member in ward.hospital.staff
        }

        # A step that asks to be kept (SedationNurse), then 90 s later a real primary-key violation
        # (DuplicateInsertSpecialist: retried at once, then after a back-off on the manual clock).
        kept = ward.start(key="k", sedate=True)
        ward.wait_records(kept.flow_id, 1)
        assert kept.wait_for(
            lambda h: h.checkpoint is not None and h.checkpoint.status is FlowStatus.HOSPITALIZED, 10
        )
        ward.clock.advance(timedelta(seconds=90))
        store.keys.add_aes_keys({"taken": b"x"})
        retried = ward.start(key="taken")
        ward.wait_records(retried.flow_id, 2)
        assert retried.wait_for(lambda _: ward.engine.wake_at(retried.flow_id) is not None, 10)
        ward.clock.advance(timedelta(seconds=5))  # less than its back-off (10 s or more): it waits

        samples = hospital_samples(ward.hospital)
        kept_group = {
            "status": "HOSPITALIZED",
            "diagnosis": "OVERNIGHT_OBSERVATION",
            "staff": "SedationNurse",
        }
        retried_group = {"status": "RUNNABLE", "diagnosis": "DISCHARGE", "staff": "DuplicateInsertSpecialist"}
        assert samples[m.HOSPITAL_PATIENTS.name] == [(kept_group, 1), (retried_group, 1)]
        assert samples[m.HOSPITAL_OLDEST_PATIENT_AGE.name] == [(kept_group, 95), (retried_group, 5)]
        assert samples[m.HOSPITAL_PATIENT_ATTEMPTS_MAX.name] == [(kept_group, 1), (retried_group, 2)]
        admissions = {(s["staff"], s["diagnosis"]): v for s, v in samples[m.HOSPITAL_ADMISSIONS.name]}
        assert admissions == {
            ("DuplicateInsertSpecialist", "DISCHARGE"): 2,
            ("SedationNurse", "OVERNIGHT_OBSERVATION"): 1,
        }
        retries = {s["staff"]: v for s, v in samples[m.HOSPITAL_RETRIES.name]}
        assert retries["DuplicateInsertSpecialist"] == 2 and retries["SedationNurse"] == 0
        bean = monitoring_bean(ward.hospital)
        assert (bean.get("Patients"), bean.get("OldestPatientAgeSeconds")) == (2, 95.0)

        # Both leave: one killed, the other through once its collision is removed. The groups go;
        # the counters keep what happened.
        assert ward.engine.kill(kept.flow_id)
        store.schema.aes_encryption_keys.delete().execute()
        ward.advance_to_retry(retried.flow_id)
        assert retried.result(10) == "done"
        after = hospital_samples(ward.hospital)
        assert not (m.HOSPITAL_EVENT_NAMES - {m.HOSPITAL_ADMISSIONS.name}) & set(after)
        assert {(s["staff"], s["diagnosis"]): v for s, v in after[m.HOSPITAL_ADMISSIONS.name]} == admissions
        assert {s["staff"]: v for s, v in after[m.HOSPITAL_RETRIES.name]}["DuplicateInsertSpecialist"] == 2
        assert (bean.get("Patients"), bean.get("OldestPatientAgeSeconds")) == (0, 0.0)
    finally:
        ward.stop()


def test_retry_rules_are_counted_from_zero(store: LedgerStore) -> None:
    ward = Ward(
        store,
        {
            "flowHospital.rules": [
                {"match": "DeadlockError", "action": "retry"},
                {"match": "HospitalizeFlowError", "action": "observe"},
            ]
        },
    )
    try:
        retries = {s["staff"]: v for s, v in hospital_samples(ward.hospital)[m.HOSPITAL_RETRIES.name]}
        assert retries["rules[0]"] == 0 and "rules[1]" not in retries
    finally:
        ward.stop()

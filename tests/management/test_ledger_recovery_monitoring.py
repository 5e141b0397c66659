"""Ledger Recovery's monitoring on a real store: the LedgerRecovery bean's figures, the metrics the
Prometheus collector makes of them, and (among real runtimes) a restored node's recovery scraped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.clock import ManualClock, to_epoch_ms
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.management.app import create_management_app
from agent.management.ledger_recovery_monitoring import add_ledger_recovery_monitoring, read_progress
from agent.operator_api.layout import MONITOR_PASSWORD_FILE, MONITOR_USER
from agent.ports.recovery import RECOVERED, UNRECOVERABLE, MissingTransaction
from agent.recovery.flow import LEDGER_RECOVERY_FLOW
from agent.store.database import backup_sqlite
from agent.store.ledger_store import LedgerStore
from mbeans import metrics as m
from mbeans.model import JavaType, MBean
from mbeans.names import LEDGER_RECOVERY
from mbeans.prometheus import collector_registry
from mbeans.registry import MBeanRegistry
from tests.recovery.test_ledger_recovery import WAIT, A, B, C, trade, window
from tests.recovery.test_ledger_recovery import Net as RecoveryNet
from tests.recovery.test_ledger_recovery import net as net  # noqa: PLC0414  (the fixture)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
P, Q = "O=PartyB, L=London, C=GB", "O=PartyC, L=Paris, C=FR"  # as stored: any names will do
Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[LedgerStore]:
    s = LedgerStore(f"sqlite:///{tmp_path}/node.db", clock=clock)
    yield s
    s.close()


@pytest.fixture
def beans(store: LedgerStore, clock: ManualClock) -> MBeanRegistry:
    registry = MBeanRegistry()
    add_ledger_recovery_monitoring(registry, store.recovery, store.checkpoints, clock)
    return registry


def row(n: int, peer: str) -> MissingTransaction:
    return MissingTransaction(
        tx_id=f"{n:064X}",
        peer=peer,
        record_type="SENDER",
        role="PEER",
        timestamp=NOW - timedelta(days=3, seconds=n),
        timestamp_discriminator=n,
        states_to_record=1,
        distribution_list=b"\x01",
        flow_id="f",
        updated_at=NOW,
    )


def resolve(store: LedgerStore, n: int, peer: str, status: str, at: datetime) -> None:
    store.recovery.mark(f"{n:064X}", peer, "SENDER", status, None if status == RECOVERED else "gone", at)


def scrape(beans: MBeanRegistry) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(collector_registry(beans)).decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def recovery_samples(samples: Samples) -> Samples:
    return {k: v for k, v in samples.items() if k.startswith(m.PREFIX + "ledger_recovery_")}


def test_nothing_found_nothing_but_the_running_gauge(beans: MBeanRegistry) -> None:
    bean = beans.get(LEDGER_RECOVERY)
    assert bean.get("Pending") == 0 and bean.get("Recovered") == 0 and bean.get("Unrecoverable") == 0
    assert bean.get("RunningFlows") == 0 and bean.get("RatePerSecond") == 0
    assert bean.get("EstimatedSecondsRemaining") == 0 and bean.get("LastProgressTime") is None
    assert bean.get("PeerProgress") == []
    assert recovery_samples(scrape(beans)) == {m.LEDGER_RECOVERY_RUNNING.name: [({}, 0.0)]}


def test_progress_rate_and_time_remaining_per_peer(
    store: LedgerStore, beans: MBeanRegistry, clock: ManualClock
) -> None:
    store.recovery.add_missing([row(n, P) for n in range(10)] + [row(n, Q) for n in range(20, 23)])
    clock.advance(timedelta(minutes=5))
    # P: two recovered long ago, then three recovered and one given up in the last minute.
    resolve(store, 0, P, RECOVERED, NOW + timedelta(minutes=1))
    resolve(store, 1, P, RECOVERED, NOW + timedelta(minutes=1))
    for n in (2, 3, 4):
        resolve(store, n, P, RECOVERED, clock.now() - timedelta(seconds=30))
    resolve(store, 5, P, UNRECOVERABLE, clock.now())
    bean = beans.get(LEDGER_RECOVERY)
    by_peer = {p["peer"]: p for p in bean.get("PeerProgress")}
    # 4 rows left PENDING in the last minute: 4/60 a second; 4 pending left, so 60 s to go.
    assert by_peer[P] == {
        "peer": P,
        "pending": 4,
        "recovered": 5,
        "unrecoverable": 1,
        "ratePerSecond": round(4 / 60, 3),
        "estimatedSecondsRemaining": 60.0,
        "lastProgressTimestampSeconds": to_epoch_ms(clock.now()) / 1000,
    }
    # Q: found five minutes ago, nothing since: no rate, no estimate.
    assert by_peer[Q]["pending"] == 3 and by_peer[Q]["ratePerSecond"] == 0
    assert by_peer[Q]["estimatedSecondsRemaining"] is None
    assert by_peer[Q]["lastProgressTimestampSeconds"] == to_epoch_ms(NOW) / 1000
    assert (bean.get("Pending"), bean.get("Recovered"), bean.get("Unrecoverable")) == (7, 5, 1)
    assert bean.get("RatePerSecond") == round(4 / 60, 3)
    assert bean.get("EstimatedSecondsRemaining") == 105.0  # 7 pending at 4 a minute
    assert bean.get("LastProgressTime") == to_epoch_ms(clock.now())

    samples = scrape(beans)
    missing = {(s["peer"], s["status"]): v for s, v in samples[m.LEDGER_RECOVERY_MISSING.name]}
    assert missing == {
        (P, "PENDING"): 4,
        (P, "RECOVERED"): 5,
        (P, "UNRECOVERABLE"): 1,
        (Q, "PENDING"): 3,
        (Q, "RECOVERED"): 0,
        (Q, "UNRECOVERABLE"): 0,
    }
    assert samples[m.LEDGER_RECOVERY_RECOVERED.name] == [({"peer": P}, 5.0), ({"peer": Q}, 0.0)]
    assert samples[m.LEDGER_RECOVERY_ESTIMATED_REMAINING.name] == [({"peer": P}, 60.0)]
    last = dict((s["peer"], v) for s, v in samples[m.LEDGER_RECOVERY_LAST_PROGRESS.name])
    assert last == {P: clock.now().timestamp(), Q: NOW.timestamp()}

    # A minute and more later with nothing moving: the rate is gone, the counter stays.
    clock.advance(timedelta(minutes=2))
    later = scrape(beans)
    assert m.LEDGER_RECOVERY_ESTIMATED_REMAINING.name not in later
    assert later[m.LEDGER_RECOVERY_RECOVERED.name] == samples[m.LEDGER_RECOVERY_RECOVERED.name]
    # Everything resolved: 0 to go, whatever the rate.
    for n in range(6, 10):
        resolve(store, n, P, RECOVERED, clock.now() - timedelta(minutes=5))
    assert {s["peer"]: v for s, v in scrape(beans)[m.LEDGER_RECOVERY_ESTIMATED_REMAINING.name]} == {P: 0.0}


def test_running_counts_runnable_recovery_flows_only(store: LedgerStore, beans: MBeanRegistry) -> None:
    for n, (name, status) in enumerate(
        [
            (LEDGER_RECOVERY_FLOW, FlowStatus.RUNNABLE),
            (LEDGER_RECOVERY_FLOW, FlowStatus.FAILED),
            (LEDGER_RECOVERY_FLOW, FlowStatus.HOSPITALIZED),
            ("FinalityFlow", FlowStatus.RUNNABLE),
        ]
    ):
        store.checkpoints.save_checkpoint(
            FlowCheckpoint(
                flow_id=f"00000000-0000-0000-0000-{n:012d}",
                flow_name=name,
                status=status,
                started_at=NOW,
                updated_at=NOW,
                progress_step="PLANNED",
                value=b"\x00",
            )
        )
    assert beans.get(LEDGER_RECOVERY).get("RunningFlows") == 1
    assert scrape(beans)[m.LEDGER_RECOVERY_RUNNING.name] == [({}, 1.0)]


def test_the_attributes_join_a_bean_already_registered(store: LedgerStore, clock: ManualClock) -> None:
    registry = MBeanRegistry()
    theirs = registry.register(MBean(LEDGER_RECOVERY, "Ledger Recovery's operations"))
    theirs.operation("progress", [], JavaType.MAP, "peer -> status -> transactions", dict)
    added = add_ledger_recovery_monitoring(registry, store.recovery, store.checkpoints, clock)
    assert added is theirs and "progress" in theirs.operations and "PeerProgress" in theirs.attributes


def test_read_progress_without_rows(store: LedgerStore) -> None:
    assert read_progress(store.recovery, NOW) == []


def test_a_restored_node_recovering_is_scraped(net: RecoveryNet, tmp_path: Path) -> None:
    net[B].tokens.issue([(A, 100), (C, 100), (B, 100)], "GBP", [])
    backup = tmp_path / "A-backup.db"
    backup_sqlite(Path(net[A].node.config.database_url.removeprefix("sqlite:///")), backup)
    trade(net, 2)
    net.restore(A, backup)
    entry = next(e for e in net.layout.nodes if e.name == A)
    auth = (MONITOR_USER, (entry.folder / MONITOR_PASSWORD_FILE).read_text().strip())
    client = create_management_app(net[A]).test_client()

    def scraped() -> Samples:
        response = client.get("/metrics", auth=auth)
        assert response.status_code == 200, response.text
        samples: Samples = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples

    assert recovery_samples(scraped()) == {m.LEDGER_RECOVERY_RUNNING.name: [({}, 0.0)]}
    result = net[A].ledger_recovery.recover({"recoveryPeers": [str(B), str(C)], **window()}, timeout=WAIT)
    assert result["totalErrors"] == 0 and result["totalRecoveredTransactions"] > 0
    samples = scraped()
    progress = net[A].ledger_recovery.progress()
    missing = {(s["peer"], s["status"]): v for s, v in samples[m.LEDGER_RECOVERY_MISSING.name]}
    assert {k: v for k, v in missing.items() if v} == {
        (peer, status): count for peer, by in progress.items() for status, count in by.items()
    }
    recovered = {s["peer"]: v for s, v in samples[m.LEDGER_RECOVERY_RECOVERED.name]}
    assert recovered == {peer: by.get(RECOVERED, 0) for peer, by in progress.items()}
    assert sum(recovered.values()) >= result["totalRecoveredTransactions"] > 0
    # Done: nothing pending, so nothing remains; the flow no longer runs.
    assert {v for _, v in samples[m.LEDGER_RECOVERY_ESTIMATED_REMAINING.name]} == {0.0}
    assert samples[m.LEDGER_RECOVERY_RUNNING.name] == [({}, 0.0)]
    assert {s["peer"] for s, _ in samples[m.LEDGER_RECOVERY_LAST_PROGRESS.name]} == set(progress)
    bean = create_management_app(net[A]).extensions["ledger_agent.mbeans"].get(LEDGER_RECOVERY)
    assert bean.get("Pending") == 0 and bean.get("Recovered") == sum(recovered.values())

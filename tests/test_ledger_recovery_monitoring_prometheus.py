"""A real Prometheus scraping Ledger Recovery's metrics from a real store while rows move: every query of
the node dashboard's Ledger Recovery row returns data, and the alerts evaluate (LedgerRecoveryStalled
for the peer whose rows stopped moving, LedgerRecoveryUnrecoverable for the peer that refused some).

The collector is served on its own (no agent process: the flow's surfaces are tested elsewhere), from
the bean that agent.management.app registers, over a SQLite store whose rows the test moves.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.exposition import generate_latest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from agent.clock import SystemClock
from agent.management.ledger_recovery_monitoring import add_ledger_recovery_monitoring
from agent.ports.recovery import RECOVERED, UNRECOVERABLE, MissingTransaction
from agent.store.ledger_store import LedgerStore
from grafana import ledger_recovery_rows
from mbeans import metrics as m
from mbeans.prometheus import CONTENT_TYPE, collector_registry
from mbeans.registry import MBeanRegistry
from tests.test_grafana import concrete, dashboards, row_targets
from tests.test_monitoring_processes import ROOT, Prometheus

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("prometheus") is None, reason="prometheus is not installed (.ci/run installs it)"
    ),
]

P, Q = "O=PartyB, L=London, C=GB", "O=PartyC, L=Paris, C=FR"


def row(n: int, peer: str, found: datetime) -> MissingTransaction:
    return MissingTransaction(
        tx_id=f"{n:064X}",
        peer=peer,
        record_type="SENDER",
        role="PEER",
        timestamp=found - timedelta(days=3, seconds=n),
        timestamp_discriminator=n,
        states_to_record=1,
        distribution_list=b"\x01",
        flow_id="f",
        updated_at=found,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LedgerStore]:
    s = LedgerStore(f"sqlite:///{tmp_path}/node.db", clock=SystemClock())
    yield s
    s.close()


@pytest.fixture
def served(store: LedgerStore) -> Iterator[str]:
    """/metrics of the LedgerRecovery bean on 127.0.0.1: the address."""
    beans = MBeanRegistry()
    add_ledger_recovery_monitoring(beans, store.recovery, store.checkpoints, SystemClock())
    registry = collector_registry(beans)

    @Request.application
    def app(request: Request) -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)


def test_the_ledger_recovery_row_and_alerts_on_a_real_prometheus(
    store: LedgerStore, served: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    # Q: found 20 minutes ago and never moved since (stalled); P: found now, moving below.
    store.recovery.add_missing(
        [row(n, P, now) for n in range(30)]
        + [row(n, Q, now - timedelta(minutes=20)) for n in range(100, 105)]
    )
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted((ROOT / "alerts").glob("*.rules.yml"))],
        "scrape_configs": [{"job_name": "ledger-agent", "static_configs": [{"targets": [served]}]}],
    }
    prometheus = Prometheus(tmp_path / "prometheus", config)
    prometheus.start()
    try:
        pending = f'{m.LEDGER_RECOVERY_MISSING.name}{{instance="{served}", status="PENDING"}}'
        prometheus.wait_for(pending, "the first scrape")
        # P recovers two rows a second, and gives one up, while Prometheus scrapes.
        tick = threading.Event()
        for n in range(12):
            status = UNRECOVERABLE if n == 5 else RECOVERED
            store.recovery.mark(f"{n:064X}", P, "SENDER", status, None, datetime.now(UTC))
            if n % 2:
                tick.wait(1.0)
        prometheus.wait_for(
            f'{m.LEDGER_RECOVERY_RECOVERED.name}{{instance="{served}", peer="{P}"}} == 11', "the last scrape"
        )
        tick.wait(2.0)  # two more samples of the last state for rate()

        empty = []
        for row_title, title, target in row_targets(dashboards()["ledgeragent-node.json"]):
            if row_title != ledger_recovery_rows.TITLE:
                continue
            expr = concrete(target["expr"], served)
            if not prometheus.query(expr):
                empty.append(f"{title}: {expr}")
        assert empty == [], "panels without data:\n" + "\n".join(empty)

        rate = prometheus.query(
            f'sum by (peer) (rate({m.LEDGER_RECOVERY_RECOVERED.name}{{instance="{served}"}}[30s]))'
        )
        assert {r["metric"]["peer"] for r in rate} == {P, Q}
        assert float(next(r for r in rate if r["metric"]["peer"] == P)["value"][1]) > 0

        # The alerts: both have matched (pending their `for`), each for its own peer only.
        deadline = time.monotonic() + 30
        while True:
            alerts = prometheus.query("ALERTS")
            found = {(a["metric"]["alertname"], a["metric"]["peer"]) for a in alerts if "peer" in a["metric"]}
            if {("LedgerRecoveryStalled", Q), ("LedgerRecoveryUnrecoverable", P)} <= found:
                break
            assert time.monotonic() < deadline, alerts
            tick.wait(0.5)
        assert found == {("LedgerRecoveryStalled", Q), ("LedgerRecoveryUnrecoverable", P)}
    finally:
        assert prometheus.stop() == 0, prometheus.log.read_text()[-3000:]

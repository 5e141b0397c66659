"""Helpers shared by the tests of real agent processes (the network itself: tests.test_processes's
Network): a node's node.conf lines and restart, what each party holds, finality recovery over REST,
and /metrics read as Prometheus reads it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from agent.ledger.hashing import SecureHash
from agent.network.bootstrap import DEFAULT_NOTARY, MONITOR_PASSWORD_FILE, MONITOR_USER, NodeLayout
from mbeans import metrics as m
from tests.endpoints import management
from tests.test_processes import Network, _drop_faults

NOTARY = str(DEFAULT_NOTARY)
Samples = dict[str, list[tuple[dict[str, str], float]]]
# Ends each node.conf line configure() adds, so that the next configure() takes it out again.
ADDED = "  # added by the test"


def node_of(net: Network, name: str) -> NodeLayout:
    return next(n for n in net.layout.nodes if str(n.name) == name)


def configure(net: Network, name: str, faults: Sequence[str], settings: Sequence[str] = ()) -> None:
    """The node's node.conf with these faults and lines instead of those given before (none: clean);
    the node reads them at its next start."""
    _drop_faults(net, name)
    config = node_of(net, name).config
    lines = config.read_text().splitlines(keepends=True)
    kept = "".join(line for line in lines if not line.endswith(ADDED + "\n"))
    added = [
        *(["faultInjection = [" + ", ".join(f'"{f}"' for f in faults) + "]"] if faults else []),
        *settings,
    ]
    config.write_text(kept + "".join(line + ADDED + "\n" for line in added))


def restart(net: Network, name: str, faults: Sequence[str], settings: Sequence[str] = ()) -> None:
    """Stop the node by its PID and start it again with these faults and node.conf lines."""
    proc = net.processes[name]
    proc.stop()
    configure(net, name, faults, settings)
    proc.start()
    proc.wait_ready()


def recover(net: Network, name: str, operation: str, **body: Any) -> Any:
    return net.client(name).call("POST", f"/api/finality/{operation}", body)


def status(net: Network, name: str, tx: str) -> str | None:
    info = net.client(name).transaction(tx)
    return None if info is None else str(info["status"])


def holdings(net: Network, name: str, currency: str) -> list[int]:
    return sorted(h["amount"] for h in net.client(name).vault()["holdings"] if h["currency"] == currency)


def notarised(net: Network, tx: str) -> bool:
    store = net.store(NOTARY)
    try:
        return store.uniqueness.is_committed(SecureHash.parse(tx))
    finally:
        store.close()


def flows_of(net: Network, name: str, tx: str, **filters: str) -> list[dict[str, Any]]:
    return net.client(name).flows(txId=tx, **filters)


def scrape(node: NodeLayout) -> Samples:
    """GET /metrics as the read-only monitor, parsed by prometheus_client."""
    password = (node.folder / MONITOR_PASSWORD_FILE).read_text().strip()
    base, verify = management(node.config)
    reply = httpx.get(
        f"{base}/metrics", auth=(MONITOR_USER, password), timeout=10, trust_env=False, verify=verify
    )
    assert reply.status_code == 200, reply.text
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, metric: m.Metric, **labels: str) -> float | None:
    found = [v for got, v in samples.get(metric.name, []) if got == labels]
    assert len(found) <= 1, found
    return found[0] if found else None

"""Finality throughput and latency between two agent processes and the notary, over loopback HTTP.

    python bench/finality.py --n 200 --db sqlite|postgresql

Starts a notary and two nodes as `ledger-agent run` processes, then, through PartyA's management
endpoint, makes n payments to PartyB one after the other: each is a full two-phase finality
(record IN_FLIGHT at both, notarise, send the signature, finalise). The baseline, measured in the
same run on the same processes, is n issuances from PartyA to PartyB: one-phase finality (both
record VERIFIED at once, no notary). The ratio tells what the notary round trip and the second phase
cost. Prints tx/s and p50/p99 latency per transaction, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.client.launcher import (
    AgentProcess,
    ManagementClient,
    free_port_range,
    read_password,
    scratch_postgres_databases,
)
from agent.network.bootstrap import DEFAULT_NOTARY, OPERATOR_USER, default_node_names, init_network

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def databases(db: str) -> Iterator[Callable[[object], str] | None]:
    if db == "sqlite":
        yield None
        return
    with scratch_postgres_databases(PG_ADMIN, prefix="bench_finality") as url_for:
        yield url_for


def timed(calls: int, call: Callable[[int], object]) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - t0)
    return time.perf_counter() - start, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="payments (and baseline issuances) to make")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-finality-") as scratch, databases(args.db) as url_for:
        names = default_node_names(2)
        layout = init_network(
            Path(scratch) / "net",
            names,
            DEFAULT_NOTARY,
            base_port=free_port_range(6),
            database_url_for=url_for,
        )
        procs = [
            AgentProcess(
                n.config,
                n.folder / "agent.log",
                ManagementClient.for_node(n.config, OPERATOR_USER, read_password(n.folder)),
            )
            for n in layout.nodes
        ]
        try:
            for p in procs:
                p.start()
            for p in procs:
                p.wait_ready()
            a, b = (p.management for p in procs[1:])
            party_a, party_b = (str(n) for n in names)
            a.issue([(party_a, 10 * args.n)], "GBP")  # funds for the payments
            a.pay(party_b, 1, "GBP", party_a)  # warm-up: connections, caches
            base_s, base_lat = timed(args.n, lambda i: a.issue([(party_b, 1)], "USD"))
            pay_s, pay_lat = timed(args.n, lambda i: a.pay(party_b, 1, "GBP", party_a))
            assert b.vault()["transactions"]["IN_FLIGHT"] == 0
        finally:
            for p in reversed(procs):
                p.stop()

    result = {
        "benchmark": "finality",
        "db": args.db,
        "n": args.n,
        "tx_per_s": round(args.n / pay_s, 1),
        "p50_ms": round(statistics.median(pay_lat) * 1000, 2),
        "p99_ms": round(percentile(pay_lat, 0.99) * 1000, 2),
        "baseline": "one-phase issuances A->B on the same processes (no notary)",
        "baseline_tx_per_s": round(args.n / base_s, 1),
        "baseline_p50_ms": round(statistics.median(base_lat) * 1000, 2),
        "ratio": round((args.n / pay_s) / (args.n / base_s), 2),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(
        f"two-phase finality ({args.db}): {result['tx_per_s']} tx/s, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms"
    )
    print(
        f"baseline one-phase issuance: {result['baseline_tx_per_s']} tx/s, p50 {result['baseline_p50_ms']} ms"
    )
    print(f"ratio two-phase / one-phase throughput: {result['ratio']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

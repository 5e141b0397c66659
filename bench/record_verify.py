"""Throughput of LedgerService.record (verify, then record in one database transaction each).

    python bench/record_verify.py --n 2000 --db sqlite|postgresql

The workload is the fixture's ledger from its first issuance on: every move spends outputs recorded
earlier in the run, so verification resolves its back-chain from the store. The baseline records the
same transactions with LedgerStore.record_transaction alone (no verification). Each run starts in a
fresh process on a fresh database (no warm parse caches from an earlier run); runs alternate between
the two ways, and the figures are medians over --repeat runs of each.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ledger.shipped import default_contracts
from agent.services.ledger_service import LedgerService
from bench.common import (
    PG_ADMIN_URL,
    add_common_arguments,
    emit,
    machine,
    median,
    open_fixture_store,
    percentile,
    ratio,
    say,
    scratch_database,
)
from bench.fixture import generate_ledger

VERIFY, BASELINE = "record", "record_transaction"


def one_run(way: str, db: str, pg_url: str, n: int, parties: int, seed: int) -> dict[str, Any]:
    """Record the first n transactions into a fresh store one by one; seconds and latencies."""
    txs = list(generate_ledger(n, parties=parties, seed=seed))
    with scratch_database(db, pg_url=pg_url) as scratch:
        store = open_fixture_store(scratch.url, parties=parties, seed=seed)
        record = (
            LedgerService(store.transactions, default_contracts()).record
            if way == VERIFY
            else store.transactions.record_transaction
        )
        latencies = []
        started = time.perf_counter()
        for stx in txs:
            before = time.perf_counter()
            if not record(stx):
                raise RuntimeError(f"{stx.id} was not recorded")
            latencies.append(time.perf_counter() - before)
        seconds = time.perf_counter() - started
        recorded = store.transactions.count_transactions()
        store.close()
    if recorded != n:
        raise RuntimeError(f"{recorded} rows after recording {n} transactions")
    return {
        "seconds": seconds,
        "tx_per_s": n / seconds,
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
    }


def in_fresh_process(way: str, args: argparse.Namespace) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: dict[str, Any] = pool.apply(
            one_run, (way, args.db, args.pg_url, args.n, args.parties, args.seed)
        )
    return result


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "tx_per_s": round(median([r["tx_per_s"] for r in runs]), 1),
        "p50_ms": round(median([r["p50_ms"] for r in runs]), 3),
        "p99_ms": round(median([r["p99_ms"] for r in runs]), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="transactions to record (default: 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (default: 3)")
    add_common_arguments(parser, workers=False, keep=False)
    args = parser.parse_args(argv)
    if args.pg_url != PG_ADMIN_URL and args.db != "postgresql":
        parser.error("--pg-url applies to --db postgresql")

    runs: dict[str, list[dict[str, Any]]] = {VERIFY: [], BASELINE: []}
    for attempt in range(1, args.repeat + 1):
        for way in (VERIFY, BASELINE):
            result = in_fresh_process(way, args)
            runs[way].append(result)
            say(
                f"run {attempt} {way:18s} {result['tx_per_s']:8,.0f} tx/s  "
                f"p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms"
            )
    verified, base = summary(runs[VERIFY]), summary(runs[BASELINE])
    say(
        f"median over {args.repeat}: LedgerService.record {verified['tx_per_s']:,.0f} tx/s, "
        f"record_transaction {base['tx_per_s']:,.0f} tx/s, "
        f"ratio {ratio(verified['tx_per_s'], base['tx_per_s'])}x"
    )
    emit(
        {
            "benchmark": "record_verify",
            "n": args.n,
            "db": args.db,
            "repeat": args.repeat,
            **verified,
            "runs_tx_per_s": [round(r["tx_per_s"], 1) for r in runs[VERIFY]],
            "baseline": "LedgerStore.record_transaction, no verification",
            "baseline_tx_per_s": base["tx_per_s"],
            "baseline_p50_ms": base["p50_ms"],
            "baseline_p99_ms": base["p99_ms"],
            "baseline_runs_tx_per_s": [round(r["tx_per_s"], 1) for r in runs[BASELINE]],
            "ratio": ratio(verified["tx_per_s"], base["tx_per_s"]),
            **machine(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

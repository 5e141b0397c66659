"""Bulk-load N generated transactions into a fresh store; baseline: record_transaction one at a time.

    python bench/bulk_load.py --n 1000000 [--db sqlite|postgresql] [--out DIR]

The load is timed end to end: generating, signing (in --workers processes) and writing, pipelined,
as fixture.load does it. The baseline records a sample of the same ledger (already generated, so
writing only) one transaction at a time with LedgerStore.record_transaction, into another fresh store
of the same kind; bulk_record is also timed on that sample, so the write paths compare on equal rows.
With --out DIR the SQLite ledger is kept as DIR/ledger-<n>.db for the later benchmarks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    add_common_arguments,
    children_peak_rss_mb,
    emit,
    machine,
    open_fixture_store,
    peak_rss_mb,
    quiet_gc,
    ratio,
    say,
    scratch_database,
)
from bench.fixture import generate_ledger, load

DEFAULT_BATCH = 20_000


def kept_ledger_path(out: Path, n: int, parties: int, seed: int) -> Path:
    suffix = "" if (parties, seed) == (10, 1) else f"-p{parties}-s{seed}"
    return out / f"ledger-{n}{suffix}.db"


def measure_baseline(args: argparse.Namespace, sample_n: int) -> dict[str, float]:
    """record_transaction one at a time, and bulk_record, on the ledger's first sample_n transactions."""
    sample = list(generate_ledger(sample_n, parties=args.parties, seed=args.seed, workers=0))
    with scratch_database(args.db, pg_url=args.pg_url) as scratch:
        store = open_fixture_store(scratch.url, parties=args.parties, seed=args.seed)
        started = time.perf_counter()
        for stx in sample:
            store.transactions.record_transaction(stx)
        one_by_one = time.perf_counter() - started
        store.close()
    with scratch_database(args.db, pg_url=args.pg_url) as scratch:
        store = open_fixture_store(scratch.url, parties=args.parties, seed=args.seed)
        started = time.perf_counter()
        store.bulk_record(sample, batch_size=args.batch_size)
        bulk = time.perf_counter() - started
        store.close()
    return {"one_by_one": sample_n / one_by_one, "bulk": sample_n / bulk}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="transactions to load (default: 100000)")
    parser.add_argument("--out", type=Path, help="keep the SQLite ledger in this directory")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH, help=f"rows per commit (default: {DEFAULT_BATCH})"
    )
    parser.add_argument(
        "--baseline-n", type=int, default=5000, help="sample size of the baseline (default: 5000)"
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.out is not None and args.db != "sqlite":
        parser.error("--out keeps a SQLite file; for PostgreSQL use --keep")
    sample_n = min(args.n, args.baseline_n)

    say(f"baseline: record_transaction one at a time on {sample_n} transactions ({args.db})")
    base = measure_baseline(args, sample_n)
    say(
        f"  {base['one_by_one']:,.0f} tx/s one at a time; bulk_record on the same sample {base['bulk']:,.0f} tx/s"
    )

    out_dir = args.out.resolve() if args.out is not None else None
    with scratch_database(args.db, keep=args.keep, pg_url=args.pg_url, directory=out_dir) as scratch:
        store = open_fixture_store(scratch.url, parties=args.parties, seed=args.seed)
        say(
            f"bulk load: {args.n:,} transactions, {args.parties} parties, seed {args.seed}, {args.workers} signing workers"
        )
        with quiet_gc() as threshold:
            started = time.perf_counter()
            count = load(
                store,
                args.n,
                parties=args.parties,
                seed=args.seed,
                batch_size=args.batch_size,
                workers=args.workers,
            )
            seconds = time.perf_counter() - started
        rows = store.transactions.count_transactions()
        store.close()
        size = scratch.size_bytes()
        kept = None
        if out_dir is not None and scratch.path is not None:
            target = kept_ledger_path(out_dir, args.n, args.parties, args.seed)
            scratch.path.replace(target)
            kept = str(target)
        elif args.keep:
            kept = str(scratch.path) if scratch.path else scratch.url

    tx_per_s = count / seconds
    say(
        f"  {count:,} transactions ({rows:,} rows) in {seconds:.1f} s: {tx_per_s:,.0f} tx/s, {size / 1e6:,.0f} MB"
    )
    say(f"  ratio to one-at-a-time: {ratio(tx_per_s, base['one_by_one'])}x")
    if kept:
        say(f"  kept: {kept}")
    emit(
        {
            "benchmark": "bulk_load",
            "n": count,
            "rows": rows,
            "db": args.db,
            "seconds": round(seconds, 2),
            "tx_per_s": round(tx_per_s),
            "db_bytes": size,
            "peak_rss_mb": peak_rss_mb(),
            "workers_peak_rss_mb": children_peak_rss_mb(),
            "batch_size": args.batch_size,
            "workers": args.workers,
            "gc_threshold0": threshold,
            "baseline": "record_transaction one at a time, no verification",
            "baseline_n": sample_n,
            "baseline_tx_per_s": round(base["one_by_one"]),
            "ratio": ratio(tx_per_s, base["one_by_one"]),
            "sample_bulk_tx_per_s": round(base["bulk"]),
            "sample_ratio": ratio(base["bulk"], base["one_by_one"]),
            "kept": kept,
            **machine(),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

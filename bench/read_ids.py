"""Read every transaction id in pages; baseline: OFFSET/LIMIT pagination through peewee.

    python bench/read_ids.py --n 1000000 [--page-size 10000] [--db sqlite|postgresql] [--reuse PATH]

The store pages by key (WHERE tx_id > last ORDER BY tx_id LIMIT page), each page one indexed range
query. The baseline is the naive way, ORDER BY tx_id LIMIT page OFFSET k * page, which re-walks
the k * page rows before each page. Both turn every id into a SecureHash, so they do the same work per
id. OFFSET costs grow with the square of the rows; --baseline-rows caps it (the figure is then
extrapolated, and the JSON fields say so).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ledger.hashing import SecureHash
from agent.store.ledger_store import LedgerStore
from bench.common import (
    add_common_arguments,
    emit,
    machine,
    median,
    open_fixture_store,
    peak_rss_mb,
    quiet_gc,
    ratio,
    say,
    scratch_database,
)
from bench.fixture import load


def keyset_pass(store: LedgerStore, page_size: int) -> int:
    count = 0
    for _ in store.iter_transaction_ids(page_size=page_size):
        count += 1
    return count


def offset_pass(store: LedgerStore, page_size: int, rows: int) -> int:
    """The first `rows` ids by OFFSET/LIMIT pages."""
    nt = store.schema.node_transactions
    count = 0
    offset = 0
    while offset < rows:
        query = nt.select(nt.tx_id).order_by(nt.tx_id).limit(min(page_size, rows - offset)).offset(offset)
        page = [SecureHash(bytes.fromhex(r[0])) for r in query.tuples()]  # type: ignore[index]
        if not page:
            break
        count += len(page)
        offset += len(page)
    return count


def timed_runs(run: Callable[[], int], repeat: int) -> tuple[list[float], int]:
    run()  # warm the caches: every timed pass then reads the same warm pages
    seconds = []
    count = 0
    for _ in range(repeat):
        started = time.perf_counter()
        count = run()
        seconds.append(time.perf_counter() - started)
    return seconds, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="transactions to load (default: 100000)")
    parser.add_argument("--page-size", type=int, default=10_000, help="ids per page (default: 10000)")
    parser.add_argument("--reuse", type=Path, help="read this SQLite ledger (from bulk_load.py --out)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes of each way (default: 3)")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=0,
        help="OFFSET over the first this many rows only, extrapolated (default: 0, all rows)",
    )
    add_common_arguments(parser)
    args = parser.parse_args(argv)

    with ExitStack() as stack:
        if args.reuse is not None:
            if not args.reuse.is_file():
                parser.error(f"--reuse: no such file {args.reuse}")
            store = open_fixture_store(
                f"sqlite:///{args.reuse.resolve()}", parties=args.parties, seed=args.seed
            )
            db = "sqlite"
        else:
            scratch = stack.enter_context(scratch_database(args.db, keep=args.keep, pg_url=args.pg_url))
            store = open_fixture_store(scratch.url, parties=args.parties, seed=args.seed)
            db = args.db
            say(f"loading {args.n:,} transactions into a scratch {db} store (not timed)")
            started = time.perf_counter()
            with quiet_gc():
                load(
                    store,
                    args.n,
                    parties=args.parties,
                    seed=args.seed,
                    batch_size=20_000,
                    workers=args.workers,
                )
            say(f"  loaded in {time.perf_counter() - started:.1f} s")
        stack.callback(store.close)
        n = store.count_transactions()
        page = args.page_size

        say(f"keyset pages (LedgerStore.iter_transaction_ids), {n:,} ids, page {page:,}")
        keyset, read = timed_runs(lambda: keyset_pass(store, page), args.repeat)
        if read != n:
            raise SystemExit(f"read {read} ids, the store holds {n}")
        seconds = median(keyset)
        say(f"  {', '.join(f'{s:.2f}' for s in keyset)} s; median {seconds:.2f} s, {n / seconds:,.0f} ids/s")

        rows = n if args.baseline_rows <= 0 else min(n, args.baseline_rows)
        say(f"baseline: OFFSET/LIMIT pages over {rows:,} rows, page {page:,}")
        offset, _ = timed_runs(lambda: offset_pass(store, page, rows), args.repeat)
        measured = median(offset)
        # OFFSET walks every skipped row again: the time grows with rows squared.
        baseline_all = measured * (n / rows) ** 2
        say(
            f"  {', '.join(f'{s:.2f}' for s in offset)} s; median {measured:.2f} s"
            + ("" if rows == n else f", extrapolated to {n:,} rows: {baseline_all:.2f} s")
        )
        ids_per_s, base_ids_per_s = n / seconds, n / baseline_all
        say(f"  ratio keyset/offset: {ratio(ids_per_s, base_ids_per_s)}x")
        result = {
            "benchmark": "read_ids",
            "n": n,
            "db": db,
            "page_size": page,
            "seconds": round(seconds, 3),
            "ids_per_s": round(ids_per_s),
            "runs_seconds": [round(s, 3) for s in keyset],
            "baseline": "OFFSET/LIMIT pages through peewee",
            "baseline_rows": rows,
            ("baseline_seconds" if rows == n else "baseline_seconds_extrapolated"): round(baseline_all, 3),
            "baseline_measured_seconds": round(measured, 3),
            "baseline_runs_seconds": [round(s, 3) for s in offset],
            "baseline_ids_per_s": round(base_ids_per_s),
            "ratio": ratio(ids_per_s, base_ids_per_s),
            "peak_rss_mb": peak_rss_mb(),
            "reused": None if args.reuse is None else str(args.reuse),
            **machine(),
        }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Read every transaction id in pages; baseline: OFFSET/LIMIT pagination through peewee.

    python bench/read_ids.py --n 1000000 [--page-size 10000] [--db sqlite|postgresql] [--reuse PATH|URL]

The store pages by key (WHERE tx_id > last ORDER BY tx_id LIMIT page), each page one indexed range
query. The baseline is the naive way, ORDER BY tx_id LIMIT page OFFSET k * page, which re-walks
the k * page rows before each page. Both turn every id into a SecureHash, so they do the same work per
id. OFFSET's cost grows with the square of the rows; --baseline-rows R times it over the first R rows
only, and the ratio then compares it with keyset pages over the same R rows (nothing is extrapolated:
OFFSET's cost is part linear and part quadratic, so scaling it up would mislead). On PostgreSQL the
database is vacuumed and analysed before the timed passes (see common.vacuum_analyze).
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
    vacuum_analyze,
)
from bench.fixture import load


def keyset_pass(store: LedgerStore, page_size: int, rows: int | None = None) -> int:
    """All ids (or the first `rows`) by the store's keyset pages."""
    count = 0
    for _ in store.transactions.iter_transaction_ids(page_size=page_size):
        count += 1
        if count == rows:
            break
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
    parser.add_argument(
        "--reuse",
        help="read this ledger instead of loading one: a SQLite file (bulk_load.py --out) or a "
        "postgresql:// URL (bulk_load.py --db postgresql --keep); it is left as it is",
    )
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
            if args.reuse.startswith(("postgresql://", "postgres://")):
                url, db = args.reuse, "postgresql"
            elif Path(args.reuse).is_file():
                url, db = f"sqlite:///{Path(args.reuse).resolve()}", "sqlite"
            else:
                parser.error(f"--reuse: no such file {args.reuse}")
            store = open_fixture_store(url, parties=args.parties, seed=args.seed)
        else:
            scratch = stack.enter_context(scratch_database(args.db, keep=args.keep, pg_url=args.pg_url))
            url, db = scratch.url, args.db
            store = open_fixture_store(url, parties=args.parties, seed=args.seed)
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
        if db == "postgresql":
            say(f"VACUUM ANALYZE first, as autovacuum would have by now: {vacuum_analyze(url):.1f} s")
        n = store.transactions.count_transactions()
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
        baseline = median(offset)
        say(
            f"  {', '.join(f'{s:.2f}' for s in offset)} s; median {baseline:.2f} s, {rows / baseline:,.0f} ids/s"
        )
        same_rows = seconds
        if rows < n:
            say(f"keyset pages over the same {rows:,} rows")
            partial, _ = timed_runs(lambda: keyset_pass(store, page, rows), args.repeat)
            same_rows = median(partial)
            say(f"  median {same_rows:.2f} s")
        speedup = ratio(rows / same_rows, rows / baseline)
        say(f"  ratio keyset/offset over {rows:,} rows: {speedup}x")
        result = {
            "benchmark": "read_ids",
            "n": n,
            "db": db,
            "page_size": page,
            "seconds": round(seconds, 3),
            "ids_per_s": round(n / seconds),
            "runs_seconds": [round(s, 3) for s in keyset],
            "baseline": "OFFSET/LIMIT pages through peewee",
            "baseline_rows": rows,
            "baseline_seconds": round(baseline, 3),
            "baseline_runs_seconds": [round(s, 3) for s in offset],
            "baseline_ids_per_s": round(rows / baseline),
            "keyset_seconds_same_rows": round(same_rows, 3),
            "ratio": speedup,
            "peak_rss_mb": peak_rss_mb(),
            "reused": None if args.reuse is None else str(args.reuse),
            **machine(),
        }
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

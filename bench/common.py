"""What the benchmark scripts share: scratch databases, the fixture's store, figures and their output.

Every script prints human-readable lines and, last, one JSON line with its figures; speed is only
ever reported, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent.store.ledger_store import LedgerStore
from bench.fixture import fixture_store_keys

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_WORKERS = max(1, (os.cpu_count() or 1) - 1)  # the main process generates and writes: one core


def add_common_arguments(
    parser: argparse.ArgumentParser, *, db: bool = True, workers: bool = True, keep: bool = True
) -> None:
    if db:
        parser.add_argument(
            "--db", choices=("sqlite", "postgresql"), default="sqlite", help="backend (default: sqlite)"
        )
        parser.add_argument(
            "--pg-url",
            default=PG_ADMIN_URL,
            help=f"a PostgreSQL URL whose server gets the scratch database (default: {PG_ADMIN_URL})",
        )
    parser.add_argument("--parties", type=int, default=10, help="parties in the ledger (default: 10)")
    parser.add_argument("--seed", type=int, default=1, help="the ledger's seed (default: 1)")
    if workers:
        parser.add_argument(
            "--workers",
            type=int,
            default=DEFAULT_WORKERS,
            help=f"signing processes for the generator, 0 to sign in-process (default: {DEFAULT_WORKERS})",
        )
    if keep:
        parser.add_argument("--keep", action="store_true", help="keep the scratch database and directory")


@dataclass
class Scratch:
    """A fresh, empty database: a file in a temporary directory, or a PostgreSQL database."""

    kind: str
    url: str
    path: Path | None = None  # the SQLite file
    pg_name: str | None = None

    def size_bytes(self) -> int:
        if self.path is not None:
            return sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        import psycopg2

        with psycopg2.connect(self.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(current_database())")
            row = cur.fetchone()
        conn.close()
        return int(row[0]) if row else 0


_counter = iter(range(1_000_000))


def _pg_admin(admin_url: str) -> Any:
    import psycopg2

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    return conn


@contextmanager
def scratch_database(
    kind: str, *, keep: bool = False, pg_url: str = PG_ADMIN_URL, directory: Path | None = None
) -> Iterator[Scratch]:
    """A fresh database of kind sqlite or postgresql, dropped afterwards unless keep.

    directory: where the SQLite file goes (it is then kept, whatever keep says).
    """
    if kind == "sqlite":
        tmp = None if directory is not None else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        where = directory if directory is not None else tmp
        assert where is not None
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"bench-{os.getpid()}-{next(_counter)}.db"
        try:
            yield Scratch("sqlite", f"sqlite:///{path}", path=path)
        finally:
            if tmp is not None and not keep:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    if kind != "postgresql":
        raise ValueError(f"unknown database kind {kind!r}")
    name = f"bench_{os.getpid()}_{next(_counter)}"
    parts = urlsplit(pg_url)
    url = urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
    admin = _pg_admin(pg_url)
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield Scratch("postgresql", url, pg_name=name)
    finally:
        if not keep:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def vacuum_analyze(url: str) -> float:
    """VACUUM ANALYZE a PostgreSQL database (as autovacuum would, in time); the seconds it took.

    Right after a bulk load the visibility map is unset, so an index-only scan still reads every
    row's heap page, and the planner's row counts are stale: reads measured then are not a node's.
    """
    conn = _pg_admin(url)
    try:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE")
        return time.perf_counter() - started
    finally:
        conn.close()


def open_fixture_store(url: str, *, parties: int, seed: int) -> LedgerStore:
    """A store whose own key is the fixture's first party (see fixture.py)."""
    return LedgerStore(url, our_keys=fixture_store_keys(parties, seed))


@contextmanager
def quiet_gc(threshold0: int = 100_000) -> Iterator[int]:
    """Collect less often while a million short-lived objects pass through; restored afterwards.

    With the default threshold (700), the young generation fills every few transactions and each
    collection also walks the objects queued in the pipeline; the loader measured ~10% faster so.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(threshold0, before[1], before[2])
    try:
        yield threshold0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def children_peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 < q < 100), nearest-rank on the sorted values."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def ratio(value: float, baseline: float) -> float | None:
    return None if baseline <= 0 else round(value / baseline, 2)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def say(line: str) -> None:
    print(line, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The final JSON line."""
    print(json.dumps(result, sort_keys=False), flush=True)

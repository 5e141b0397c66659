"""WAL checkpoints on a thread of their own (agent/store/checkpointer.py), on a real SQLite file: the
WAL a writer leaves is copied back into the database without the writer checkpointing, and the
thread stops with the store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.store.checkpointer import CHECKPOINT_PAGES
from agent.store.ledger_store import LedgerStore

WAIT = 20.0


def until(condition: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + WAIT
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < end, f"not within {WAIT} s: {what}"
        tick.wait(0.02)  # the polling interval of a wait on a condition


def on_a_thread(store: LedgerStore, sql: str) -> list[tuple[object, ...]]:
    """Run sql on a thread of its own: its connection is opened there, as a flow's would be."""
    out: list[tuple[object, ...]] = []

    def run() -> None:
        with store.database.atomic():
            out.extend(store.database.execute_sql(sql).fetchall())
        store.database.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)
    return out


def write_pages(store: LedgerStore, pages: int) -> None:
    """One transaction of about `pages` 4 KiB pages, on a thread of its own."""

    def run() -> None:
        db = store.database
        with db.atomic():
            db.execute_sql("CREATE TABLE IF NOT EXISTS scratch (x BLOB)")
            db.cursor().executemany("INSERT INTO scratch VALUES (randomblob(4000))", [()] * pages)
        db.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(WAIT)


def test_the_wal_is_checkpointed_by_the_thread_not_by_the_writer(tmp_path: Path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db")
    db_file = tmp_path / "node.db"
    try:
        store.start_checkpointing()
        checkpointer = store._checkpointer
        assert checkpointer is not None and checkpointer.running
        # A connection opened from now on leaves checkpoints to the thread.
        assert on_a_thread(store, "PRAGMA wal_autocheckpoint") == [(0,)]
        before = db_file.stat().st_size
        write_pages(store, 2 * CHECKPOINT_PAGES)  # past the threshold: some 8 MB in the WAL
        until(lambda: checkpointer.checkpoints >= 1, "a checkpoint by the thread")
        until(lambda: db_file.stat().st_size > before + 4_000_000, "the pages copied into the database")
        assert on_a_thread(store, "SELECT COUNT(*) FROM scratch") == [(2 * CHECKPOINT_PAGES,)]
    finally:
        store.close()
    assert store._checkpointer is None and not checkpointer.running
    # Stopped: connections opened from then on checkpoint by themselves again.
    assert on_a_thread(store, "PRAGMA wal_autocheckpoint") == [(CHECKPOINT_PAGES,)]
    store.close()


def test_a_small_wal_is_left_alone(tmp_path: Path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db")
    try:
        store.start_checkpointing()
        checkpointer = store._checkpointer
        assert checkpointer is not None
        write_pages(store, 10)
        wal = tmp_path / "node.db-wal"
        until(lambda: wal.exists() and wal.stat().st_size > 0, "the WAL written")
        # Three of the thread's looks at the WAL go by with nothing to do.
        threading.Event().wait(3 * checkpointer.every_s)  # a span to observe, not a synchronisation
        assert checkpointer.checkpoints == 0
    finally:
        store.close()


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "postgres"])
def test_nothing_to_checkpoint_elsewhere(url: str, request: pytest.FixtureRequest) -> None:
    target = str(request.getfixturevalue("pg_url")) if url == "postgres" else url
    store = LedgerStore(target)
    try:
        store.start_checkpointing()
        assert store._checkpointer is None
    finally:
        store.close()

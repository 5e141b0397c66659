"""SQLite's WAL checkpoints on a thread of their own, not in the commit of whoever wrote last.

In WAL mode a commit appends pages to the -wal file, and a checkpoint copies them back into the
database file. SQLite runs one by itself in the commit that takes the WAL past `wal_autocheckpoint`
pages (1,000): in that writer's thread, with an fdatasync of each file. A Ledger Recovery batch
writes some 8,000 pages, so its commit ran several checkpoints, about half of the commit's time and a
tenth of the flow's at 100,000 transactions (BENCHMARKS.md). Here a thread with its own connection
looks at the WAL's size five times a second and runs a PASSIVE checkpoint (which never waits for, nor
blocks, a writer or a reader) once it is past the same 1,000 pages; while it runs, the store's
connections opened from then on do no checkpoint of their own.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger("ledger_agent.store")

CHECKPOINT_PAGES = 1000  # SQLite's own wal_autocheckpoint
CHECK_EVERY_S = 0.2


class WalCheckpointer:
    """Checkpoints the WAL of the SQLite database at path while started."""

    def __init__(self, path: Path, *, pages: int = CHECKPOINT_PAGES, every_s: float = CHECK_EVERY_S) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self.pages = pages
        self.every_s = every_s
        self.checkpoints = 0  # those that ran (for tests and for the curious)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop checking (a checkpoint under way finishes first); SQLite checkpoints at the last close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, check_same_thread=False)
        try:
            page_size = int(connection.execute("PRAGMA page_size").fetchone()[0])
            threshold = self.pages * page_size
            warned = False
            while not self._stop.wait(self.every_s):
                try:
                    if self.wal.stat().st_size <= threshold:
                        continue
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except FileNotFoundError:
                    continue  # no WAL yet, or it was removed at a close
                except (sqlite3.Error, OSError) as exc:  # tried again at the next look; said once
                    if not warned:
                        log.warning("WAL checkpoint of %s failed: %s", self.path, exc)
                        warned = True
        finally:
            connection.close()

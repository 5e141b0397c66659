"""The SQLite store's files, and its backups, are only their owner's: 0600, in a 0700 directory it made.

The database holds the node's AES keys wrapped under a key derived from its public name: whoever can
read the file can unwrap them (docs/security.md). The umask here is 022, as a shell's usually is.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store.database import backup_sqlite
from agent.store.ledger_store import LedgerStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def shell_umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _journals(db: Path) -> list[Path]:
    return [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm")]


def test_a_new_database_and_its_journals_are_0600_in_a_0700_directory(tmp_path: Path) -> None:
    db = tmp_path / "data" / "node.db"
    store = LedgerStore(f"sqlite:///{db}")
    try:
        assert all(p.exists() for p in _journals(db))  # WAL mode: both are there while it is open
        modes = {p.name: _mode(p) for p in (db, *_journals(db))}
        assert modes == {"node.db": 0o600, "node.db-wal": 0o600, "node.db-shm": 0o600}
        assert _mode(db.parent) == 0o700
    finally:
        store.close()


def test_a_database_others_could_read_is_made_private_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "node.db"
    LedgerStore(f"sqlite:///{db}").close()
    for path in (db, *_journals(db)):
        if path.exists():
            os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="ledger_agent.files"):
        store = LedgerStore(f"sqlite:///{db}")
    try:
        assert f"{db} was open to other users (mode 0644): set to 0600" in caplog.text
        assert {_mode(p) for p in (db, *_journals(db)) if p.exists()} == {0o600}
    finally:
        store.close()


def test_a_backup_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    db = tmp_path / "node.db"
    LedgerStore(f"sqlite:///{db}").close()
    backup = tmp_path / "backups" / "node.db"
    backup_sqlite(db, backup)
    assert _mode(backup) == 0o600
    assert _mode(backup.parent) == 0o700
    store = LedgerStore(f"sqlite:///{backup}")  # a whole database, that opens as a store
    store.close()

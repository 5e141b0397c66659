"""Opening a database from a URL (or taking a peewee Database as it is)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import parse

from agent.errors import ConfigurationError, TransientConnectionError
from agent.files import create_private, private_dir, tighten
from agent.store.db_errors import DRIVER_ERRORS, TranslatedTransaction, secrets_of, translate

URL_KEY = "dataSourceProperties.dataSource.url"
_ALLOWED = "allowed: sqlite:///path/to/node.db, sqlite:///:memory: or postgresql://user@host:port/database"

# WAL lets readers (the management plane, the graph loader) run beside the writer.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": "normal",
    "busy_timeout": 10_000,
    # Per connection, and every thread has its own (the graph loader, the scheduler, each of the
    # server's workers): 64 MiB each put a loaded agent at ~400 MB RSS; at 8 MiB the caches of an
    # agent with 1M transactions held 10 MB more than at 2 MiB (SQLite's own default), which
    # changed neither finality's throughput nor LedgerSync's times (BENCHMARKS.md). The bulk
    # writer raises its own connection's (bulk.py).
    "cache_size": -2 * 1024,
}
BULK_CACHE_KIB = 64 * 1024
SQLITE_JOURNALS = ("-wal", "-shm", "-journal")
SCAN_CACHE_KIB = 256


class _Translating(peewee.Database):
    """Every statement, reads included, raises the agent's named database errors (db_errors.py).

    Writes go through write_transaction, which translates too; this covers the reads outside one,
    so that a hospital can diagnose a deadlock or a lost connection wherever it happens.
    """

    def execute_sql(self, sql: str, params: object = None, *args: object, **kwargs: object) -> object:
        try:
            return super().execute_sql(sql, params, *args, **kwargs)
        except DRIVER_ERRORS as exc:
            error = translate(exc, secrets=secrets_of(self))
            if isinstance(error, TransientConnectionError) and self.transaction_depth() == 0:
                self._forget_if_dead()
            raise error from exc

    def _forget_if_dead(self) -> None:
        # A connection the server closed stays "open" for peewee: close it so the next read reconnects.
        try:
            usable = bool(self.is_connection_usable())
        except DRIVER_ERRORS:
            usable = False
        if not usable:
            with suppress(*DRIVER_ERRORS):
                self.close()


class SqliteStoreDatabase(_Translating, peewee.SqliteDatabase):
    """The store's SQLite database."""


class PostgresqlStoreDatabase(_Translating, peewee.PostgresqlDatabase):
    """The store's PostgreSQL database."""


def open_database(target: str | peewee.Database) -> peewee.Database:
    """A Database for sqlite:///... or postgresql://...; a bad URL names the config key."""
    if isinstance(target, peewee.Database):
        return target
    scheme = urlsplit(target).scheme
    if scheme == "sqlite":
        path = target[len("sqlite:///") :] if target.startswith("sqlite:///") else ""
        if not path:
            raise ConfigurationError(URL_KEY, target, _ALLOWED)
        if path != ":memory:":
            private_sqlite_file(Path(path))
        return SqliteStoreDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    if scheme in ("postgresql", "postgres"):
        try:
            # A password with @ or : in it is written percent-encoded in the URL.
            return PostgresqlStoreDatabase(**parse(target, unquote_password=True))
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(URL_KEY, target, _ALLOWED) from exc
    raise ConfigurationError(URL_KEY, target, _ALLOWED)


def sqlite_path(database: peewee.Database) -> Path | None:
    """The file of a SQLite database; None for an in-memory one or another database."""
    if not isinstance(database, peewee.SqliteDatabase) or database.database in ("", ":memory:"):
        return None
    return Path(database.database)


def private_sqlite_file(path: Path) -> None:
    """The database file made 0600 before SQLite opens it (its directory 0700 if made here).

    SQLite gives the -wal and -shm files the mode of the database file, so they follow. A database
    others could read is the agent's own file: it is set to 0600, with a WARNING naming it
    (agent.files.tighten), and so are journals left beside it.
    """
    private_dir(path.parent)
    if not create_private(path):
        tighten([path, *(path.with_name(path.name + suffix) for suffix in SQLITE_JOURNALS)])


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def describe(database: peewee.Database) -> str:
    """Where a database lives, without credentials."""
    if is_sqlite(database):
        return f"sqlite:///{database.database}"
    params = database.connect_params
    host, port = params.get("host", "localhost"), params.get("port", 5432)
    return redact(f"postgresql://{params.get('user', '')}@{host}:{port}/{database.database}")


def is_sqlite(database: peewee.Database) -> bool:
    return isinstance(database, peewee.SqliteDatabase)


@contextmanager
def scanning(database: peewee.Database) -> Iterator[None]:
    """Around a read of whole tables in this thread: its SQLite page cache kept at 256 KiB meanwhile.

    A scan reads each page once, so a cache does not speed it up; but the 2 MiB it fills stay with
    the thread's connection, and a server worker keeps its connection: each worker that ran a
    consistency check held 2 MB more (the agent's RSS crept up check after check). On leaving, the
    cache may grow back to its size as the thread's other queries need it.
    """
    if not is_sqlite(database):
        yield
        return
    database.execute_sql(f"PRAGMA cache_size = -{SCAN_CACHE_KIB}")
    try:
        yield
    finally:
        database.execute_sql(f"PRAGMA cache_size = {SQLITE_PRAGMAS['cache_size']}")


def write_transaction(database: peewee.Database) -> TranslatedTransaction:
    """A transaction that will write: on SQLite it takes the write lock up front (BEGIN IMMEDIATE).

    A deferred SQLite transaction that reads and then writes fails at once with SQLITE_BUSY when
    another writer got in between (WAL snapshots cannot be upgraded); taking the lock first makes
    concurrent writers queue on busy_timeout instead. Nested, it is a savepoint. Database errors
    leave it as agent.errors.DatabaseError and its subclasses (db_errors.py), after the rollback.
    """
    if is_sqlite(database):
        return TranslatedTransaction(database, database.atomic("IMMEDIATE"))
    return TranslatedTransaction(database, database.atomic())


def backup_sqlite(source: Path, target: Path) -> None:
    """The whole SQLite database at source into target, through SQLite's online backup API.

    Consistent while the source's agent writes (a plain file copy could tear a page or miss the WAL).
    Into the target through a connection: one that reads any WAL left beside the file before
    writing every page, so old frames cannot be checkpointed over the restored pages later.
    """
    private_sqlite_file(target)  # a backup holds all the store holds: 0600, its directory 0700 if new
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()

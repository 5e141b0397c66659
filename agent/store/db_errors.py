"""Database errors into the agent's tree: the one module that knows peewee's and the drivers' exceptions.

A flow hospital diagnoses by class (docs/store.md has the table): DeadlockError is retried at once,
TransientConnectionError after a back-off, ConstraintViolationError and any other DatabaseError are
not retried blindly. Each keeps the driver's exception as its __cause__.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import peewee

from agent.errors import (
    AgentError,
    ConstraintViolationError,
    DatabaseError,
    DeadlockError,
    TransientConnectionError,
)

try:
    import psycopg2
except ImportError:  # an SQLite node keeps the PostgreSQL driver out of its process (agent/client/cli.py)
    psycopg2 = None

# The driver's exception classes, or none when it is not loaded (no PostgreSQL error can then occur).
_PG_ERROR: tuple[type[Exception], ...] = () if psycopg2 is None else (psycopg2.Error,)
_PG_CONNECTION: tuple[type[Exception], ...] = (
    () if psycopg2 is None else (psycopg2.OperationalError, psycopg2.InterfaceError)
)

# peewee's wrappers (queries, BEGIN, COMMIT, ROLLBACK, connect) and the drivers' own exceptions, which
# the bulk writer's raw cursors raise unwrapped. Not peewee.DoesNotExist: that is an answer.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    peewee.DatabaseError,
    peewee.InterfaceError,
    *_PG_ERROR,
    sqlite3.Error,
)

# 40P01 deadlock_detected, 40001 serialization_failure: the server rolled the transaction back so
# that another could go on; running it again is the cure.
_PG_DEADLOCK = frozenset({"40P01", "40001"})
# The server ended or refused the session: 57P01 admin_shutdown (pg_terminate_backend, fast shutdown),
# 57P02 crash_shutdown, 57P03 cannot_connect_now (starting or recovering), 57P05 idle_session_timeout,
# 53300 too_many_connections. A new connection, later, works. (Class 08 is checked by prefix.)
_PG_TRANSIENT = frozenset({"57P01", "57P02", "57P03", "57P05", "53300"})

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CONSTRAINT = 5, 6, 19
# SQLITE_BUSY | 2 << 8: a WAL read snapshot that another writer made stale cannot become a write; only
# a new transaction helps, as with PostgreSQL's 40001. BEGIN IMMEDIATE never meets it.
_SQLITE_BUSY_SNAPSHOT = 517
_SQLITE_CONSTRAINT_FAILED = re.compile(r"constraint failed: (?P<what>.+)$")

# user:password@ in any URL, and password=... in a libpq key/value DSN.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)\S*@", re.IGNORECASE)
_DSN_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_REDACTED = "***"


def translate(exc: Exception, *, secrets: Iterable[str] = ()) -> AgentError:
    """The most specific AgentError for a database failure, with exc as its __cause__; ours pass as they are.

    secrets (a password the caller knows) are taken out of the message, as are URL and DSN passwords.
    """
    if isinstance(exc, AgentError):
        return exc
    driver = _driver_error(exc)
    message = scrub(str(driver if driver is not None else exc).strip() or type(exc).__name__, secrets)
    if isinstance(driver, _PG_ERROR):
        error = _from_postgresql(driver, message)
    elif isinstance(driver, sqlite3.Error):
        error = _from_sqlite(driver, message)
    elif isinstance(exc, peewee.IntegrityError):
        error = ConstraintViolationError(message)
    else:
        error = DatabaseError(message)
    # Set here too, not only by `raise ... from`, so that a caller's plain `raise translate(e)` keeps it.
    error.__cause__ = exc
    return error


@contextmanager
def translated(database: peewee.Database | None = None) -> Iterator[None]:
    """Database errors raised inside leave as translate() names them (database: whose password to hide)."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise translate(exc, secrets=secrets_of(database)) from exc


@contextmanager
def opening(where: str) -> Iterator[None]:
    """Around a store's first use: a database error says which database (where: without credentials)."""
    try:
        yield
    except DRIVER_ERRORS as exc:
        raise _at(translate(exc), where) from exc
    except DatabaseError as err:
        raise _at(err, where) from err.__cause__


class TranslatedTransaction:
    """peewee's atomic() (a transaction, or a savepoint when nested) whose database errors leave translated.

    peewee's own __exit__ runs first, so the transaction or savepoint is rolled back before our error
    leaves; an enclosing block then sees our error, rolls back in its turn and lets it through.
    """

    def __init__(self, database: peewee.Database, atomic: Any) -> None:
        self._database = database
        self._atomic = atomic

    def __enter__(self) -> Any:
        try:
            return self._atomic.__enter__()
        except DRIVER_ERRORS as exc:
            self._forget_dead_connection()
            raise translate(exc, secrets=secrets_of(self._database)) from exc

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # None, not bool: peewee's transactions never swallow an error, and mypy then knows that the
        # block's `return` inside `with write_transaction(...)` is the function's last word.
        try:
            self._atomic.__exit__(exc_type, exc, tb)
        except DRIVER_ERRORS as failure:
            # COMMIT or ROLLBACK failed. When the block had failed already (a terminated connection fails
            # both), the block's error is the diagnosis; the rollback's failure stays its __context__.
            self._forget_dead_connection()
            if isinstance(exc, AgentError):
                raise exc from exc.__cause__
            diagnosis = exc if isinstance(exc, DRIVER_ERRORS) else failure
            raise translate(diagnosis, secrets=secrets_of(self._database)) from diagnosis
        if isinstance(exc, DRIVER_ERRORS):
            self._forget_dead_connection()
            raise translate(exc, secrets=secrets_of(self._database)) from exc

    def _forget_dead_connection(self) -> None:
        # peewee still counts a connection the server closed as open, so every later transaction of
        # this thread would fail on it; closing it lets the next one connect afresh. Only outermost: an
        # enclosing block still has to roll back on it.
        database = self._database
        if database.transaction_depth() > 0 or database.is_closed():
            return
        try:
            usable = bool(database.is_connection_usable())
        except DRIVER_ERRORS:
            usable = False
        if not usable:
            with suppress(*DRIVER_ERRORS):  # it is dead already; peewee forgets it either way
                database.close()


def secrets_of(database: peewee.Database | None) -> tuple[str, ...]:
    """The password a database logs in with, to be kept out of messages."""
    if database is None:
        return ()
    password = database.connect_params.get("password")
    if not password:
        return ()
    # playhouse.db_url keeps the URL's percent-encoding; the person who wrote the URL knows it decoded.
    return tuple({str(password), unquote(str(password))})


def scrub(message: str, secrets: Iterable[str] = ()) -> str:
    """The message without the given secrets, URL passwords or DSN password=... values."""
    # Longest first: a shorter secret inside a longer one must not leave the longer one's remains.
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            message = message.replace(secret, _REDACTED)
    message = _URL_PASSWORD.sub(rf"\g<1>{_REDACTED}@", message)
    return _DSN_PASSWORD.sub(rf"\g<1>{_REDACTED}", message)


def _driver_error(exc: BaseException) -> BaseException | None:
    """The psycopg2 or sqlite3 exception behind exc (peewee keeps it as .orig, wrapping twice on connect)."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain; bounded in case of a cycle
        if seen is None or isinstance(seen, (*_PG_ERROR, sqlite3.Error)):
            return seen
        seen = getattr(seen, "orig", None) or seen.__cause__
    return None


def _from_postgresql(driver: Any, message: str) -> DatabaseError:
    code: str | None = driver.pgcode
    diag = getattr(driver, "diag", None)
    details = {
        "code": code,
        "constraint": getattr(diag, "constraint_name", None),
        "table": getattr(diag, "table_name", None),
    }
    if code is None:
        # libpq's own failures carry no SQLSTATE: an OperationalError is the connection refused or lost
        # (the server closing it between statements), an InterfaceError a connection already closed.
        # A refused login looks the same; the hospital's bounded retries then end in overnight observation.
        if isinstance(driver, _PG_CONNECTION):
            return TransientConnectionError(message, **details)
        return DatabaseError(message, **details)
    if code in _PG_DEADLOCK:
        return DeadlockError(message, **details)
    if code.startswith("23"):
        return ConstraintViolationError(message, **details)
    if code.startswith("08") or code in _PG_TRANSIENT:
        return TransientConnectionError(message, **details)
    return DatabaseError(message, **details)


def _from_sqlite(driver: Any, message: str) -> DatabaseError:
    number: int | None = getattr(driver, "sqlite_errorcode", None)
    code: str | None = getattr(driver, "sqlite_errorname", None)
    primary = None if number is None else number & 0xFF
    if number == _SQLITE_BUSY_SNAPSHOT:
        return DeadlockError(message, code=code)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
        # Another connection kept the lock past busy_timeout (a bulk load, a backup, another process):
        # nothing was written, and the lock goes away with time, so retry after a back-off. Not a
        # deadlock: writers that BEGIN IMMEDIATE queue rather than cycle, and at once would wait again.
        return TransientConnectionError(message, code=code)
    if primary == _SQLITE_CONSTRAINT or isinstance(driver, sqlite3.IntegrityError):
        # SQLite names no constraint but what failed: "t.a, t.b" for UNIQUE or NOT NULL, a CHECK's name
        # or expression; FOREIGN KEY says nothing.
        found = _SQLITE_CONSTRAINT_FAILED.search(message)
        what = found.group("what") if found else None
        tables = {column.split(".", 1)[0] for column in what.split(", ")} if what and "." in what else set()
        table = tables.pop() if len(tables) == 1 else None
        return ConstraintViolationError(message, code=code, constraint=what, table=table)
    return DatabaseError(message, code=code)


def _at(error: AgentError, where: str) -> AgentError:
    if not isinstance(error, DatabaseError):
        return error
    reason = error.message.strip().splitlines()[0]
    return type(error)(
        f"cannot open the database at {where}: {reason}",
        code=error.code,
        constraint=error.constraint,
        table=error.table,
    )

"""Real database failures, on SQLite and PostgreSQL, reach callers as the agent's DatabaseError subclasses."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

import peewee
import psycopg2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import (
    ConstraintViolationError,
    DatabaseError,
    DeadlockError,
    TransientConnectionError,
)
from agent.store.database import open_database, write_transaction
from agent.store.db_errors import translate, translated
from agent.store.ledger_store import LedgerStore
from tests.conftest import PG_ADMIN_URL

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DEADLINE = 30.0  # seconds; a wait that long means the test is broken, not slow


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[LedgerStore]:
    store = LedgerStore(pg_url)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[LedgerStore]:
    store = LedgerStore(f"sqlite:///{tmp_path}/node.db")
    yield store
    store.close()


@pytest.fixture
def store(database_url: str) -> Iterator[LedgerStore]:
    store = LedgerStore(database_url)
    yield store
    store.close()


@pytest.fixture
def pg_admin() -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    conn.autocommit = True
    yield conn
    conn.close()


def add_row(store: LedgerStore, tx_id: str) -> None:
    nt = store.schema.node_transactions
    nt.insert(tx_id=tx_id, transaction_value=b"tx", signatures=b"", status="V", timestamp=NOW).execute()


def tx_ids(store: LedgerStore) -> set[str]:
    nt = store.schema.node_transactions
    return {row.tx_id for row in nt.select(nt.tx_id)}


def still_usable(store: LedgerStore, tx_id: str) -> None:
    with write_transaction(store.database):
        add_row(store, tx_id)
    assert tx_id in tx_ids(store)


# -- PostgreSQL ---------------------------------------------------------------------------------------


def test_a_real_deadlock_is_a_deadlock_error_and_the_victim_can_retry(pg_store: LedgerStore) -> None:
    db = pg_store.database
    with write_transaction(db):
        add_row(pg_store, "A")
        add_row(pg_store, "B")
    both_hold_one = threading.Barrier(2, timeout=DEADLINE)
    failures: dict[str, Exception] = {}
    retried: set[str] = set()

    def lock_both(name: str, first: str, second: str) -> None:
        nt = pg_store.schema.node_transactions
        # Each thread has its own connection; a short deadlock_timeout only makes the detector quick.
        db.execute_sql("SET deadlock_timeout = '100ms'")
        try:
            with write_transaction(db):
                add_row(pg_store, f"half-done by {name}")
                nt.update(status="F").where(nt.tx_id == first).execute()
                both_hold_one.wait()
                nt.update(status="U").where(nt.tx_id == second).execute()
        except Exception as exc:
            failures[name] = exc
            both_hold_one.abort()  # the other must not wait out the deadline if we failed early
            with write_transaction(db):  # what a hospital's DeadlockNurse will do: run it again
                add_row(pg_store, f"retried by {name}")
            retried.add(name)
        finally:
            db.close()

    threads = [
        threading.Thread(target=lock_both, args=("one", "A", "B")),
        threading.Thread(target=lock_both, args=("two", "B", "A")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE)
    assert not any(thread.is_alive() for thread in threads)

    assert len(failures) == 1, failures
    [(victim, error)] = failures.items()
    winner = "two" if victim == "one" else "one"
    assert isinstance(error, DeadlockError)
    assert error.code == "40P01"
    assert "deadlock detected" in error.message
    assert isinstance(error.__cause__, peewee.OperationalError)
    ids = tx_ids(pg_store)
    assert f"half-done by {victim}" not in ids  # the victim's transaction was rolled back
    assert {f"half-done by {winner}", f"retried by {victim}"} <= ids
    assert retried == {victim}
    still_usable(pg_store, "after the deadlock")


def test_a_serialization_failure_is_a_deadlock_error(pg_store: LedgerStore, pg_url: str) -> None:
    db = pg_store.database
    with write_transaction(db):
        add_row(pg_store, "A")
    nt = pg_store.schema.node_transactions
    other = psycopg2.connect(pg_url)
    other.autocommit = True
    try:
        with (
            pytest.raises(DeadlockError) as caught,
            translated(db),
            db.atomic(isolation_level="REPEATABLE READ"),
        ):
            assert nt.get(nt.tx_id == "A").status == "V"  # the snapshot is taken here
            with other.cursor() as cur:
                cur.execute("UPDATE node_transactions SET status = 'U' WHERE tx_id = 'A'")
            nt.update(status="F").where(nt.tx_id == "A").execute()
    finally:
        other.close()
    assert caught.value.code == "40001"
    assert nt.get(nt.tx_id == "A").status == "U"
    still_usable(pg_store, "after the serialization failure")


def test_a_unique_key_violation_names_the_constraint_and_rolls_back(pg_store: LedgerStore) -> None:
    with write_transaction(pg_store.database):
        add_row(pg_store, "A")
    with pytest.raises(ConstraintViolationError) as caught, write_transaction(pg_store.database):
        add_row(pg_store, "half-done")
        add_row(pg_store, "A")
    error = caught.value
    assert (error.code, error.constraint, error.table) == (
        "23505",
        "node_transactions_pkey",
        "node_transactions",
    )
    assert "duplicate key value violates unique constraint" in error.message
    assert isinstance(error.__cause__, peewee.IntegrityError)
    assert isinstance(error.__cause__.orig, psycopg2.errors.UniqueViolation)
    assert tx_ids(pg_store) == {"A"}
    still_usable(pg_store, "after the violation")


def test_a_connection_terminated_by_the_server_is_transient_and_the_store_reconnects(
    pg_store: LedgerStore, pg_admin: psycopg2.extensions.connection
) -> None:
    db = pg_store.database
    with pytest.raises(TransientConnectionError) as caught, write_transaction(db):
        add_row(pg_store, "half-done")
        pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
        with pg_admin.cursor() as cur:
            # With a timeout, it returns once the backend has gone, so the next statement meets a dead
            # connection rather than racing the signal.
            cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            assert cur.fetchone() == (True,)
        db.execute_sql("SELECT 1")
    error = caught.value
    assert "server closed the connection unexpectedly" in error.message
    assert error.code is None  # libpq's own report: the server's 57P01 is lost with the socket
    assert isinstance(error.__cause__, peewee.OperationalError)
    # The rollback on the dead connection failed too; it stays in the chain, not in the diagnosis.
    assert isinstance(error.__context__, peewee.InterfaceError)
    assert db.is_closed()  # the dead connection is forgotten: the next transaction connects afresh
    assert "half-done" not in tx_ids(pg_store)
    still_usable(pg_store, "after the termination")


def test_a_connection_terminated_between_transactions_fails_the_next_begin_transiently(
    pg_store: LedgerStore, pg_admin: psycopg2.extensions.connection
) -> None:
    db = pg_store.database
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with pg_admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
    with pytest.raises(TransientConnectionError), write_transaction(db):
        add_row(pg_store, "never")
    still_usable(pg_store, "after the reconnection")
    assert "never" not in tx_ids(pg_store)


def test_a_read_on_a_connection_the_server_terminated_is_transient_and_the_next_reconnects(
    pg_store: LedgerStore, pg_admin: psycopg2.extensions.connection
) -> None:
    from agent.ledger.hashing import SecureHash

    db = pg_store.database
    pid = db.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    with pg_admin.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
    # A plain read, outside any write transaction: named too, for the hospital to diagnose.
    with pytest.raises(TransientConnectionError) as caught:
        pg_store.transactions.get_stored(SecureHash.of(b"absent"))
    assert isinstance(caught.value.__cause__, peewee.OperationalError | peewee.InterfaceError)
    assert pg_store.transactions.get_stored(SecureHash.of(b"absent")) is None  # the next read connects afresh
    still_usable(pg_store, "after a read met the dead connection")


def test_a_refused_connection_is_transient() -> None:
    db = open_database("postgresql://agent:s3cret@127.0.0.1:1/ledger")
    with pytest.raises(TransientConnectionError) as caught, write_transaction(db):
        pass
    assert "Connection refused" in caught.value.message
    assert "s3cret" not in str(caught.value)


# -- SQLite -------------------------------------------------------------------------------------------


def test_a_read_that_fails_on_sqlite_raises_a_named_database_error(sqlite_store: LedgerStore) -> None:
    from agent.errors import DatabaseError
    from agent.ledger.hashing import SecureHash

    # A real failure of a read: the table it reads is gone (as a damaged or foreign file would be).
    sqlite_store.database.execute_sql('DROP TABLE "node_transactions"')
    with pytest.raises(DatabaseError) as caught:
        sqlite_store.transactions.get_stored(SecureHash.of(b"anything"))
    assert "no such table" in caught.value.message
    assert isinstance(caught.value.__cause__, peewee.OperationalError)


def test_a_sqlite_constraint_violation_names_the_table_and_rolls_back(sqlite_store: LedgerStore) -> None:
    with write_transaction(sqlite_store.database):
        add_row(sqlite_store, "A")
    with pytest.raises(ConstraintViolationError) as caught, write_transaction(sqlite_store.database):
        add_row(sqlite_store, "half-done")
        add_row(sqlite_store, "A")
    error = caught.value
    assert (error.code, error.constraint, error.table) == (
        "SQLITE_CONSTRAINT_PRIMARYKEY",
        "node_transactions.tx_id",
        "node_transactions",
    )
    assert isinstance(error.__cause__, peewee.IntegrityError)
    assert tx_ids(sqlite_store) == {"A"}
    still_usable(sqlite_store, "after the violation")


def test_a_sqlite_write_lock_held_past_busy_timeout_is_transient(sqlite_store: LedgerStore) -> None:
    db = sqlite_store.database
    holder = sqlite3.connect(db.database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer (a bulk load, a backup) holds the lock
        db.execute_sql("PRAGMA busy_timeout = 50")
        with pytest.raises(TransientConnectionError) as caught, write_transaction(db):
            add_row(sqlite_store, "never")
        assert caught.value.code == "SQLITE_BUSY"
        assert caught.value.message == "database is locked"
        assert db.transaction_depth() == 0
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    still_usable(sqlite_store, "after the lock")
    assert "never" not in tx_ids(sqlite_store)


def test_a_stale_sqlite_snapshot_that_tries_to_write_is_a_deadlock_error(sqlite_store: LedgerStore) -> None:
    # Why write_transaction begins IMMEDIATE: a deferred one that read first cannot write after
    # another writer, and only running it again helps.
    db = sqlite_store.database
    other = sqlite3.connect(db.database, isolation_level=None)
    try:
        with pytest.raises(DeadlockError) as caught, translated(db), db.atomic():
            assert tx_ids(sqlite_store) == set()  # the read snapshot is taken here
            other.execute(
                "INSERT INTO node_transactions (tx_id, transaction_value, signatures, status, timestamp)"
                " VALUES ('B', x'00', x'', 'V', '2026-03-01 12:00:00')"
            )
            add_row(sqlite_store, "A")
    finally:
        other.close()
    assert caught.value.code == "SQLITE_BUSY_SNAPSHOT"
    assert tx_ids(sqlite_store) == {"B"}


# -- both ---------------------------------------------------------------------------------------------


def test_a_caught_error_in_a_nested_transaction_rolls_back_its_savepoint_only(store: LedgerStore) -> None:
    with write_transaction(store.database):
        add_row(store, "A")
    with write_transaction(store.database):
        add_row(store, "kept")
        with pytest.raises(ConstraintViolationError), write_transaction(store.database):
            add_row(store, "undone with its savepoint")
            add_row(store, "A")
        add_row(store, "after the savepoint")
    assert tx_ids(store) == {"A", "kept", "after the savepoint"}


def test_an_error_leaving_nested_transactions_rolls_back_the_whole(store: LedgerStore) -> None:
    with write_transaction(store.database):
        add_row(store, "A")
    with pytest.raises(ConstraintViolationError) as caught, write_transaction(store.database):
        add_row(store, "outer")
        with write_transaction(store.database):
            add_row(store, "A")
    assert isinstance(caught.value.__cause__, peewee.IntegrityError)  # translated once, not twice
    assert store.database.transaction_depth() == 0
    assert tx_ids(store) == {"A"}
    still_usable(store, "after the nested failure")


def test_errors_that_are_not_the_databases_pass_unchanged(store: LedgerStore) -> None:
    with pytest.raises(KeyError), write_transaction(store.database):
        add_row(store, "undone")
        raise KeyError("ours")
    assert tx_ids(store) == set()


# -- properties ---------------------------------------------------------------------------------------

FAILING_SQLITE = [
    ("INSERT INTO t VALUES (1, 1)", ConstraintViolationError),
    ("INSERT INTO t VALUES (NULL, NULL)", ConstraintViolationError),
    ("INSERT INTO t VALUES (2, -{})", ConstraintViolationError),
    ("SELECT * FROM t WHERE", DatabaseError),
    ("SELECT * FROM no_such_table_{}", DatabaseError),
    ("INSERT INTO t VALUES ({})", DatabaseError),
]


@settings(max_examples=60, deadline=None)
@given(
    failing=st.sampled_from(FAILING_SQLITE),
    number=st.integers(min_value=1, max_value=2**62),
    through_peewee=st.booleans(),
)
def test_translate_keeps_the_original_as_its_cause(
    failing: tuple[str, type[DatabaseError]], number: int, through_peewee: bool
) -> None:
    sql, expected = failing
    db = peewee.SqliteDatabase(":memory:")
    db.execute_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER NOT NULL CHECK (v >= 0))")
    db.execute_sql("INSERT INTO t VALUES (1, 1)")
    run = db.execute_sql if through_peewee else db.connection().execute  # the bulk writer's raw cursors
    with pytest.raises((peewee.DatabaseError, sqlite3.Error)) as raised:
        run(sql.format(number))
    original = raised.value
    error = translate(original)
    assert type(error) is expected
    assert error.__cause__ is original
    assert translate(error) is error  # ours pass as they are
    with pytest.raises(expected) as caught, translated(db):
        run(sql.format(number))
    assert isinstance(caught.value.__cause__, type(original))
    db.close()


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=3, max_size=24))
def test_no_password_from_the_url_reaches_the_message(pg_url: str, password: str) -> None:
    ours = f"pw{password}"  # never a valid integer, so the casts below fail
    theirs = f"op{password[::-1]}"
    db = open_database(with_password(pg_url, ours))  # trust auth: any password logs in
    try:
        # The server quotes what it could not cast, so these errors carry the passwords for real:
        # ours is known from the database, theirs only by its place in a URL.
        for echoed, hidden in ((ours, ours), (f"postgresql://agent:{theirs}@db.example:5432/ledger", theirs)):
            with pytest.raises(DatabaseError) as caught, write_transaction(db):
                db.execute_sql("SELECT %s::int", (echoed,))
            error = caught.value
            assert error.code == "22P02"
            assert isinstance(error.__cause__, peewee.DataError)
            assert hidden in str(error.__cause__)
            assert hidden not in str(error)
    finally:
        db.close()
    refused = open_database(with_password("postgresql://agent@127.0.0.1:1/ledger", ours))
    with pytest.raises(TransientConnectionError) as caught, write_transaction(refused):
        pass
    assert ours not in str(caught.value)
    assert isinstance(caught.value.__cause__, peewee.OperationalError)

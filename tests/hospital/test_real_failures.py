"""Real database failures on PostgreSQL, diagnosed by the flow hospital on a real engine and store.

- DeadlockNurse: a deadlock between a flow's step and the test's own connection, which takes the rows
  in the other order (its deadlock_timeout is long, so PostgreSQL picks the flow as the victim).
- DuplicateInsertSpecialist: the test's connection inserts the key the flow's step inserts; the flow
  waits on that uncommitted row and meets the unique violation when the test commits.
- TransientConnectionCardiologist: the backend serving the flow is terminated by the server
  (pg_terminate_backend) while the flow's step waits in it.
- DatabaseEndocrinologist: the store's role loses its INSERT grant on the table the step writes.

No error here is raised by the test: each is PostgreSQL's own, through the store's translation. The
flow's backend is found in pg_stat_activity while it waits on a lock the test holds. Every wait has
a deadline; the engine's clock is manual, so back-offs of 10 s or more pass at once.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest

from agent.clock import ManualClock
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowEngine, FlowHandle
from agent.flows.flow import STARTED, Advance, Flow, FlowContext, StepOutcome
from agent.hospital.hospital import FlowHospital
from agent.hospital.policy import parse_hospital_settings
from agent.hospital.records import OBSERVATION, RECOVERED, RETRY, MedicalRecord
from agent.store.ledger_store import LedgerStore
from tests.conftest import PG_ADMIN_URL

T0 = datetime(2026, 1, 2, tzinfo=UTC)
WAIT = 20.0  # real seconds a test waits for a condition before failing
KEYS = "node_aes_encryption_keys"


def until(condition: Callable[[], bool], what: Callable[[], object], deadline: float = WAIT) -> None:
    """Poll condition until it holds; fail with what() after deadline seconds."""
    tick = threading.Event()
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"not within {deadline} s: {what()}")
        tick.wait(0.01)  # the polling interval of a wait on a condition, not a synchronisation sleep


class RowsFlow(Flow):
    """One step per entry of state["steps"], each touching AES key rows in its order: a name updates
    that row, "+name" inserts it. The last step completes the flow with "done"."""

    name = "RowsFlow"

    def __init__(self, state: dict[str, Any], store: LedgerStore) -> None:
        super().__init__(state)
        self.store = store

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        steps: list[list[str]] = self.state["steps"]
        done = 0 if progress_step == STARTED else int(progress_step.removeprefix("STEP"))
        rows = steps[done]
        last = done + 1 == len(steps)
        return Advance(
            f"STEP{done + 1}", effect=lambda: self._touch(rows), done=last, result="done" if last else None
        )

    def _touch(self, rows: list[str]) -> None:
        keys = self.store.schema.aes_encryption_keys
        for row in rows:
            if row.startswith("+"):
                keys.insert(key_id=row[1:], key_material=b"flow").execute()
            else:
                keys.update(key_material=b"flow").where(keys.key_id == row).execute()


class Ward:
    """An engine with its hospital (Corda's staff) on one PostgreSQL store and a manual clock."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store
        self.clock = ManualClock(T0)
        self.engine = FlowEngine(store.checkpoints, store.unit, self.clock)
        self.engine.register(RowsFlow.name, lambda state: RowsFlow(state, store))
        self.hospital = FlowHospital(
            store.hospital, store.checkpoints, self.clock, parse_hospital_settings({}), rng=random.Random(3)
        )
        self.hospital.attach(self.engine)

    def start(self, *steps: list[str]) -> FlowHandle:
        return self.engine.start(RowsFlow({"steps": [list(s) for s in steps]}, self.store))

    def records(self, handle: FlowHandle) -> list[MedicalRecord]:
        return self.store.hospital.records([handle.flow_id])

    def wait_records(self, handle: FlowHandle, n: int) -> list[MedicalRecord]:
        until(lambda: len(self.records(handle)) >= n, lambda: self.records(handle))
        return self.records(handle)

    def wait_status(self, handle: FlowHandle, status: FlowStatus) -> None:
        assert handle.wait_for(lambda h: h.checkpoint is not None and h.checkpoint.status is status, WAIT), (
            handle.checkpoint
        )

    def advance_to_retry(self, handle: FlowHandle) -> float:
        """Move the clock to the flow's retry time and fire it; the seconds it waited."""
        until(lambda: self.engine.wake_at(handle.flow_id) is not None, lambda: handle.checkpoint)
        wake = self.engine.wake_at(handle.flow_id)
        assert wake is not None
        waited = (wake - self.clock.now()).total_seconds()
        if waited > 0:
            self.clock.advance(wake - self.clock.now())
        self.engine.fire_due()
        return waited


class Postgres:
    """The test's side of the database: connections that take locks, and a monitor that looks at
    pg_stat_activity and terminates backends."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.monitor = psycopg2.connect(url)
        self.monitor.autocommit = True
        self.others: list[psycopg2.extensions.connection] = []
        self.threads: list[threading.Thread] = []

    def other(self) -> psycopg2.extensions.connection:
        """A connection in a transaction of its own; its deadlock_timeout is long, so a deadlock it is
        part of is found first by the flow's backend (default 1 s), which is then the victim."""
        conn = psycopg2.connect(self.url, options="-c deadlock_timeout=30s")
        self.others.append(conn)
        return conn

    def pids(self) -> set[int]:
        return {conn.get_backend_pid() for conn in self.others}

    def waiting_backend(self) -> int:
        """The pid of the flow's backend once it waits on a lock (ours are not counted)."""
        found: list[int] = []

        def waiting() -> bool:
            with self.monitor.cursor() as cur:
                cur.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND pid <> ALL(%s)",
                    (list(self.pids() | {self.monitor.get_backend_pid()}),),
                )
                found[:] = [row[0] for row in cur.fetchall()]
            return len(found) == 1

        until(waiting, lambda: f"one backend waiting on a lock, found {found}")
        return found[0]

    def in_background(self, conn: psycopg2.extensions.connection, sql: str) -> Background:
        """Run a statement that will block (until a deadlock is broken) on another thread."""
        statement = Background(conn, sql)
        self.threads.append(statement.thread)
        return statement

    def terminate(self, pid: int) -> None:
        with self.monitor.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
            assert cur.fetchone() == (True,)

    def close(self) -> None:
        for conn in self.others:
            conn.rollback()  # whatever a failed test left open: the flow may go on and be stopped
        for thread in self.threads:
            thread.join(WAIT)
        for conn in self.others:
            conn.close()
        self.monitor.close()


class Background:
    """A statement of the test's connection, run on a thread of its own because it waits on a lock."""

    def __init__(self, conn: psycopg2.extensions.connection, sql: str) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(conn, sql), name="test-connection")
        self.thread.start()

    def _run(self, conn: psycopg2.extensions.connection, sql: str) -> None:
        try:
            execute(conn, sql)
        except BaseException as exc:
            self.error = exc
            raise

    def join(self) -> None:
        """Wait for it; it must have succeeded."""
        self.thread.join(WAIT)
        assert not self.thread.is_alive() and self.error is None, self.error


def execute(conn: psycopg2.extensions.connection, sql: str, *args: Any) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, args)


@pytest.fixture
def store(pg_url: str) -> Iterator[LedgerStore]:
    s = LedgerStore(pg_url)
    yield s
    s.close()


@pytest.fixture
def ward(store: LedgerStore) -> Iterator[Ward]:
    w = Ward(store)
    yield w
    w.engine.shutdown(5)


@pytest.fixture
def pg(pg_url: str, ward: Ward) -> Iterator[Postgres]:
    p = Postgres(pg_url)
    yield p
    p.close()  # before the ward's engine stops: a flow blocked on our locks is let go first


def test_a_deadlock_with_another_connection_is_retried_at_once_at_each_checkpoint(
    ward: Ward, pg: Postgres
) -> None:
    ward.store.keys.add_aes_keys({"x1": b"0", "y1": b"0", "x2": b"0", "y2": b"0"})
    first, second = pg.other(), pg.other()
    execute(first, f"UPDATE {KEYS} SET key_material = 'a' WHERE key_id = 'y1'")
    execute(second, f"UPDATE {KEYS} SET key_material = 'b' WHERE key_id = 'y2'")
    handle = ward.start(["x1", "y1"], ["x2", "y2"])  # each step: x, then y

    # Step 1 holds x1 and waits for y1; the test's connection, holding y1, asks for x1: a cycle.
    pg.waiting_backend()
    taking = pg.in_background(first, f"UPDATE {KEYS} SET key_material = 'a' WHERE key_id = 'x1'")
    (deadlock,) = ward.wait_records(handle, 1)
    taking.join()  # it got x1: the flow's transaction was the one rolled back
    assert (deadlock.staff, deadlock.diagnosis, deadlock.outcome) == ("DeadlockNurse", "DISCHARGE", RETRY)
    assert deadlock.error_type == "DeadlockError" and "deadlock detected" in (deadlock.error_message or "")
    assert (deadlock.step, deadlock.delay_s, deadlock.attempt) == (STARTED, 0.0, 1)  # no back-off

    # Retried at once, the step now waits for x1 behind the test's connection, which commits.
    pg.waiting_backend()
    assert ward.engine.wake_at(handle.flow_id) is None  # running again: no timer
    first.commit()
    assert handle.wait_for_step(("STEP1",), WAIT)

    # Step 2 meets the same cycle with the second connection: a fresh budget, so again no back-off.
    pg.waiting_backend()
    taking = pg.in_background(second, f"UPDATE {KEYS} SET key_material = 'b' WHERE key_id = 'x2'")
    records = ward.wait_records(handle, 3)
    taking.join()
    assert [(r.step, r.staff, r.outcome, r.delay_s) for r in records] == [
        (STARTED, "DeadlockNurse", RETRY, 0.0),
        ("STEP1", None, RECOVERED, None),
        ("STEP1", "DeadlockNurse", RETRY, 0.0),
    ]
    pg.waiting_backend()
    second.commit()
    assert handle.result(WAIT) == "done"
    assert ward.store.hospital.records([handle.flow_id]) == []  # completed: nothing left to look at
    # Every row holds the flow's write, made after the test's: nothing of a rolled-back try is missing.
    assert ward.store.keys.aes_keys() == {k: b"flow" for k in ("x1", "y1", "x2", "y2")}


def test_a_key_inserted_by_another_connection_is_retried_three_times_then_kept(
    ward: Ward, pg: Postgres
) -> None:
    other = pg.other()
    execute(other, f"INSERT INTO {KEYS} (key_id, key_material) VALUES ('dup', 'other')")
    handle = ward.start(["+dup"])
    # The flow's insert waits on the uncommitted row; the test's connection commits first.
    pg.waiting_backend()
    other.commit()
    # The first retry is at once (no back-off): a second record may already be there.
    first = ward.wait_records(handle, 1)[0]
    assert (first.staff, first.outcome, first.delay_s) == ("DuplicateInsertSpecialist", RETRY, 0.0)
    assert first.error_type == "ConstraintViolationError" and f"{KEYS}_pkey" in (first.error_message or "")
    ward.wait_records(handle, 2)  # the first retry, at once, collides with the committed row
    waits = [ward.advance_to_retry(handle)]
    ward.wait_records(handle, 3)
    waits.append(ward.advance_to_retry(handle))
    ward.wait_status(handle, FlowStatus.HOSPITALIZED)
    records = ward.records(handle)
    assert [(r.staff, r.diagnosis, r.outcome, r.step, r.attempt) for r in records] == [
        ("DuplicateInsertSpecialist", "DISCHARGE", RETRY, STARTED, 1),
        ("DuplicateInsertSpecialist", "DISCHARGE", RETRY, STARTED, 2),
        ("DuplicateInsertSpecialist", "DISCHARGE", RETRY, STARTED, 3),
        ("DatabaseEndocrinologist", "OVERNIGHT_OBSERVATION", OBSERVATION, STARTED, 4),
    ]
    assert all(10 <= w <= 120 for w in waits), waits  # Corda's back-off after the first retry
    assert ward.engine.wake_at(handle.flow_id) is None  # kept: no timer, it waits for an operator

    # The operator removes the colliding row and retries: the insert goes through.
    execute(other, f"DELETE FROM {KEYS} WHERE key_id = 'dup'")
    other.commit()
    assert ward.engine.retry(handle.flow_id)
    assert handle.result(WAIT) == "done"
    assert ward.store.keys.aes_keys() == {"dup": b"flow"}


def test_a_backend_terminated_under_a_step_is_retried_twice_then_kept(ward: Ward, pg: Postgres) -> None:
    ward.store.keys.add_aes_keys({"x": b"0"})
    holder = pg.other()
    execute(holder, f"UPDATE {KEYS} SET key_material = 'other' WHERE key_id = 'x'")
    handle = ward.start(["x"])
    terminated = []
    for n in (1, 2, 3):
        pid = pg.waiting_backend()  # the step's UPDATE, waiting for the test's row lock
        assert pid not in terminated  # each retry connects afresh
        pg.terminate(pid)
        terminated.append(pid)
        ward.wait_records(handle, n)
        if n == 2:
            assert ward.advance_to_retry(handle) >= 10
    ward.wait_status(handle, FlowStatus.HOSPITALIZED)
    records = ward.records(handle)
    assert [(r.staff, r.outcome, r.delay_s) for r in records[:2]] == [
        ("TransientConnectionCardiologist", RETRY, 0.0),
        ("TransientConnectionCardiologist", RETRY, records[1].delay_s),
    ]
    assert (records[2].staff, records[2].diagnosis) == (
        "TransientConnectionCardiologist",
        "OVERNIGHT_OBSERVATION",
    )
    assert {r.error_type for r in records} == {"TransientConnectionError"}

    # The store serves the rest of the node meanwhile (its dead connections were let go) ...
    assert ward.store.keys.aes_keys() == {"x": b"0"}
    holder.rollback()
    # ... and the operator's retry, with a fresh budget, completes the step.
    assert ward.engine.retry(handle.flow_id)
    assert handle.result(WAIT) == "done"
    assert ward.store.keys.aes_keys() == {"x": b"flow"}


def test_a_single_terminated_backend_is_retried_and_the_flow_completes(ward: Ward, pg: Postgres) -> None:
    ward.store.keys.add_aes_keys({"x": b"0"})
    holder = pg.other()
    execute(holder, f"UPDATE {KEYS} SET key_material = 'other' WHERE key_id = 'x'")
    handle = ward.start(["x"], ["x"])
    pg.terminate(pg.waiting_backend())
    (record,) = ward.wait_records(handle, 1)
    assert (record.staff, record.outcome, record.delay_s, record.error_type) == (
        "TransientConnectionCardiologist",
        RETRY,
        0.0,
        "TransientConnectionError",
    )
    pg.waiting_backend()  # retried at once, on a new connection, waiting for the row again
    holder.rollback()
    assert handle.result(WAIT) == "done"
    assert ward.store.keys.aes_keys() == {"x": b"flow"}


@pytest.fixture
def restricted_url() -> Iterator[str]:
    """A fresh database owned by a login role of its own, as a node's operator would set one up."""
    suffix = uuid.uuid4().hex[:10]
    role, database = f"hospital_role_{suffix}", f"hospital_db_{suffix}"
    admin = psycopg2.connect(PG_ADMIN_URL)
    admin.autocommit = True
    try:
        execute(admin, f'CREATE ROLE "{role}" LOGIN')
        execute(admin, f'CREATE DATABASE "{database}" OWNER "{role}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("//postgres@", f"//{role}@", 1)
        assert role in base, base
        yield f"{base}/{database}"
    finally:
        execute(admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        execute(admin, f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


def test_a_revoked_grant_is_kept_for_observation_until_granted_and_retried(restricted_url: str) -> None:
    store = LedgerStore(restricted_url)  # migrated by its own role, which owns every table
    ward = Ward(store)
    role = restricted_url.split("//", 1)[1].split("@", 1)[0]
    superuser = psycopg2.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + restricted_url.rsplit("/", 1)[1])
    superuser.autocommit = True
    try:
        execute(superuser, f'REVOKE INSERT ON {KEYS} FROM "{role}"')
        handle = ward.start(["+k"])
        ward.wait_status(handle, FlowStatus.HOSPITALIZED)
        (record,) = ward.records(handle)
        assert (record.staff, record.diagnosis, record.outcome, record.delay_s) == (
            "DatabaseEndocrinologist",
            "OVERNIGHT_OBSERVATION",
            OBSERVATION,
            None,
        )
        assert record.error_type == "DatabaseError" and "permission denied" in (record.error_message or "")
        assert ward.engine.wake_at(handle.flow_id) is None  # not retried by itself

        execute(superuser, f'GRANT INSERT ON {KEYS} TO "{role}"')
        assert ward.engine.retry(handle.flow_id)
        assert handle.result(WAIT) == "done"
        assert store.keys.aes_keys() == {"k": b"flow"}
    finally:
        ward.engine.shutdown(5)
        store.close()
        superuser.close()

"""Fixtures shared by every test: databases (SQLite and PostgreSQL), parties, a ledger to trade on."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg2
import pytest

from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair

# The admin connection that creates each test's scratch database. CI runs against the machine's own
# PostgreSQL; a missing server fails the PostgreSQL tests rather than skipping them.
PG_ADMIN_URL = os.environ.get("LEDGER_AGENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> psycopg2.extensions.connection:
    try:
        conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        pytest.fail(f"PostgreSQL is needed at {PG_ADMIN_URL} (set LEDGER_AGENT_TEST_PG): {exc}")
    conn.autocommit = True
    return conn


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"ledger_agent_test_{uuid.uuid4().hex[:12]}"
    admin = _pg_admin()
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Each store test runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/node.db"
    return str(request.getfixturevalue("pg_url"))


@dataclass(frozen=True)
class Actor:
    party: Party
    key: KeyPair

    @property
    def name(self) -> X500Name:
        return self.party.name


def make_actor(name: str) -> Actor:
    key = KeyPair.generate()
    return Actor(Party(X500Name.parse(name), key.public), key)


@pytest.fixture
def alice() -> Actor:
    return make_actor("O=Alice Corp, L=Madrid, C=ES")


@pytest.fixture
def bob() -> Actor:
    return make_actor("O=Bob Plc, L=Rome, C=IT")


@pytest.fixture
def charlie() -> Actor:
    return make_actor("O=Charlie Ltd, L=London, C=GB")


@pytest.fixture
def notary_actor() -> Actor:
    return make_actor("O=Notary Service, L=Zurich, C=CH")


# -- fuzzing: how many inputs each fuzzer tried, printed at the end of the run (issue 16) -----------------

FUZZ_COUNTS: dict[str, int] = {}


def count_fuzzed(target: str, n: int = 1) -> None:
    """Count n inputs tried against target (a decoder, or a surface of a live agent)."""
    FUZZ_COUNTS[target] = FUZZ_COUNTS.get(target, 0) + n


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: its counts go to the controller
        workeroutput["fuzz_counts"] = dict(FUZZ_COUNTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    for target, n in getattr(node, "workeroutput", {}).get("fuzz_counts", {}).items():
        count_fuzzed(target, n)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FUZZ_COUNTS:
        terminalreporter.section("fuzzing: inputs tried")
        for target, n in sorted(FUZZ_COUNTS.items()):
            terminalreporter.write_line(f"{n:>9,}  {target}")

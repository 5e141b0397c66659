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

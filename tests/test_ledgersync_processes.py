"""LedgerSync between real agent processes over loopback mutual TLS, on SQLite and PostgreSQL.

Three nodes trade; one is restored from a backup of its store and reconciles with each peer; then the
limits: a full responder pool with more requesters than slots, busy retries until the timeout, the
rate limit, killFlow and StopReconciliationForPartyFlow, a restart with a job queued, and malformed
protocol messages. A "rogue" session is the notary's identity speaking the LedgerSync protocol to a
node (the notary runs no LedgerSync of its own): it holds the responder's only slot on purpose.
Every process is stopped by its PID; every wait has a deadline.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from agent.client.launcher import AgentProcessError, ManagementClient
from agent.clock import SystemClock
from agent.errors import PeerRequestError
from agent.ledger.identity import X500Name
from agent.ledgersync.protocol import TOPIC_BEGIN, TOPIC_END
from agent.network.bootstrap import DEFAULT_NOTARY
from agent.node import open_node
from agent.p2p.authenticator import MessageAuthenticator
from agent.p2p.client import PeerClient
from agent.store.database import backup_sqlite
from tests.conftest import PG_ADMIN_URL
from tests.endpoints import member_transport
from tests.test_processes import A, B, C, Network, network_factory, pg_databases

__all__ = ["network_factory", "pg_databases"]  # the fixtures, shared with test_processes

DEADLINE = 60.0
NOTARY = str(DEFAULT_NOTARY)


def until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    tick = threading.Event()
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, f"not within {deadline}s: {what}"
        tick.wait(0.05)


def flow(client: ManagementClient, name: str, **arguments: Any) -> Any:
    return client.start_flow(name, **arguments)["result"]


def status(client: ManagementClient, party: str, is_requester: bool = True) -> dict[str, Any] | None:
    result: dict[str, Any] | None = flow(
        client, "GetReconciliationStatusForPartyFlow", party=party, isRequester=is_requester
    )
    return result


def last(client: ManagementClient, party: str, is_requester: bool = True) -> str | None:
    found = status(client, party, is_requester)
    return None if found is None else str(found["lastReconciliationStatus"])


def reconciled(client: ManagementClient, *parties: str) -> dict[str, dict[str, Any]]:
    """Wait until no reconciliation with parties is scheduled; their requester statuses."""
    until(
        lambda: not any(flow(client, "IsReconciliationScheduledForPartyFlow", party=p) for p in parties),
        f"reconciliations with {parties} done",
    )
    done = {p: status(client, p) for p in parties}
    assert all(s is not None for s in done.values())
    return {p: s for p, s in done.items() if s is not None}


class Stores:
    """Cold backup and restore of one node's store, SQLite or PostgreSQL, as an operator does them."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.made: list[str] = []

    def _url(self, net: Network, name: str) -> str:
        node = next(n for n in net.layout.nodes if str(n.name) == name)
        config = open_node(node.config)
        config.close()
        return config.config.database_url

    def _sql(self, *statements: str) -> None:
        # Not `with connection:`, which would open a transaction CREATE DATABASE cannot run in.
        connection = psycopg2.connect(PG_ADMIN_URL)
        connection.autocommit = True
        try:
            with connection.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            connection.close()

    def backup(self, net: Network, name: str) -> None:
        url = self._url(net, name)
        process = net.processes[name]
        process.stop()
        if self.backend == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            backup_sqlite(path, path.with_suffix(".backup"))
        else:
            database = url.rsplit("/", 1)[1]
            self._sql(f'CREATE DATABASE "{database}_backup" TEMPLATE "{database}"')
            self.made.append(f"{database}_backup")
        process.start()
        process.wait_ready()

    def restore(self, net: Network, name: str) -> None:
        url = self._url(net, name)
        process = net.processes[name]
        process.stop()
        if self.backend == "sqlite":
            path = Path(url.removeprefix("sqlite:///"))
            backup_sqlite(path.with_suffix(".backup"), path)
        else:
            database = url.rsplit("/", 1)[1]
            self._sql(
                f'DROP DATABASE "{database}" WITH (FORCE)',
                f'CREATE DATABASE "{database}" TEMPLATE "{database}_backup"',
            )
        process.start()
        process.wait_ready()

    def drop(self) -> None:
        self._sql(*(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)' for database in self.made))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def started(
    backend: str, network_factory: Callable[..., Network], request: pytest.FixtureRequest
) -> Iterator[tuple[Network, Stores]]:
    url_for = request.getfixturevalue("pg_databases") if backend == "postgresql" else None
    stores = Stores(backend)
    try:
        yield network_factory(database_url_for=url_for), stores
    finally:
        stores.drop()


def test_a_node_restored_from_a_backup_finds_what_it_lost_with_each_peer(
    started: tuple[Network, Stores],
) -> None:
    net, stores = started
    a, b, c = net.client(A), net.client(B), net.client(C)
    t1 = a.issue([(A, 100), (B, 40)], "GBP", observers=[C])
    t2 = a.pay(B, 10, "GBP", A)
    stores.backup(net, A)
    t3 = b.pay(C, 20, "GBP", A)  # B and C only: A is not entitled to it
    t4 = a.pay(C, 30, "GBP", A, observers=[B])
    t5 = a.pay(B, 5, "GBP", A)
    assert all(a.transaction(t) is not None for t in (t1, t2, t4, t5)) and a.transaction(t3) is None
    stores.restore(net, A)
    assert all(a.transaction(t) is None for t in (t4, t5)) and a.transaction(t2) is not None

    for client in (a, b, c):
        state = client.wait_ledgersync_ready()
        assert state["ledgerGraphIsSelfConsistent"], state
    assert flow(a, "ScheduleReconciliationFlow", parties=[B, C]) is None
    done = reconciled(a, B, C)
    assert done[B]["lastReconciliationStatus"] == "DIFFERENCES_FOUND"
    assert set(done[B]["lastSuccessfulReconciliationResult"]) == {t4.upper(), t5.upper()}
    assert done[C]["lastReconciliationStatus"] == "DIFFERENCES_FOUND"
    assert set(done[C]["lastSuccessfulReconciliationResult"]) == {t4.upper()}
    assert done[B]["stateMachineRunId"] != done[C]["stateMachineRunId"]
    for peer in (b, c):
        (row,) = flow(peer, "GetReconciliationStatusesFlow", isRequester=False)
        assert row["partyName"] == A and row["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND"
    counts = a.ledgersync()
    assert counts["numberOfReconciliationsWithDifferences"] == 2
    assert counts["partiesWithDifference"] == sorted([B, C])
    assert counts["numberOfScheduledReconciliations"] == counts["numberOfReconciliationsInProgress"] == 0

    text = a.start_flow("GetReconciliationStatusForPartyFlow", party=B, isRequester=True)["text"]
    assert text.startswith("Flow completed with result: ReconciliationStatus(\n    partyName=")
    assert "lastReconciliationStatus=DIFFERENCES_FOUND" in text
    with pytest.raises(AgentProcessError, match="CannotReconcileWithSelfException"):
        flow(a, "ScheduleReconciliationFlow", parties=[A])

    # The same, as an operator types it.
    conf = next(n.config for n in net.layout.nodes if str(n.name) == A)
    shell = subprocess.run(
        [
            *(sys.executable, "-m", "agent", "flow", "start", "--config", str(conf)),
            *("GetReconciliationStatusForPartyFlow", f'party: "{B}", isRequester: true'),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout.startswith("Flow completed with result: ReconciliationStatus(")
    assert t5.upper() in shell.stdout


class Rogue:
    """The notary's identity speaking LedgerSync to a node over mutual TLS with the notary's own TLS
    certificate (as the notary's agent would), to hold its slots at will."""

    def __init__(self, net: Network) -> None:
        entry = next(n for n in net.layout.nodes if str(n.name) == NOTARY)
        node = open_node(entry.config)
        node.close()
        self.transport = member_transport(entry.config)
        authenticator = MessageAuthenticator(node.identity, node.key, node.network_map, SystemClock())
        self.client = PeerClient(authenticator, node.network_map, self.transport)
        self.sessions: dict[str, bytes] = {}

    def hold(self, node: str) -> None:
        reply = self.client.request(X500Name.parse(node), TOPIC_BEGIN, {"salt": bytes(16), "size": 0})
        self.sessions[node] = reply["session"]

    def release(self, node: str) -> None:
        self.client.request(
            X500Name.parse(node), TOPIC_END, {"session": self.sessions.pop(node), "missing": None}
        )

    def close(self) -> None:
        self.transport.close()


def configure(net: Network, name: str, text: str) -> None:
    node = next(n for n in net.layout.nodes if str(n.name) == name)
    (node.folder / "ledgersync.conf").write_text(text)
    process = net.processes[name]
    process.stop()
    process.start()
    process.wait_ready()


def test_limits_between_processes(started: tuple[Network, Stores]) -> None:
    net, _ = started
    a, b, c = net.client(A), net.client(B), net.client(C)
    a.issue([(A, 100), (B, 40), (C, 10)], "GBP")
    configure(
        net,
        B,
        "maxNumberOfParallelReconciliationRequests = 1\nmaxAllowedReconciliationRequestsPerTimeWindow = 4\n",
    )
    configure(net, A, "maxReconciliationRetryAttemptTimeout = 3S\n")
    configure(net, C, 'maxReconciliationRetryAttemptTimeout = "1M"\n')
    for client in (a, b, c):
        client.wait_ledgersync_ready()
    rogue = Rogue(net)
    try:
        # Malformed messages end that session FAILED, and the responder goes on.
        with pytest.raises(PeerRequestError, match=r"ReconciliationCodecError.*salt"):
            rogue.client.request(X500Name.parse(B), TOPIC_BEGIN, {"salt": b"x", "size": 0})
        assert last(b, NOTARY, is_requester=False) == "FAILED"

        # More requesters than slots: the rogue holds B's only slot, A and C are refused and retry.
        rogue.hold(B)
        assert flow(b, "IsRespondingToReconciliationForPartyFlow", party=NOTARY) is True
        flow(a, "ScheduleReconciliationFlow", parties=[B])
        flow(c, "ScheduleReconciliationFlow", parties=[B])
        until(lambda: last(c, B) == "IN_PROGRESS", "C's reconciliation with B is under way")
        a_gave_up = reconciled(a, B)[B]  # A's timeout is 3 seconds
        assert a_gave_up["lastReconciliationStatus"] == "FAILED"
        assert a_gave_up["lastReconciliationError"].startswith("MaxIncomingSessionsExceededException: ")
        assert "gave up after" in a_gave_up["lastReconciliationError"]
        assert last(c, B) == "IN_PROGRESS"  # C's timeout is a minute: it is still asking
        assert c.ledgersync()["numberOfReconciliationsInProgress"] == 1

        # A restart with C's job under way: the job survives and runs again, and a slot frees.
        net.processes[C].stop()
        net.processes[C].start()
        net.processes[C].wait_ready()
        assert flow(c, "IsReconciliationScheduledForPartyFlow", party=B) is True
        rogue.release(B)
        assert reconciled(c, B)[B]["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND"

        # killFlow, then the one-step stop, on reconciliations waiting for a busy responder.
        rogue.hold(B)
        flow(c, "ScheduleReconciliationFlow", parties=[B])
        until(lambda: last(c, B) == "IN_PROGRESS", "C asks B again")
        running = status(c, B)
        assert running is not None
        assert c.kill_flow(running["stateMachineRunId"]) is True
        killed = reconciled(c, B)[B]
        assert killed["lastReconciliationStatus"] == "FAILED"
        assert killed["lastReconciliationError"].startswith("KilledFlowException: ")
        flow(c, "ScheduleReconciliationFlow", parties=[B])
        until(lambda: last(c, B) == "IN_PROGRESS", "C asks B once more")
        assert flow(c, "StopReconciliationForPartyFlow", party=B) is None
        assert last(c, B) == "STOPPED"
        assert flow(c, "IsReconciliationScheduledForPartyFlow", party=B) is False
        rogue.release(B)

        # The rate limit: B allows A four requests in the window; A's refused ones did not count.
        for _ in range(4):
            result = flow(a, "ReconcileWithPartyFlow", party=B)
            assert result["missingHere"] == []
        with pytest.raises(AgentProcessError, match="ReconciliationRateLimitExceededException"):
            flow(a, "ReconcileWithPartyFlow", party=B)
        net.processes[B].stop()  # the window is kept over B's restart
        net.processes[B].start()
        net.processes[B].wait_ready()
        b.wait_ledgersync_ready()
        with pytest.raises(AgentProcessError, match="ReconciliationRateLimitExceededException"):
            flow(a, "ReconcileWithPartyFlow", party=B)
    finally:
        rogue.close()


def test_a_responder_killed_mid_session_blocks_nothing_once_restarted(
    network_factory: Callable[..., Network],
) -> None:
    from tests.test_processes import CRASHED, _drop_faults

    # B's agent dies right after it admitted A's session and marked it IN_PROGRESS.
    net = network_factory(faults={B: ["ReconcileWithPartyResponderFlow.IN_PROGRESS=crash"]})
    a, b = net.client(A), net.client(B)
    a.issue([(A, 100), (B, 40)], "GBP")
    for client in (a, b):
        client.wait_ledgersync_ready()
    flow(a, "ScheduleReconciliationFlow", parties=[B])
    assert net.processes[B].wait_exit(DEADLINE) == CRASHED
    # A does not give up on a peer that went away: it asks again on its back-off, for as long as
    # maxReconciliationRetryAttemptTimeout says (an hour by default).
    assert flow(a, "IsReconciliationScheduledForPartyFlow", party=B)
    assert last(a, B) == "IN_PROGRESS"

    _drop_faults(net, B)
    net.processes[B].start()
    net.processes[B].wait_ready()
    b.wait_ledgersync_ready()
    # A's next attempt is served: the session B lost when it died blocks nothing on either side.
    row = reconciled(a, B)[B]
    assert row["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND", row["lastReconciliationError"]
    until(
        lambda: last(b, A, is_requester=False) != "IN_PROGRESS", "B's responder row is no longer IN_PROGRESS"
    )
    # Neither direction is refused as "already scheduled" any more.
    flow(b, "ScheduleReconciliationFlow", parties=[A])
    assert reconciled(b, A)[A]["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND"
    flow(a, "ScheduleReconciliationFlow", parties=[B])
    assert reconciled(a, B)[B]["lastReconciliationStatus"] == "DIFFERENCES_NOT_FOUND"
    assert b.ledgersync()["numberOfReconciliationsInProgress"] == 0

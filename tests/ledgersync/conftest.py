"""The LedgerSync tests' network: real runtimes on the in-process network, and a node restored from backup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.clock import Clock
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.idset import IdSet
from agent.ledgersync.protocol import LedgerSyncService
from agent.ledgersync.scheduler import ReconciliationScheduler
from agent.network.bootstrap import DEFAULT_NOTARY, NetworkLayout, default_node_names, init_network
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.runtime import AgentRuntime, build_runtime
from agent.store.database import backup_sqlite

A, B, C = default_node_names(3)


class Net:
    def __init__(self, layout: NetworkLayout) -> None:
        self.layout = layout
        self.network = InProcessNetwork()
        self.runtimes: dict[X500Name, AgentRuntime] = {}

    def __getitem__(self, name: X500Name) -> AgentRuntime:
        return self.runtimes[name]

    def sync(self, name: X500Name) -> LedgerSyncService:
        sync = self.runtimes[name].ledgersync
        assert sync is not None
        return sync.service

    def scheduler(self, name: X500Name) -> ReconciliationScheduler:
        sync = self.runtimes[name].ledgersync
        assert sync is not None
        return sync.scheduler

    def entry(self, name: X500Name) -> Any:
        return next(e for e in self.layout.nodes if e.name == name)

    def start(
        self, name: X500Name, clock: Clock | None = None, config: LedgerSyncConfig | None = None
    ) -> None:
        entry = self.entry(name)
        # Few, short retries: an unreachable peer fails a reconciliation in well under a second.
        retry = RetryPolicy(max_attempts=2, base_delay=0.01)
        runtime = build_runtime(
            open_node(entry.config, clock=clock),
            InProcessTransport(self.network),
            retry=retry,
            ledgersync=True,
            ledgersync_config=config,
        )
        self.network.attach(entry.p2p_address, runtime.peer_service)
        self.runtimes[name] = runtime

    def restart(
        self, name: X500Name, clock: Clock | None = None, config: LedgerSyncConfig | None = None
    ) -> None:
        """Stop the node's runtime and start a new one over the same store (its flows resume)."""
        self.runtimes.pop(name).stop(5)
        self.network.detach(self.entry(name).p2p_address)
        self.start(name, clock, config)

    def db(self, name: X500Name) -> Path:
        return Path(self.runtimes[name].node.config.database_url.removeprefix("sqlite:///"))

    def backup(self, name: X500Name, to: Path) -> None:
        """A consistent copy of the live SQLite file (WAL included), as a backup tool takes it."""
        backup_sqlite(self.db(name), to)

    def restore(self, name: X500Name, backup: Path) -> None:
        """Stop the node, put the old file back, start a new runtime on it.

        Copied back through SQLite rather than over the file: a connection the stopped runtime left
        open in another thread would otherwise checkpoint its WAL over the restored pages.
        """
        db = self.db(name)
        self.runtimes.pop(name).stop(5)
        self.network.detach(self.entry(name).p2p_address)
        backup_sqlite(backup, db)
        self.start(name)

    def ids(self, name: X500Name) -> set[SecureHash]:
        # Through IdSet: bytes() of a numpy row of dtype S32 would drop an id's trailing zero bytes.
        return {SecureHash(i) for i in IdSet(self.sync(name).graph.arrays()["ids"])}

    def expected(self, requester: X500Name, peer: X500Name) -> set[SecureHash]:
        """What the peer has for the pair that the requester lacks."""
        theirs = {SecureHash(i) for i in self.sync(peer).pair_set(requester)}
        return theirs - self.ids(requester)

    def stop(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop(5)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    layout = init_network(tmp_path / "net", [A, B, C], DEFAULT_NOTARY)
    started = Net(layout)
    try:
        for entry in layout.nodes:
            started.start(entry.name)
        yield started
    finally:
        started.stop()


@pytest.fixture
def restored(net: Net, tmp_path: Path) -> tuple[Net, dict[str, SecureHash]]:
    """Three parties trade; A is restored from a backup taken before the last three transactions."""
    t1 = net[A].tokens.issue([(A, 100), (B, 40)], "GBP", observers=(C,))
    t2 = net[A].tokens.pay(B, 10, "GBP", A)
    net.backup(A, tmp_path / "a-backup.db")
    t3 = net[B].tokens.pay(C, 20, "GBP", A)  # B and C only
    t4 = net[A].tokens.pay(C, 30, "GBP", A, observers=[B])
    t5 = net[A].tokens.pay(B, 5, "GBP", A)
    net.restore(A, tmp_path / "a-backup.db")
    txs = {"t1": t1.id, "t2": t2.id, "t3": t3.id, "t4": t4.id, "t5": t5.id}
    assert net.ids(A) >= {t1.id, t2.id} and not net.ids(A) & {t3.id, t4.id, t5.id}
    return net, txs

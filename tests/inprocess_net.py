"""A network of real node runtimes on the in-process transport, each node started, stopped and
restored from a copy of its SQLite store by name (the finality and Ledger Recovery tests share it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.ledger.identity import X500Name
from agent.network.bootstrap import DEFAULT_NOTARY, NetworkLayout
from agent.node import open_node
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.runtime import AgentRuntime, build_runtime
from agent.store.database import backup_sqlite


@dataclass
class InProcessNet:
    layout: NetworkLayout
    network: InProcessNetwork
    runtimes: dict[X500Name, AgentRuntime] = field(default_factory=dict)
    ledgersync: bool = False  # LedgerSync on every node but the notary

    def __getitem__(self, name: X500Name) -> AgentRuntime:
        return self.runtimes[name]

    def start(self, name: X500Name) -> AgentRuntime:
        entry = next(e for e in self.layout.nodes if e.name == name)
        runtime = build_runtime(
            open_node(entry.config),
            InProcessTransport(self.network),
            ledgersync=self.ledgersync and name != DEFAULT_NOTARY,
        )
        self.network.attach(entry.p2p_address, runtime.peer_service)
        self.runtimes[name] = runtime
        return runtime

    def stop(self, name: X500Name) -> Path:
        """Stop a node (its address goes down); its SQLite file."""
        entry = next(e for e in self.layout.nodes if e.name == name)
        self.network.detach(entry.p2p_address)
        runtime = self.runtimes.pop(name)
        runtime.stop(5)
        return Path(runtime.node.config.database_url.removeprefix("sqlite:///"))

    def db(self, name: X500Name) -> Path:
        return Path(self[name].node.config.database_url.removeprefix("sqlite:///"))

    def restore(self, name: X500Name, backup: Path) -> None:
        """The disaster: the node stopped, its store replaced by the copy, started again."""
        backup_sqlite(backup, self.stop(name))
        self.start(name)

    def stop_all(self) -> None:
        for runtime in self.runtimes.values():
            runtime.stop(5)


def start_runtimes(layout: NetworkLayout, network: InProcessNetwork) -> dict[X500Name, AgentRuntime]:
    """A runtime per node of the layout, each attached to the in-process network at its p2p address."""
    runtimes = {}
    for entry in layout.nodes:
        runtime = build_runtime(open_node(entry.config), InProcessTransport(network))
        network.attach(entry.p2p_address, runtime.peer_service)
        runtimes[entry.name] = runtime
    return runtimes

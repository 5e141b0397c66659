"""The composition root: from a node.conf to a whole agent, every part built here and nowhere else.

    build_agent(config)  node.conf -> Node (agent.node: identity checked, store, ledger, notary)
                         -> AgentRuntime (agent.runtime: peer service and client, flow engine,
                            finality, tokens, LedgerSync) around an HTTP transport
                         -> the peer app (agent.p2p.http) and the management app (agent.management.app)

`Agent.start()` starts LedgerSync and resumes the flows a stop cut off; `Agent.stop()` lets the flows
under way finish and closes the store and the transport. agent.process serves the two apps and
does nothing else. Simulations and tests build the same runtime around an in-process transport:
`build_runtime(open_node(config), InProcessTransport(network))`, or `build_agent(config,
transport=...)` when they want the apps too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from agent.clock import Clock
from agent.ledgersync.config import load_ledgersync_config
from agent.management.app import create_management_app
from agent.node import Node, open_node
from agent.p2p.client import RawTransport
from agent.p2p.http import HttpTransport, create_peer_app, tls_transport
from agent.runtime import AgentRuntime, build_runtime

log = logging.getLogger("ledger_agent.composition")


@dataclass
class Agent:
    """One node's agent, wired: its runtime and the two WSGI apps that serve it."""

    runtime: AgentRuntime
    peer_app: Flask
    management_app: Flask
    close_transport: Callable[[], None]

    @property
    def node(self) -> Node:
        return self.runtime.node

    def start(self) -> None:
        """LedgerSync's graph starts building and interrupted flows go on; the apps may serve at once."""
        self.runtime.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Flows finish their step (each keeps its checkpoint), then the store and transport close."""
        try:
            self.runtime.stop(timeout)
        finally:
            self.close_transport()


def build_agent(
    config_path: Path,
    *,
    transport: RawTransport | None = None,
    clock: Clock | None = None,
    ledgersync_background: bool = True,
) -> Agent:
    """The agent of the node whose node.conf is config_path, built but not started.

    Without transport, peers are reached over HTTP (a real agent); with one (in-process, for
    simulations) the caller owns it.
    """
    node = open_node(config_path, clock=clock)
    config = node.config
    close_transport: Callable[[], None] = lambda: None  # noqa: E731  # the caller's transport stays open
    try:
        # Read before anything starts: a bad LedgerSync setting stops the build with the key named.
        sync_config = (
            load_ledgersync_config(config.ledgersync_config_file) if config.ledgersync_enabled else None
        )
        if transport is None:
            http = _peer_transport(node)
            transport, close_transport = http, http.close
        runtime = build_runtime(
            node,
            transport,
            ledgersync=config.ledgersync_enabled,
            ledgersync_config=sync_config,
            ledgersync_background=ledgersync_background,
            start=False,
        )
        return Agent(
            runtime,
            create_peer_app(runtime.peer_service, runtime.max_message_size),
            create_management_app(runtime),
            close_transport,
        )
    except BaseException:
        close_transport()
        node.close()
        raise


def _peer_transport(node: Node) -> HttpTransport:
    """HTTP to peers: over mutual TLS unless node.conf says p2pTls = false."""
    config = node.config
    return tls_transport(config.p2p_tls_files, node.network_map) if config.p2p_tls else HttpTransport()

"""The operator tools' one door to the server: agent.entrypoints, imported by name when a command needs it.

Nothing else in agent.client imports server code (tests/client/test_imports.py checks), so `check`,
`shell`, `flow` and `--help` start without the store, the PKI or LedgerSync. The door is imported
through importlib, not an import statement, so that no static import joins the two sides either.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from agent.operator_api.layout import CreatedNetwork, InspectedNetwork

SERVER_ENTRY_POINTS = "agent.entrypoints"


class EntryPoints(Protocol):
    """What agent.entrypoints offers (a test checks the module matches)."""

    def run_agent(self, config: Path) -> int: ...

    def init_network(self, directory: Path, nodes: int, base_port: int) -> CreatedNetwork: ...

    def print_vault(self, config: Path, out: Callable[[str], None]) -> None: ...

    def inspect_network(self, directory: Path) -> InspectedNetwork: ...


def entry_points() -> EntryPoints:
    return cast(EntryPoints, importlib.import_module(SERVER_ENTRY_POINTS))


@dataclass(frozen=True)
class NodeEntry:
    """One node of a network `network init` made."""

    name: str
    role: str
    folder: Path
    config: Path
    p2p_address: str
    management_address: str


@dataclass(frozen=True)
class Network:
    directory: Path
    nodes: tuple[NodeEntry, ...]  # the notary first


def init_network(directory: Path, nodes: int, base_port: int) -> Network:
    """`network init`: a local network of nodes (PartyA, ...) and a notary; refuses to overwrite one."""
    made = entry_points().init_network(directory, nodes, base_port)
    return Network(
        Path(made["directory"]),
        tuple(
            NodeEntry(
                name=n["name"],
                role=n["role"],
                folder=Path(n["folder"]),
                config=Path(n["config"]),
                p2p_address=n["p2p_address"],
                management_address=n["management_address"],
            )
            for n in made["nodes"]
        ),
    )

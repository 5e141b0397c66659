"""The server's entry points for the operator tools: the one agent module agent.client may reach.

agent.client.server imports this module by name, and only when a command needs the server:

    run_agent(config) -> exit code                   `ledger-agent run`
    init_network(directory, nodes, base_port)        `ledger-agent network init`, and the demo's network
    print_vault(config, out)                         `ledger-agent vault`: a node's vault from its store
    inspect_network(directory)                       `ledger-agent network inspect`: members, checked

Arguments and results are plain data (agent.operator_api.layout's), so the tools need none of the
server's types. Each function imports what it needs when called: `run` keeps the start-up it had.

`network init` is here, not with the tools: it writes what the agent reads (node.conf in the keys
agent.config checks, keys and certificates in agent.network.pki's layout, the map signed as
agent.network.network_map verifies it) and needs the PKI and cryptography to do it. Those formats
change with the server, so the code that writes them lives beside the code that reads them; the
tools only read what it leaves for them (the management address and password files).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.operator_api.layout import CreatedNetwork, InspectedNetwork


def run_agent(config: Path) -> int:
    """Run one node's agent until SIGTERM; the process's exit code."""
    from agent.process import run_agent as run

    return run(config)


def init_network(directory: Path, nodes: int, base_port: int) -> CreatedNetwork:
    """A local network of `nodes` nodes (PartyA, PartyB, ...) and a notary under directory."""
    from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names
    from agent.network.bootstrap import init_network as init

    layout = init(directory, default_node_names(nodes), DEFAULT_NOTARY, base_port=base_port)
    return {
        "directory": str(layout.directory),
        "nodes": [
            {
                "name": str(node.name),
                "role": node.role,
                "folder": str(node.folder),
                "config": str(node.config),
                "p2p_address": node.p2p_address,
                "management_address": node.management_address,
            }
            for node in layout.nodes
        ],
    }


def inspect_network(directory: Path) -> InspectedNetwork:
    """The network map's members in directory with their folders, every certificate checked."""
    from agent.network.inspect import inspect_network as inspect

    return inspect(directory)


def print_vault(config: Path, out: Callable[[str], None]) -> None:
    """A node's vault read straight from its store (the agent need not run)."""
    from agent.ledger import token
    from agent.ledger.vault import RelevancyStatus, TransactionStatus
    from agent.node import open_node

    node = open_node(config)
    try:
        transactions, vault = node.store.transactions, node.store.vault
        out(
            f"\n{node.identity.name}  ({transactions.count_transactions(TransactionStatus.VERIFIED)} "
            f"transactions, {vault.count_vault_states(relevancy=RelevancyStatus.RELEVANT)} own unconsumed "
            f"states, {vault.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT)} observed)"
        )
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for rec in vault.iter_vault_states(contract=token.TOKEN_CONTRACT):
            held = token.Token.from_state(rec.state)
            key = (held.currency, str(held.issuer.name))
            amount, count = totals.get(key, (0, 0))
            totals[key] = (amount + held.amount, count + 1)
        if not totals:
            out("    (empty)")
        for (currency, issuer), (amount, count) in sorted(totals.items()):
            out(f"    {currency} {amount:>8}  in {count:>3} states, issued by {issuer}")
    finally:
        node.close()

"""The `ledger-agent` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent import __version__
from agent.errors import AgentError


def _network_init(args: argparse.Namespace) -> int:
    from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network

    layout = init_network(args.dir, default_node_names(args.nodes), DEFAULT_NOTARY, base_port=args.base_port)
    print(f"network created in {layout.directory}")
    for node in layout.nodes:
        print(f"  {node.role:<7} {node.name}  p2p {node.p2p_address}  config {node.config}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from agent.demo import run_demo

    result = run_demo(args.dir, moves=args.moves, seed=args.seed, keep_running=args.keep_running)
    return 0 if result.ok else 1


def _run(args: argparse.Namespace) -> int:
    from agent.process import run_agent

    return run_agent(args.config)


def _vault(args: argparse.Namespace) -> int:
    from agent.demo import print_vault
    from agent.node import open_node

    node = open_node(args.config)
    try:
        print_vault(node, print)
    finally:
        node.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger-agent", description="Recovery and reconciliation sidecar for Corda-style ledger nodes."
    )
    parser.add_argument("--version", action="version", version=f"ledger-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    network = commands.add_parser("network", help="create and inspect local networks")
    network_commands = network.add_subparsers(dest="network_command", required=True, metavar="SUBCOMMAND")
    init = network_commands.add_parser(
        "init", help="create a folder for a local network of N nodes and a notary"
    )
    init.add_argument("--dir", type=Path, required=True, help="folder to create (must not hold a network)")
    init.add_argument(
        "--nodes", type=int, default=3, help="number of nodes besides the notary (1-26, default 3)"
    )
    init.add_argument(
        "--base-port", type=int, default=10000, help="first port; each node takes two (default 10000)"
    )
    init.set_defaults(handler=_network_init)

    run = commands.add_parser("run", help="run one node's agent (peer and management endpoints)")
    run.add_argument("--config", type=Path, required=True, help="the node's node.conf")
    run.set_defaults(handler=_run)

    demo = commands.add_parser("demo", help="run a local network of agent processes doing real work")
    demo.add_argument("--dir", type=Path, default=None, help="create the network in this new folder")
    demo.add_argument("--moves", type=int, default=30, help="random payments to make (default 30)")
    demo.add_argument("--seed", type=int, default=7, help="seed of the workload (default 7)")
    demo.add_argument(
        "--keep-running", action="store_true", help="leave the network up and print its endpoints"
    )
    demo.set_defaults(handler=_demo)

    vault = commands.add_parser("vault", help="print a node's vault")
    vault.add_argument("--config", type=Path, required=True, help="the node's node.conf")
    vault.set_defaults(handler=_vault)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (AgentError, FileExistsError) as exc:
        print(f"ledger-agent: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

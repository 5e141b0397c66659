"""The `ledger-agent` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.client.arguments import parse_flow_arguments
from agent.errors import AgentError, ConfigurationError

if TYPE_CHECKING:
    from agent.client.launcher import ManagementClient

PASSWORD_ENV = "LEDGER_AGENT_PASSWORD"  # the management password, when not read from the node folder


def _network_init(args: argparse.Namespace) -> int:
    from agent.client.server import init_network

    layout = init_network(args.dir, args.nodes, args.base_port)
    print(f"network created in {layout.directory}")
    for node in layout.nodes:
        print(f"  {node.role:<7} {node.name}  p2p {node.p2p_address}  config {node.config}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from agent.client.demo import run_demo

    result = run_demo(args.dir, moves=args.moves, seed=args.seed, keep_running=args.keep_running)
    return 0 if result.ok else 1


def _run(args: argparse.Namespace) -> int:
    _no_postgres_driver_on_sqlite(args.config)
    from agent.client.server import entry_points

    return entry_points().run_agent(args.config)


def _no_postgres_driver_on_sqlite(config: Path) -> None:
    """Keep an SQLite node from loading the PostgreSQL driver: 10 MB of its RSS, for nothing.

    peewee imports psycopg2 whenever it is installed; a None in sys.modules makes that import fail
    as if it were not, so peewee goes on without it. Only the data source URL is read here, before
    anything imports peewee; a file the real loader would refuse is left for it to name the error.
    """
    from agent.client.nodeconf import DATA_SOURCE_URL

    try:
        from pyhocon import ConfigFactory

        url = ConfigFactory.parse_file(str(config)).get_string(DATA_SOURCE_URL, "sqlite:")
    except Exception:
        return
    if url.startswith("sqlite:"):
        sys.modules.setdefault("psycopg2", None)  # type: ignore[arg-type]


def _vault(args: argparse.Namespace) -> int:
    from agent.client.server import entry_points

    entry_points().print_vault(args.config, print)
    return 0


def _management(config_path: Path, user: str) -> ManagementClient:
    """A client of the node's management endpoint; the password from the environment or the node folder."""
    from agent.client.launcher import ManagementClient, read_password
    from agent.client.nodeconf import read_node_conf

    config = read_node_conf(config_path)
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        try:
            password = read_password(config.base_directory)
        except OSError as exc:
            raise ConfigurationError(
                PASSWORD_ENV,
                None,
                f"set it, or keep the password in {config.base_directory}/management-password",
            ) from exc
    host, port = config.management_address
    return ManagementClient(f"{host}:{port}", user, password)


def _flow_start(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    try:
        reply = client.start_flow(args.name, **parse_flow_arguments(args.arguments))
    finally:
        client.close()
    print(reply["text"])
    return 0


def _flow_kill(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    try:
        killed = client.kill_flow(args.id)
    finally:
        client.close()
    print(f"Killed flow [{args.id}]" if killed else f"Failed to kill flow [{args.id}]: no such flow running")
    return 0 if killed else 1


def _flow_verb(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    try:
        done = client.pause_flow(args.id) if args.flow_command == "pause" else client.resume_flow(args.id)
    finally:
        client.close()
    verb = "Paused" if args.flow_command == "pause" else "Resumed"
    state = "RUNNABLE or HOSPITALIZED" if args.flow_command == "pause" else "PAUSED"
    print(
        f"{verb} flow [{args.id}]"
        if done
        else f"Failed to {args.flow_command} flow [{args.id}]: it is not {state}"
    )
    return 0 if done else 1


FLOW_COLUMNS = ("flowId", "flowName", "status", "step", "waitingFor", "txId")


def _flow_list(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    filters = {k: v for k, v in (("flowName", args.flow_name), ("step", args.step)) if v}
    if args.counterparty:
        filters["counterparty"] = args.counterparty
    try:
        flows = client.flows(args.status, **filters)
    finally:
        client.close()
    rows = [[str(f.get(c) or "") for c in FLOW_COLUMNS] for f in flows]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(FLOW_COLUMNS)]
    for row in [list(FLOW_COLUMNS), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _shell(args: argparse.Namespace) -> int:
    from agent.client.shell import run_shell

    return run_shell(args.config, args.url, args.user)


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

    flow = commands.add_parser(
        "flow", help="start, list, kill, pause or resume flows on a running agent, as the Corda shell does"
    )
    flow_commands = flow.add_subparsers(dest="flow_command", required=True, metavar="SUBCOMMAND")
    start = flow_commands.add_parser(
        "start",
        help="start a flow by name",
        description="Example: ledger-agent flow start --config node.conf GetReconciliationStatusForPartyFlow "
        "'party: \"O=PartyB, L=New York, C=US\", isRequester: true'  (quote the arguments as one word "
        "so the shell keeps the double quotes around names with commas)",
    )
    kill = flow_commands.add_parser("kill", help="kill a running flow by its id (killFlow)")
    pause = flow_commands.add_parser("pause", help="pause a RUNNABLE or HOSPITALIZED flow between two steps")
    resume = flow_commands.add_parser("resume", help="resume a PAUSED flow from its checkpoint")
    listing = flow_commands.add_parser("list", help="the node's flows (checkpoints), oldest first")
    for sub in (start, kill, pause, resume, listing):
        sub.add_argument("--config", type=Path, required=True, help="the node's node.conf")
        sub.add_argument("--user", default="operator", help="management user (default operator)")
    start.add_argument("name", help="the flow, e.g. ScheduleReconciliationFlow")
    start.add_argument(
        "arguments", nargs=argparse.REMAINDER, help='name: value, ... (e.g. parties: ["O=..."])'
    )
    start.set_defaults(handler=_flow_start)
    kill.add_argument("id", help="the flow's id (stateMachineRunId)")
    kill.set_defaults(handler=_flow_kill)
    for sub in (pause, resume):
        sub.add_argument("id", help="the flow's id (stateMachineRunId)")
        sub.set_defaults(handler=_flow_verb)
    listing.add_argument("--status", help="RUNNABLE, FAILED, COMPLETED, HOSPITALIZED, KILLED or PAUSED")
    listing.add_argument("--flow-name", help="e.g. FinalityFlow")
    listing.add_argument("--step", help="the step it reached, e.g. RECORDED")
    listing.add_argument("--counterparty", help="an X.500 name")
    listing.set_defaults(handler=_flow_list)

    shell = commands.add_parser(
        "shell", help="the Corda shell's flow and run commands against a running agent (JSON-RPC)"
    )
    shell.add_argument("--config", type=Path, help="the node's node.conf (address, management-password)")
    shell.add_argument("--url", help="the management URL, when not node.conf's managementAddress")
    shell.add_argument("--user", default="operator", help="management user (default operator)")
    shell.set_defaults(handler=_shell)
    # Parsed by agent.client.check itself (see main): bad arguments must exit 3 (UNKNOWN), not argparse's 2.
    commands.add_parser(
        "check", add_help=False, help="monitoring plugin (Nagios/Icinga): ledger-agent check --help"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["check"]:
        from agent.client.check import main as check

        return check(words[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (AgentError, FileExistsError) as exc:
        print(f"ledger-agent: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # httpx's errors are not OSErrors; see below
        print(f"ledger-agent: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import httpx

        if not isinstance(exc, httpx.HTTPError):
            raise
        print(f"ledger-agent: error: the agent's management endpoint did not answer: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

"""The `ledger-agent` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.client.arguments import parse_flow_arguments
from agent.errors import AgentError, ConfigurationError

if TYPE_CHECKING:
    from agent.client.launcher import ManagementClient

PASSWORD_ENV = "LEDGER_AGENT_PASSWORD"  # the management password, when not read from the node folder


def _network_init(args: argparse.Namespace) -> int:
    from agent.client.server import init_network

    layout = init_network(args.dir, args.nodes, args.base_port)
    from agent.client.nodeconf import read_node_conf

    print(f"network created in {layout.directory}")
    for node in layout.nodes:
        print(
            f"  {node.role:<7} {node.name}  p2p {node.p2p_address}  "
            f"management {read_node_conf(node.config).management_url}  config {node.config}"
        )
    print("agents talk over mutual TLS; management clients trust <node>/certificates/network-root.pem")
    return 0


def _network_inspect(args: argparse.Namespace) -> int:
    from agent.client.network_inspect import inspect_text, problems
    from agent.client.server import entry_points

    network = entry_points().inspect_network(args.dir)
    if args.json:
        _print_json(network)
    else:
        print(inspect_text(network))
    return 1 if problems(network) else 0


def _demo(args: argparse.Namespace) -> int:
    from agent.client.demo import run_demo
    from agent.client.progress import Progress, wanted

    with Progress("demo", None, enabled=wanted(args.progress)) as progress:
        result = run_demo(
            args.dir, moves=args.moves, seed=args.seed, keep_running=args.keep_running, progress=progress
        )
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
    """A client of the node's management endpoint; the password from the environment or the node folder
    (`monitor-password` for the read-only monitor, `management-password` for anyone else)."""
    from agent.client.launcher import ManagementClient
    from agent.client.nodeconf import read_node_conf
    from agent.operator_api.layout import MONITOR_PASSWORD_FILE, MONITOR_USER, PASSWORD_FILE

    config = read_node_conf(config_path)
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        file = config.base_directory / (MONITOR_PASSWORD_FILE if user == MONITOR_USER else PASSWORD_FILE)
        try:
            password = file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(PASSWORD_ENV, None, f"set it, or keep the password in {file}") from exc
    return ManagementClient(config.management_netloc, user, password, tool="cli", ca_file=config.ca_file)


def _flow_start(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    try:
        reply = client.start_flow(args.name, **parse_flow_arguments(args.arguments))
    finally:
        client.close()
    if "text" not in reply:  # 202: accepted, still running (waiting, or kept in the hospital)
        print(f"Not finished yet: {reply.get('message')}")
        print(f"Follow it with: ledger-agent flow list --config {args.config} (or flow hospital)")
        return 0
    print(reply["text"])
    return 0


# -- Ledger Recovery (docs/ledger-recovery.md) -------------------------------------------------------

RECOVERY_ROLES = ("ALL", "INITIATOR", "PEER", "OBSERVER", "PEER_AND_OBSERVER")
APPLY_WAIT_S = 2.0  # --apply: how long the start waits for the flow before following it
PIPE_LINE_S = 5.0  # with stderr not a terminal: a progress line this often


def _recover_body(args: argparse.Namespace) -> dict[str, Any]:
    """`ledger-agent recover`'s options as LedgerRecoveryFlow's parameters (recover's defaults on the
    agent: reconcile first, the whole history without --from)."""
    body: dict[str, Any] = {"dryRun": not args.apply}
    if args.all_network_nodes:
        body["useAllNetworkNodes"] = True
    else:
        body["recoveryPeers"] = args.peer
    window = {"fromTime": args.from_time, "untilTime": args.until_time}
    if args.from_time or args.until_time:
        body["timeWindow"] = {k: v for k, v in window.items() if v is not None}
    optional = {
        "transactionRole": args.role,
        "optimisticInitiatorRecovery": args.optimistic_initiator_recovery or None,
        "alsoFinalize": args.also_finalize or None,
        "recoveryBatchSize": args.batch_size,
        "reason": args.reason,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def _recover(args: argparse.Namespace) -> int:
    from agent.client import recovery_report as report

    client = _management(args.config, args.user)
    try:
        if args.results:
            answer = client.call("GET", f"/api/recovery/results/{args.results}")
            if args.json:
                _print_json(answer)
            else:
                print(report.results_text(args.results, answer["results"]))
            return 1 if report.failures(answer["results"]) else 0
        body = _recover_body(args)
        wait = APPLY_WAIT_S if args.apply else min(args.timeout, 3600.0)
        client.timeout = wait + 30.0  # longer than the flow's own wait, so that its answer arrives
        summary = client.call("POST", "/api/recovery/recover", {**body, "timeout": wait})
        if "totalErrors" not in summary:  # 202: still running
            if not args.apply:
                print(f"The dry run goes on as flow {summary['flowId']}: {summary.get('message')}")
                return 1
            summary = _follow_recovery(client, summary["flowId"], args.timeout, args.progress)
            if summary is None:
                return 1
    finally:
        client.close()
    if args.json:
        _print_json(summary)
    elif summary["dryRun"]:
        print(report.plan_text(summary))
    else:
        print(report.totals_text(summary))
    return 0 if summary["totalErrors"] == 0 else 1


def _follow_recovery(
    client: ManagementClient, flow_id: str, timeout: float, show: bool | None = None
) -> dict[str, Any] | None:
    """Follow a LedgerRecoveryFlow to its end with a progress bar on stderr (a line every 5 s when
    stderr is not a terminal; none with --no-progress); its totals from its results (None if it did
    not complete)."""
    import time

    from agent.client import recovery_report as report

    tty = sys.stderr.isatty() and show is not False
    deadline = time.monotonic() + timeout
    printed_at = 0.0
    status, step = "RUNNABLE", None
    while True:
        flows = client.call("GET", "/api/flows?flowName=LedgerRecoveryFlow")
        mine = next((f for f in flows if f["flowId"] == flow_id), None)
        status, step = (mine["status"], mine["step"]) if mine else ("COMPLETED", "DONE")
        bar = report.progress_bar(client.call("GET", "/api/recovery/progress"), step)
        now = time.monotonic()
        if tty:
            print("\r" + bar, end="", file=sys.stderr, flush=True)
        elif show is not False and (now - printed_at >= PIPE_LINE_S or status != "RUNNABLE"):
            print(bar, file=sys.stderr, flush=True)
            printed_at = now
        if status != "RUNNABLE" or now > deadline:
            break
        time.sleep(0.5)
    if tty:
        print(file=sys.stderr)
    if status != "COMPLETED":
        what = "still running" if status == "RUNNABLE" else status
        print(
            f"LedgerRecoveryFlow [{flow_id}] {what} (at {step}); see ledger-agent flow list, flow hospital, "
            f"and ledger-agent recover --results {flow_id}",
            file=sys.stderr,
        )
        return None
    results = client.call("GET", f"/api/recovery/results/{flow_id}")["results"]
    return {
        "flowId": flow_id,
        "dryRun": False,
        "totalRecoveredTransactions": sum(1 for r in results if r.get("synchronised")),
        "totalErrors": len(report.failures(results)),
        "results": results,
    }


# Each verb on one flow: what it is called when done, and the statuses it takes.
VERBS = {
    "kill": ("Killed", "running (RUNNABLE, PAUSED or HOSPITALIZED)"),
    "pause": ("Paused", "RUNNABLE or HOSPITALIZED"),
    "resume": ("Resumed", "PAUSED"),
    "retry": ("Retried", "HOSPITALIZED or PAUSED"),
}


def _flow_verb(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    verb = args.flow_command
    call = {
        "kill": client.kill_flow,
        "pause": client.pause_flow,
        "resume": client.resume_flow,
        "retry": client.retry_flow,
    }[verb]
    try:
        done = call(args.id, args.reason)
    finally:
        client.close()
    did, takes = VERBS[verb]
    if args.json:
        print(json.dumps({"id": args.id, "action": verb, "done": done}))
    else:
        print(f"{did} flow [{args.id}]" if done else f"Failed to {verb} flow [{args.id}]: it is not {takes}")
    return 0 if done else 1


def _flow_recover(args: argparse.Namespace) -> int:
    from agent.operator_api.recovery import RECOVERIES, dry_run_arguments

    name, key = RECOVERIES[args.flow_command]
    body: dict[str, Any] = {"forceRecover": args.force_recover}
    if args.reason is not None:
        body["reason"] = args.reason
    if key is not None:
        body[key] = args.target
    if args.flow_command == "recoverFinalityMatching":
        criteria = {
            "flowStartFromTime": args.from_time,
            "flowStartUntilTime": args.until_time,
            "initiatedBy": args.initiated_by,
            "counterParties": args.counter_party,
        }
        body.update({k: v for k, v in criteria.items() if v is not None})
    if args.dry_run:
        body = dry_run_arguments(body, key)
        body["checkNotary"] = not args.no_check_notary
        name = "recoverFinalityDryRun"
    elif args.job or args.wait:
        return _recovery_job(
            args, {**dry_run_arguments(body, key), **({"reason": args.reason} if args.reason else {})}
        )
    client = _management(args.config, args.user)
    client.timeout = 90.0  # longer than the recovery's own wait (60 s), so that its answer arrives
    try:
        answer = client.call("POST", f"/api/finality/{name}", body)
    finally:
        client.close()
    if args.json:
        _print_json(answer)
    else:
        print(answer["text"])
    if args.dry_run:
        return 0
    if "results" in answer:  # a map of id -> recovered
        return 0 if all(answer["results"].values()) else 1
    return 0 if answer["recovered"] else 1


def _recovery_job(args: argparse.Namespace, body: dict[str, Any]) -> int:
    """Start a finality recovery job (recoverFinalityJob); with --wait, follow it to its end."""
    from agent.client.launcher import follow_job
    from agent.operator_api.recovery import recovery_job_ok, recovery_job_text

    client = _management(args.config, args.user)
    try:
        job = client.call("POST", "/api/finality/recoverFinalityJob", body)
        if args.wait:  # read again even when it has finished already: the start has no results
            path = f"/api/finality/jobs/{job['jobId']}"
            job = follow_job(lambda: dict(client.call("GET", path)), args.timeout)
    finally:
        client.close()
    if args.json:
        _print_json(job)
    else:
        print(recovery_job_text(job))
    return 0 if not job.get("finished") or recovery_job_ok(job) else 1


def _flow_status(args: argparse.Namespace) -> int:
    from agent.client.launcher import AgentProcessError
    from agent.operator_api.recovery import QUERIES, flow_transaction_report

    name, _ = QUERIES[args.query]
    client = _management(args.config, args.user)
    try:
        info = client.call("GET", f"/api/finality/{name}/{args.target}")
    except AgentProcessError as exc:
        if "TransactionNotFoundError" not in str(exc):
            raise
        info = None
    finally:
        client.close()
    if args.json:
        _print_json(info)
    else:
        print(flow_transaction_report(info))
    return 0 if info is not None else 1


FILTER_FLAGS = (  # --flag, the filter's name
    ("status", "status"),
    ("diagnosis", "diagnosis"),
    ("staff", "staff"),
    ("error_type", "errorType"),
    ("flow_name", "flowName"),
    ("peer", "peer"),
    ("step", "step"),
    ("min_age", "minAgeSeconds"),
    ("min_attempts", "minAttempts"),
    ("under_care", "underCare"),
)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """The flow filter the flags give (only those given)."""
    return {
        name: getattr(args, flag) for flag, name in FILTER_FLAGS if getattr(args, flag) not in (None, False)
    }


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _flow_hospital(args: argparse.Namespace) -> int:
    from agent.client.tables import patient_text, patients_table

    client = _management(args.config, args.user)
    try:
        if args.id:
            if _filters(args) or args.failed:
                raise ConfigurationError("flow hospital", args.id, "give a flow's id or filters, not both")
            found: Any = client.patient(args.id)
        else:
            found = client.patients(include_failed=args.failed, **_filters(args))
    finally:
        client.close()
    if args.json:
        _print_json(found)
    else:
        print(patient_text(found) if args.id else patients_table(found))
    return 0


def _follow(client: ManagementClient, job: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """--wait: follow the job until it has finished, its progress on stderr (agent.client.progress:
    flows processed of the job's total, as the agent counts them)."""
    from agent.client.launcher import follow_job
    from agent.client.progress import Progress, wanted
    from agent.client.tables import counts_text

    progress = Progress(f"job {job['jobId']}", job.get("total"), enabled=wanted(args.progress))
    say = progress.printer(lambda text: print(text, file=sys.stderr, flush=True))

    def show(now: dict[str, Any]) -> None:
        waiting = f", waiting for {now['waitingFor']}" if now.get("waitingFor") else ""
        doing = f"processed, {now.get('status')} ({counts_text(now.get('counts') or {})}){waiting}"
        progress.set(int(now.get("processed") or 0), now.get("total"), doing)

    def unreachable(exc: Exception) -> None:
        say(f"the agent does not answer ({exc}); the job goes on there: still waiting")

    with progress:
        return follow_job(lambda: client.job(job["jobId"]), args.timeout, show, unreachable)


def _finished(job: dict[str, Any], args: argparse.Namespace) -> int:
    """Print a job that has finished; exit 1 if it did not complete, or any flow failed."""
    from agent.client.tables import job_ok, job_text

    if args.json:
        _print_json(job)
    else:
        print(job_text(job))
    return 0 if job_ok(job) else 1


def _job_started(client: ManagementClient, job: dict[str, Any], args: argparse.Namespace) -> int:
    from agent.client.tables import job_started_text

    if not args.wait:
        if args.json:
            _print_json(job)
        else:
            print(job_started_text(job))
            print(f"Follow it: ledger-agent flow jobs --config {args.config} {job['jobId']} --wait")
        return 0
    if not args.json:
        print(job_started_text(job), flush=True)
    return _finished(_follow(client, job, args), args)


def _flow_bulk(args: argparse.Namespace) -> int:
    from agent.client.tables import dry_run_text

    if args.batch_size is not None and not 1 <= args.batch_size <= 1000:
        raise ConfigurationError("--batch-size", args.batch_size, "allowed: 1 to 1000")
    client = _management(args.config, args.user)
    try:
        answer = client.bulk(
            args.action,
            _filters(args),
            args.reason,
            dry_run=args.dry_run,
            batch_size=args.batch_size,
            batch_interval=args.batch_interval,
        )
        if answer.get("dryRun"):
            if args.json:
                _print_json(answer)
            else:
                print(dry_run_text(answer))
                print("Nothing changed (a dry run). To do it, run the same command without --dry-run.")
            return 0
        return _job_started(client, answer, args)
    finally:
        client.close()


def _flow_corda_bulk(args: argparse.Namespace) -> int:
    client = _management(args.config, args.user)
    try:
        return _job_started(client, client.corda_bulk(args.flow_command, args.reason), args)
    finally:
        client.close()


def _flow_jobs(args: argparse.Namespace) -> int:
    from agent.client.tables import jobs_table

    client = _management(args.config, args.user)
    try:
        if args.id is None:
            jobs = client.jobs()
            if args.json:
                _print_json(jobs)
            else:
                print(jobs_table(jobs))
            return 0
        job = client.job(args.id)
        if args.wait and not job.get("finished"):
            job = _follow(client, job, args)
        return _finished(job, args) if job.get("finished") or args.wait else _unfinished(job, args)
    finally:
        client.close()


def _unfinished(job: dict[str, Any], args: argparse.Namespace) -> int:
    from agent.client.tables import job_text

    if args.json:
        _print_json(job)
    else:
        print(job_text(job))
    return 0


def _audit(args: argparse.Namespace) -> int:
    from agent.client.tables import audit_table

    client = _management(args.config, args.user)
    try:
        entries = client.audit(user=args.by, action=args.action, limit=args.limit)
    finally:
        client.close()
    if args.json:
        _print_json(entries)
    else:
        print(audit_table(entries))
    return 0


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

    return run_shell(args.config, args.url, args.user, cacert=args.cacert)


def _seconds(text: str) -> float:
    from agent.client.tables import parse_age

    try:
        return parse_age(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: seconds, or a number with s, m, h or d") from None


def _filter_flags(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("filters (every one given must match)")
    group.add_argument("--status", help="RUNNABLE, HOSPITALIZED, PAUSED, FAILED, COMPLETED or KILLED")
    group.add_argument("--diagnosis", help="OVERNIGHT_OBSERVATION, DISCHARGE, TERMINAL, ...")
    group.add_argument("--staff", help="who diagnosed it, e.g. FinalityDoctor or rules[0]")
    group.add_argument("--error-type", help="the error's class, e.g. InjectedFaultError")
    group.add_argument("--flow-name", help="e.g. FinalityFlow")
    group.add_argument("--peer", help="a counterparty's X.500 name")
    group.add_argument("--step", help="the step it reached, e.g. AFTER_RECORD")
    group.add_argument("--min-age", type=_seconds, help="at least this long in the hospital: 90, 10m, 2h, 1d")
    group.add_argument("--min-attempts", type=int, help="at least this many errors since its checkpoint")
    group.add_argument("--under-care", action="store_true", help="only the flows the hospital is keeping")


def _progress_flag(sub: argparse.ArgumentParser, text: str | None = None) -> None:
    sub.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=text or "steps done of the total on stderr (default: only when stderr is a terminal)",
    )


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
    inspect = network_commands.add_parser(
        "inspect",
        help="check a network folder: the map's members, their certificates and node folders",
        description="The signed network map's members, one line each: role, name, p2p and management "
        "addresses, identity, TLS and management certificate validity, node.conf. The map's serial "
        "and signature are checked against the network's root CA, every certificate against the root "
        "(issuer, signature, dates, name), and each node folder against the map. Every problem found "
        "is listed, naming its file. Exit 0: no problems; 1: problems; 2: not a network folder.",
    )
    inspect.add_argument("--dir", type=Path, required=True, help="the network folder (network init's --dir)")
    inspect.add_argument("--json", action="store_true", help="print what was found as JSON")
    inspect.set_defaults(handler=_network_inspect)

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
    _progress_flag(demo)
    demo.set_defaults(handler=_demo)

    vault = commands.add_parser("vault", help="print a node's vault")
    vault.add_argument("--config", type=Path, required=True, help="the node's node.conf")
    vault.set_defaults(handler=_vault)

    flow = commands.add_parser(
        "flow",
        help="start, list, kill, pause, resume or retry flows on a running agent, as the Corda shell does; "
        "the flow hospital's patients, bulk actions and jobs",
    )
    flow_commands = flow.add_subparsers(dest="flow_command", required=True, metavar="SUBCOMMAND")
    start = flow_commands.add_parser(
        "start",
        help="start a flow by name",
        description="Start a flow by name with the Corda shell's `name: value, ...` arguments and print "
        "its result, or how to follow it when it has not finished within the agent's wait. "
        "Example: ledger-agent flow start --config node.conf GetReconciliationStatusForPartyFlow "
        "'party: \"O=PartyB, L=New York, C=US\", isRequester: true'  (quote the arguments as one word "
        "so the shell keeps the double quotes around names with commas)",
    )
    kill = flow_commands.add_parser("kill", help="kill a running flow by its id (killFlow)")
    pause = flow_commands.add_parser("pause", help="pause a RUNNABLE or HOSPITALIZED flow between two steps")
    resume = flow_commands.add_parser("resume", help="resume a PAUSED flow from its checkpoint")
    retry = flow_commands.add_parser(
        "retry", help="retry a HOSPITALIZED or PAUSED flow now from its checkpoint (retryFlow)"
    )
    listing = flow_commands.add_parser("list", help="the node's flows (checkpoints), oldest first")
    hospital = flow_commands.add_parser(
        "hospital",
        help="the flow hospital's patients with their filters, or one flow's retry history",
        description="Without an id: the flows the hospital is keeping (HOSPITALIZED, or RUNNABLE/PAUSED "
        "and under its care), longest in first; with --failed the FAILED ones too. With an id: that "
        "flow and its retry history.",
    )
    bulk = flow_commands.add_parser(
        "bulk",
        help="retry, pause or kill every flow a filter selects: --dry-run first, then a job on the agent",
        description="A bulk action by filter. With --dry-run nothing changes: how many flows, what would "
        "happen to each, a sample. Without it the agent starts a job (its own id, progress, a result per "
        "flow) that survives a restart of the agent or of this command; --wait follows it.",
    )
    corda_bulk = {
        name: flow_commands.add_parser(name, help=text)
        for name, text in (
            ("pauseAll", "pause every RUNNABLE and HOSPITALIZED flow (a bulk job)"),
            ("pauseAllHospitalized", "pause every HOSPITALIZED flow (a bulk job)"),
            ("retryAllPaused", "retry every PAUSED flow (a bulk job)"),
            ("retryAllPausedHospitalized", "retry every PAUSED flow the hospital was keeping (a bulk job)"),
        )
    }
    jobs = flow_commands.add_parser(
        "jobs", help="every job (bulk actions, finality recovery), or one job's progress and results"
    )
    subs = (start, kill, pause, resume, retry, listing, hospital, bulk, jobs, *corda_bulk.values())
    for sub in subs:
        sub.add_argument("--config", type=Path, required=True, help="the node's node.conf")
        sub.add_argument("--user", default="operator", help="management user (default operator)")
    for sub in (kill, pause, resume, retry, hospital, bulk, jobs, *corda_bulk.values()):
        sub.add_argument("--json", action="store_true", help="print the agent's JSON answer")
    start.add_argument("name", help="the flow, e.g. ScheduleReconciliationFlow")
    start.add_argument(
        "arguments", nargs=argparse.REMAINDER, help='name: value, ... (e.g. parties: ["O=..."])'
    )
    start.set_defaults(handler=_flow_start)
    for sub in (kill, pause, resume, retry):
        sub.add_argument("id", help="the flow's id (stateMachineRunId)")
        sub.add_argument("--reason", help="why (the audit log keeps it)")
        sub.set_defaults(handler=_flow_verb)
    hospital.add_argument("id", nargs="?", help="one flow's id: its retry history")
    hospital.add_argument("--failed", action="store_true", help="also the FAILED flows with a history")
    hospital.set_defaults(handler=_flow_hospital)
    bulk.add_argument("action", choices=("retry", "pause", "kill"), help="what to do to each flow")
    bulk.add_argument("--dry-run", action="store_true", help="only say what would happen")
    bulk.add_argument("--batch-size", type=int, help="flows per batch (1 to 1000, default 50)")
    bulk.add_argument(
        "--batch-interval", type=_seconds, help="seconds between two batches (default 0), e.g. 2 or 1m"
    )
    bulk.set_defaults(handler=_flow_bulk)
    for sub in (hospital, bulk):
        _filter_flags(sub)
    for sub in (bulk, *corda_bulk.values()):
        sub.add_argument("--reason", required=True, help="why (required: the audit log keeps it)")
    for name, sub in corda_bulk.items():
        sub.set_defaults(handler=_flow_corda_bulk, flow_command=name)
    jobs.add_argument("id", nargs="?", help="a job's id: its progress and a result per flow (or transaction)")
    jobs.set_defaults(handler=_flow_jobs)
    for sub in (bulk, jobs, *corda_bulk.values()):
        _progress_flag(sub)
        sub.add_argument("--wait", action="store_true", help="follow the job until it has finished")
        sub.add_argument(
            "--timeout",
            type=_seconds,
            default=3600.0,
            help="how long --wait waits (default 1h; the job goes on after)",
        )
    recoveries = {
        name: flow_commands.add_parser(name, help=text)
        for name, text in (
            ("recoverFinality", "recover a failed finality flow by its id (recoverFinalityFlow)"),
            ("recoverFinalityFlows", "recover failed finality flows by their ids (recoverFinalityFlows)"),
            ("recoverFinalityByTxnId", "recover a failed finality flow by its transaction's id"),
            (
                "recoverFinalityByTxnIds",
                "recover failed finality flows by their transactions' ids (recoverFinalityFlowByTxnIds)",
            ),
            ("recoverAllFinality", "recover every failed finality flow (recoverAllFinalityFlows)"),
            (
                "recoverFinalityMatching",
                "recover the failed finality flows matching a query (at least one criterion)",
            ),
        )
    }
    for name, sub in recoveries.items():
        sub.add_argument("--config", type=Path, required=True, help="the node's node.conf")
        sub.add_argument("--user", default="operator", help="management user (default operator)")
        sub.add_argument("--json", action="store_true", help="print the agent's JSON answer")
        sub.add_argument("--reason", help="why (the audit log keeps it)")
        sub.add_argument(
            "--force-recover",
            action="store_true",
            help="also recover flows that are RUNNABLE, PAUSED or HOSPITALIZED",
        )
        sub.add_argument(
            "--dry-run",
            action="store_true",
            help="only say what it would do per transaction (recoverFinalityDryRun); nothing changes",
        )
        sub.add_argument(
            "--no-check-notary",
            action="store_true",
            help="with --dry-run: do not ask the notary (UNKNOWN where only it can tell)",
        )
        sub.add_argument(
            "--job",
            action="store_true",
            help="recover in a job on the agent (recoverFinalityJob): its id at once, a result per transaction",
        )
        sub.add_argument("--wait", action="store_true", help="start the job (--job) and follow it to its end")
        sub.add_argument(
            "--timeout",
            type=float,
            default=3600.0,
            help="how long --wait waits (default 1h; the job goes on)",
        )
        sub.set_defaults(handler=_flow_recover, flow_command=name)
    recoveries["recoverFinality"].add_argument("target", metavar="id", help="the finality flow's id")
    recoveries["recoverFinalityByTxnId"].add_argument("target", metavar="txId", help="the transaction's id")
    recoveries["recoverFinalityFlows"].add_argument(
        "target", metavar="id", nargs="+", help="the finality flows' ids"
    )
    recoveries["recoverFinalityByTxnIds"].add_argument(
        "target", metavar="txId", nargs="+", help="the transactions' ids"
    )
    matching = recoveries["recoverFinalityMatching"]
    matching.add_argument("--from-time", help="flowStartFromTime: ISO-8601, e.g. 2023-12-04T10:15:30Z")
    matching.add_argument("--until-time", help="flowStartUntilTime: ISO-8601")
    matching.add_argument("--initiated-by", action="append", help="initiatedBy: an X.500 name (repeatable)")
    matching.add_argument(
        "--counter-party", action="append", help="counterParties: an X.500 name (repeatable)"
    )

    listing.add_argument("--status", help="RUNNABLE, FAILED, COMPLETED, HOSPITALIZED, KILLED or PAUSED")
    listing.add_argument("--flow-name", help="e.g. FinalityFlow")
    listing.add_argument("--step", help="the step it reached, e.g. RECORDED")
    listing.add_argument("--counterparty", help="an X.500 name")
    listing.set_defaults(handler=_flow_list)

    flow_status = commands.add_parser(
        "flowStatus", help="a finality flow's FlowTransactionInfo, by flow id or transaction id"
    )
    status_queries = flow_status.add_subparsers(dest="query", required=True, metavar="QUERY")
    for name, what in (
        ("queryFinalityById", "the flow's id"),
        ("queryFinalityByTxnId", "the transaction's id"),
    ):
        query = status_queries.add_parser(name, help=f"FlowTransactionInfo by {what}")
        query.add_argument("target", help=what)
        query.add_argument("--config", type=Path, required=True, help="the node's node.conf")
        query.add_argument("--user", default="operator", help="management user (default operator)")
        query.add_argument("--json", action="store_true", help="print the agent's JSON answer")
        query.set_defaults(handler=_flow_status)

    recover = commands.add_parser(
        "recover",
        help="Ledger Recovery: reconcile with the peers, then recover what this node lacks "
        "(a dry run unless --apply)",
    )
    whom = recover.add_mutually_exclusive_group(required=True)
    whom.add_argument("--peer", action="append", help="a recovery peer's X.500 name (repeatable)")
    whom.add_argument("--all-network-nodes", action="store_true", help="every node of the network map")
    whom.add_argument("--results", metavar="FLOW_ID", help="a LedgerRecoveryFlow's results, per transaction")
    recover.add_argument("--from", dest="from_time", help="timeWindow.fromTime, ISO-8601 (default: all)")
    recover.add_argument("--until", dest="until_time", help="timeWindow.untilTime, ISO-8601 (default: now)")
    recover.add_argument("--role", choices=RECOVERY_ROLES, help="transactionRole (default ALL)")
    recover.add_argument(
        "--optimistic-initiator-recovery",
        action="store_true",
        help="also push the transactions this node initiated to the peers that lack them",
    )
    recover.add_argument(
        "--also-finalize", action="store_true", help="also finalise recovered transactions left IN_FLIGHT"
    )
    recover.add_argument(
        "--batch-size", type=int, help="recoveryBatchSize: records per exchange (default 1000)"
    )
    recover.add_argument(
        "--apply", action="store_true", help="recover (without it: a dry run, nothing changes)"
    )
    recover.add_argument(
        "--timeout", type=float, default=3600.0, help="how long to wait for it (default 1h; it goes on after)"
    )
    recover.add_argument("--reason", help="why (the audit log keeps it)")
    recover.add_argument("--config", type=Path, required=True, help="the node's node.conf")
    recover.add_argument("--user", default="operator", help="management user (default operator)")
    recover.add_argument("--json", action="store_true", help="print the agent's JSON answer")
    _progress_flag(
        recover,
        "with --apply: the recovery's progress on stderr (default: a bar on a terminal, else a line every 5 s)",
    )
    recover.set_defaults(handler=_recover)

    audit = commands.add_parser(
        "audit",
        help="the audit log: who did what to which flows, when, why, and how it went (newest first)",
    )
    audit.add_argument("--config", type=Path, required=True, help="the node's node.conf")
    audit.add_argument("--user", default="operator", help="management user (default operator)")
    audit.add_argument("--by", help="only this user's actions")
    audit.add_argument("--action", help="only this command, e.g. retryFlow, bulkAction")
    audit.add_argument("--limit", type=int, help="at most this many entries (default 100)")
    audit.add_argument("--json", action="store_true", help="print the agent's JSON answer")
    audit.set_defaults(handler=_audit)

    shell = commands.add_parser(
        "shell", help="the Corda shell's flow and run commands against a running agent (JSON-RPC)"
    )
    shell.add_argument("--config", type=Path, help="the node's node.conf (address, management-password)")
    shell.add_argument("--url", help="the management URL, when not node.conf's managementAddress")
    shell.add_argument(
        "--cacert",
        type=Path,
        help="CA certificate to check the agent's with (default: node.conf's network root)",
    )
    shell.add_argument("--user", default="operator", help="management user (default operator)")
    shell.set_defaults(handler=_shell)
    # Parsed by agent.client.check itself (see main): bad arguments must exit 3 (UNKNOWN), not argparse's 2.
    commands.add_parser(
        "check", add_help=False, help="monitoring plugin (Nagios/Icinga): ledger-agent check --help"
    )
    _describe(parser)
    return parser


DESCRIPTIONS = {  # the longer text of `ledger-agent COMMAND --help`, where the one-line help is not enough
    "network": "Local networks in one folder: `init` makes one (root CA, signed network map, a folder "
    "per node with its node.conf, keys, certificates and management passwords); `inspect` checks one.",
    "network init": "Create a folder for a local network: a notary and N nodes (PartyA, PartyB, ...), "
    "each with two ports from --base-port (p2p, management), mutual TLS between agents and HTTPS "
    "management. Refuses to overwrite anything. Start each node with `ledger-agent run --config`.",
    "run": "Run one node's agent in the foreground until SIGTERM or Ctrl-C: the p2p endpoint (mutual "
    "TLS), the management endpoint (REST /api, JSON-RPC /rpc, Jolokia /jolokia, /metrics) and the "
    "services node.conf enables. Logs go to stderr, or to the file node.conf's logging section names.",
    "demo": "Start a local network of three nodes and a notary as agent processes, make issuances and "
    "random payments, check that every node agrees, then lose a node's store, restore an older backup "
    "and recover the rest from its peers. Exit 0 when all agree at the end.",
    "vault": "Print a node's vault straight from its store (the agent need not run): transactions, "
    "own and observed states, token totals per currency and issuer.",
    "flow": "The flows of a running agent through its management endpoint (REST /api), as the Corda "
    "shell's flow commands: start, list, kill, pause, resume, retry; the flow hospital; bulk actions "
    "and jobs; finality recovery.",
    "flowStatus": "A finality flow's FlowTransactionInfo (status, transaction, counterparties), found "
    "by the flow's id or the transaction's id.",
    "recover": "Ledger Recovery (docs/ledger-recovery.md): reconcile with the peers (LedgerSync), then "
    "recover the transactions this node lacks from them. A dry run that changes nothing unless "
    "--apply; --results reads a past run's results.",
    "audit": "The audit log of management actions: who did what to which flows, when, why, and how "
    "it went (newest first).",
    "shell": "An interactive shell with the Corda shell's `flow` and `run` commands, against a running "
    "agent's JSON-RPC endpoint.",
}


def _describe(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every subcommand a description for its --help: its own from DESCRIPTIONS, or its help."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            full = f"{path} {name}".strip()
            if sub.description is None:
                text = DESCRIPTIONS.get(full) or helps.get(name) or ""
                sub.description = text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
            _describe(sub, full)


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

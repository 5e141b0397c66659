"""The management plane under load: JSON-RPC and Jolokia at a fixed request rate, and /metrics scrapes.

    python bench/management.py [--rate 200] [--seconds 10] [--parties 1000]

Starts a notary and two nodes (PartyA, PartyB) as `ledger-agent run` processes on SQLite. Before
PartyA starts, `--parties` requester reconciliation statuses are written into its store (a third
each of DIFFERENCES_FOUND with 1 to 3 ids, DIFFERENCES_NOT_FOUND and FAILED), so the LedgerSync bean
and the Prometheus collector have that many peers to read.

Request load. Other processes (bench/openloop.py, --senders of them, each an asyncio loop over raw
keep-alive HTTP/1.1 connections) send requests to PartyA open-loop: request i is due at t0 + i / rate
whatever happened to the earlier ones, and its latency is measured from when it was due, not from when
it went out. A closed loop (send, wait, send) would slow down with the server and hide exactly the
queueing this is meant to show (coordinated omission). The generator's own lateness (a request written
after it was due while a connection was free) is reported as send_lag: it bounds how far the latencies
can be the generator's rather than the server's. Measured, one after the other, each at --rate for
--seconds after a short warm-up:

    health          GET /health (no auth, no beans): the baseline, the HTTP stack's own cost
    rpc_in_progress JSON-RPC LedgerSync.NumberOfReconciliationsInProgress
    rpc_status      JSON-RPC LedgerSync.ReconciliationStatus [party]
    jolokia_read    Jolokia read ledgeragent:type=LedgerSync NumberOfReconciliationsInProgress
    jolokia_exec    Jolokia exec ledgeragent:type=LedgerSync ReconciliationStatus [party]

Every request but /health authenticates as the read-only `monitor`, as monitoring tools would. An
error is a transport failure, an HTTP status other than 200, a JSON-RPC error or a Jolokia status
other than 200.

Scrapes. --scrapes sequential GETs of /metrics (user monitor) on PartyA, after one warm-up; the
baseline is the same on PartyB, which has no statuses, in the same run.

Prints one JSON line per measurement, then a summary JSON line (last). Every agent is stopped by its
PID in a finally.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench.openloop import CONNECTIONS, SENDERS, percentile, run_load

NO_DELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
GOAL_P99_MS = 20.0
GOAL_SCRAPE_MS = 50.0
MBEAN = "ledgeragent:type=LedgerSync"
STATUS_KINDS = ("DIFFERENCES_FOUND", "DIFFERENCES_NOT_FOUND", "FAILED")


def party_name(i: int) -> str:
    return f"O=Party{i:04d}, L=London, C=GB"


# -- figures ----------------------------------------------------------------------------------------


def ratio(value: float, baseline: float) -> float | None:
    return None if baseline <= 0 else round(value / baseline, 2)


def say(line: str) -> None:
    print(line, flush=True)


# -- the network ------------------------------------------------------------------------------------


def seed_statuses(config: Path, parties: int) -> dict[str, int]:
    """Write `parties` requester statuses into the node's store (before its process starts)."""
    from agent.ledger.hashing import SecureHash
    from agent.node import open_node
    from agent.store.reconciliation import ReconciliationStatusRepository

    node = open_node(config)
    counts = dict.fromkeys(STATUS_KINDS, 0)
    try:
        repo = ReconciliationStatusRepository(node.store.schema)
        now = int(time.time() * 1000)
        for i in range(1, parties + 1):
            name, kind = party_name(i), STATUS_KINDS[i % len(STATUS_KINDS)]
            started = now - 3_600_000 + i * 1000
            repo.started(name, True, f"bench-{i}", started)
            if kind == "FAILED":
                repo.failed(name, True, started + 200, "PeerUnreachableException: connection refused")
            else:
                ids = [] if kind == "DIFFERENCES_NOT_FOUND" else range(1 + i % 3)
                missing = [SecureHash(hashlib.sha256(f"{i}-{k}".encode()).digest()) for k in ids]
                repo.succeeded(name, True, started + 500, missing)
            counts[kind] += 1
    finally:
        node.close()
    return counts


@dataclass
class Agents:
    procs: list[Any]  # AgentProcess: notary, PartyA (under test), PartyB (baseline for /metrics)
    monitor: dict[str, str]  # management address -> the monitor's password

    @property
    def under_test(self) -> Any:
        return self.procs[1]

    @property
    def baseline(self) -> Any:
        return self.procs[2]


def make_network(folder: Path, parties: int) -> tuple[Agents, dict[str, int]]:
    from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
    from agent.network.bootstrap import (
        DEFAULT_NOTARY,
        MONITOR_PASSWORD_FILE,
        OPERATOR_USER,
        default_node_names,
        init_network,
    )

    layout = init_network(folder / "net", default_node_names(2), DEFAULT_NOTARY, base_port=free_port_range(6))
    counts = seed_statuses(layout.nodes[1].config, parties)
    procs, monitor = [], {}
    for node in layout.nodes:
        client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
        procs.append(AgentProcess(node.config, node.folder / "agent.log", client))
        monitor[node.management_address] = (node.folder / MONITOR_PASSWORD_FILE).read_text().strip()
    return Agents(procs, monitor), counts


# -- the measurements -------------------------------------------------------------------------------


def load_specs(client: Any, password: str, party: str) -> dict[str, dict[str, Any]]:
    """The requests of the load, to client's (a ManagementClient's) endpoint as the monitor."""
    base = client.base_url
    auth = ["monitor", password]
    cafile = None if client.ca_file is None else str(client.ca_file)

    def rpc(method: str, params: list[Any] | None, check: str) -> dict[str, Any]:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
        if params is not None:
            body["params"] = params
        url = f"{base}/rpc"
        return {"url": url, "method": "POST", "body": body, "auth": auth, "check": check, "cafile": cafile}

    def jolokia(body: dict[str, Any], check: str) -> dict[str, Any]:
        url = f"{base}/jolokia"
        return {"url": url, "method": "POST", "body": body, "auth": auth, "check": check, "cafile": cafile}

    return {
        "health": {
            "url": f"{base}/health",
            "method": "GET",
            "body": None,
            "auth": None,
            "check": "health",
            "cafile": cafile,
        },
        "rpc_in_progress": rpc("LedgerSync.NumberOfReconciliationsInProgress", None, "rpc"),
        "rpc_status": rpc("LedgerSync.ReconciliationStatus", [party], "rpc_map"),
        "jolokia_read": jolokia(
            {"type": "read", "mbean": MBEAN, "attribute": "NumberOfReconciliationsInProgress"}, "jolokia"
        ),
        "jolokia_exec": jolokia(
            {"type": "exec", "mbean": MBEAN, "operation": "ReconciliationStatus", "arguments": [party]},
            "jolokia_map",
        ),
    }


def time_scrapes(management: Any, password: str, count: int) -> dict[str, Any]:
    """count scrapes of management's (a ManagementClient's) /metrics as the monitor, one connection."""
    times, sizes, errors = [], [], 0
    with httpx.Client(
        timeout=30.0,
        transport=httpx.HTTPTransport(socket_options=NO_DELAY, verify=management.verify),
        trust_env=False,
        auth=("monitor", password),
    ) as client:
        url = f"{management.base_url}/metrics"
        client.get(url)  # warm-up: connection, first collection
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors += 1
            sizes.append(len(response.content))
        body = response.text
    ordered = sorted(times)
    return {
        "scrapes": count,
        "errors": errors,
        "median_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(percentile(ordered, 99), 2),
        "max_ms": round(ordered[-1], 2),
        "bytes": int(statistics.median(sizes)),
        "samples": sum(1 for line in body.splitlines() if line and not line.startswith("#")),
        # One last_outcome sample a peer (its current outcome).
        "peers": sum(
            1 for line in body.splitlines() if line.startswith("ledgeragent_reconciliation_last_outcome{")
        ),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="bench-management-", dir=args.scratch))
    measurements: dict[str, dict[str, Any]] = {}
    try:
        agents, counts = make_network(folder, args.parties)
        say(f"statuses written into PartyA's store: {counts}")
        try:
            for proc in agents.procs:
                proc.start()
            for proc in agents.procs:
                proc.wait_ready()
            for proc in agents.procs[1:]:
                proc.management.wait_ledgersync_ready()
            target, base = agents.under_test, agents.baseline
            address = target.management.address
            specs = load_specs(target.management, agents.monitor[address], party_name(min(3, args.parties)))
            for name, spec in specs.items():
                spec.update(
                    rate=args.rate, seconds=args.seconds, warmup=args.warmup, connections=args.connections
                )
                result = run_load(spec, senders=args.senders, timeout=args.seconds * 10 + 120)
                measurements[name] = result
                say(json.dumps({"measurement": name, **result}))
            for name, proc in (("metrics", target), ("metrics_baseline", base)):
                addr = proc.management.address
                result = time_scrapes(proc.management, agents.monitor[addr], args.scrapes)
                measurements[name] = result
                say(json.dumps({"measurement": name, **result}))
        finally:
            for proc in reversed(agents.procs):
                proc.stop()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            say(f"kept {folder}")
    return summary(args, measurements, counts)


def summary(args: argparse.Namespace, m: dict[str, dict[str, Any]], counts: dict[str, int]) -> dict[str, Any]:
    health = m["health"]
    plane = ("rpc_in_progress", "rpc_status", "jolokia_read", "jolokia_exec")
    calls = {
        name: {
            **{k: m[name][k] for k in ("achieved_rps", "p50_ms", "p99_ms", "max_ms", "errors")},
            "p50_ratio": ratio(m[name]["p50_ms"], health["p50_ms"]),
            "p99_ratio": ratio(m[name]["p99_ms"], health["p99_ms"]),
        }
        for name in plane
    }
    scrape, scrape_base = m["metrics"], m["metrics_baseline"]
    worst_p99 = max(m[name]["p99_ms"] for name in plane)
    return {
        "benchmark": "management",
        "rate": args.rate,
        "seconds": args.seconds,
        "parties": args.parties,
        "statuses": counts,
        "baseline": "GET /health at the same rate (no auth, no beans)",
        "health": {k: health[k] for k in ("achieved_rps", "p50_ms", "p99_ms", "max_ms", "errors")},
        **calls,
        "errors": sum(m[name]["errors"] for name in (*plane, "health", "metrics", "metrics_baseline")),
        "worst_p99_ms": worst_p99,
        "scrape_median_ms": scrape["median_ms"],
        "scrape_p99_ms": scrape["p99_ms"],
        "scrape_bytes": scrape["bytes"],
        "scrape_peers": scrape["peers"],
        "scrape_baseline_median_ms": scrape_base["median_ms"],
        "scrape_baseline_bytes": scrape_base["bytes"],
        "scrape_ratio": ratio(scrape["median_ms"], scrape_base["median_ms"]),
        "goal_p99_met": worst_p99 < GOAL_P99_MS,
        "goal_scrape_met": scrape["median_ms"] < GOAL_SCRAPE_MS,
        "goal_scrape_p99_met": scrape["p99_ms"] < GOAL_SCRAPE_MS,
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (default: 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load per call (default: 10)")
    parser.add_argument("--parties", type=int, default=1000, help="statuses on the node (default: 1000)")
    parser.add_argument("--scrapes", type=int, default=50, help="timed /metrics scrapes (default: 50)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of untimed load first (default: 1)"
    )
    parser.add_argument(
        "--senders", type=int, default=SENDERS, help=f"load generator processes (default: {SENDERS})"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        help=f"keep-alive connections per sender (default: {CONNECTIONS})",
    )
    parser.add_argument("--scratch", type=Path, default=None, help="where the run's folder goes")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (the agents' logs)")
    args = parser.parse_args(argv)
    if args.parties < 1 or args.rate <= 0 or args.seconds <= 0:
        parser.error("--parties, --rate and --seconds must be positive")
    result = run(args)
    h = result["health"]
    say(f"baseline GET /health: {h['achieved_rps']} req/s, p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms")
    for name in ("rpc_in_progress", "rpc_status", "jolokia_read", "jolokia_exec"):
        r = result[name]
        say(
            f"{name}: {r['achieved_rps']} req/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms "
            f"(x{r['p99_ratio']} of /health), max {r['max_ms']} ms, errors {r['errors']}"
        )
    say(
        f"/metrics with {result['parties']} parties: median {result['scrape_median_ms']} ms, "
        f"p99 {result['scrape_p99_ms']} ms, {result['scrape_bytes']:,} bytes; without statuses "
        f"{result['scrape_baseline_median_ms']} ms (x{result['scrape_ratio']})"
    )
    say(
        f"goals: p99 < {GOAL_P99_MS:g} ms at {args.rate:g}/s {'met' if result['goal_p99_met'] else 'NOT met'}; "
        f"scrape < {GOAL_SCRAPE_MS:g} ms {'met' if result['goal_scrape_met'] else 'NOT met'}"
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

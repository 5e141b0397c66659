"""LedgerSync reconciliation between two agent processes, against two baselines measured in the same run.

    python bench/reconcile.py --n 1000000 --d 1000 [--cache /tmp/bw/reconcile] [--repeat 3]

Two `ledger-agent run` processes each hold a bulk-loaded SQLite ledger: the responder (the fixture's
Party0002) the fixture's first n transactions, the requester (Party0001) the same less the last d.
Through the requester's management endpoint the script runs `ReconcileWithPartyFlow` with method
"riblt" (the rateless IBLT) and, on the same processes, method "list" (the naive baseline: the
responder's whole id set for the pair, paged over the same peer HTTP path), timing each call (wall
time around the HTTP call). The Corda-style baseline (strata estimator + IBFs, `bench/eppstein.py`)
is computed in this process on the same two sets for the pair. Ends with one JSON line.

Memory, per agent process (VmRSS and VmHWM from /proc): agent_startup_hwm_mb is the high-water mark
once both graphs are ready (the build and the first consistency check); agent_recheck_rss_mb the
requester's peak RSS during one CheckConsistency (Jolokia exec: the graph's states read again from
the store), run before any reconciliation; agent_rss_mb the peak during the riblt calls.

round_trips counts the request/reply exchanges that carry reconciliation data: begin (whose reply
holds the first symbols), each further symbol exchange and any id-list page. The closing `end`
exchange carries nothing back in a one-directional run and is not counted; `exchanges`, the agent's
own count, includes it.

The ledgers. The requester lacks a suffix of the responder's ledger, as a node restored from a backup
lacks what was made since; so the requester stays self-consistent (nothing it holds spends an output
of a transaction it lacks), which LedgerSync requires. The fixture runs with 2 parties, the two
nodes, with the nodes' own names and keys: every move names both (the payer signs, the payee owns an
output) and every issuance or exit is in the back-chain of a later move unless its outputs are still
unspent at the end, so the set for the pair (`agent/ledgersync/pairset.py`) is almost the whole
ledger. One database serves both nodes: its vault holds the states relevant to either key (LedgerSync's
consistency check requires every relevant output to be in the vault, and tolerates other states).
Cutting the suffix deletes its transactions and their vault states, and makes the states they
consumed unconsumed again: the store as if it had never recorded them.

The cache (--cache): the responder's database and its ids in generation order per (n, seed), and
each side's set for the pair per (n, seed, d). A run copies the responder's database for each node
and cuts the requester's suffix off its copy, so no agent ever writes to the cache.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import numpy.typing as npt

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair, PublicKey
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StateStatus, StatesToRecord
from agent.network.bootstrap import DATABASE_FILE, OPERATOR_USER, init_network
from agent.store.ledger_store import LedgerStore
from bench import eppstein
from bench.common import DEFAULT_WORKERS, emit, machine, say
from bench.fixture import generate_ledger, ledger_parties

PARTIES = 2  # the two nodes: see the module's docstring
ID_SIZE = 32
DEFAULT_CACHE = Path("/tmp/bw/reconcile")
FLOW = "ReconcileWithPartyFlow"


# -- the ledgers ---------------------------------------------------------------------------------------


def responder_path(cache: Path, n: int, seed: int) -> Path:
    return cache / f"responder-n{n}-p{PARTIES}-s{seed}.db"


def ids_path(cache: Path, n: int, seed: int) -> Path:
    """The ledger's ids in generation order, 32 bytes each: which ones are the last d."""
    return cache / f"ids-n{n}-p{PARTIES}-s{seed}.bin"


def pair_set_path(cache: Path, n: int, seed: int, d: int, side: str) -> Path:
    return cache / f"pairset-{side}-n{n}-p{PARTIES}-s{seed}-d{d}.npy"


def both_keys(seed: int) -> frozenset[PublicKey]:
    return frozenset(m.party.owning_key for m in ledger_parties(PARTIES, seed).members)


def build_responder(cache: Path, n: int, seed: int, *, workers: int) -> tuple[Path, float]:
    """The responder's SQLite ledger (made now unless cached) and the seconds making it took (0 if cached)."""
    db, ids = responder_path(cache, n, seed), ids_path(cache, n, seed)
    if db.exists() and ids.exists():
        return db, 0.0
    cache.mkdir(parents=True, exist_ok=True)
    partial = db.with_suffix(".partial")
    for stale in partial.parent.glob(partial.name + "*"):
        stale.unlink()
    started = time.perf_counter()
    order = bytearray()
    store = LedgerStore(f"sqlite:///{partial}", our_keys=both_keys(seed))

    def recorded() -> Iterator[SignedTransaction]:
        for stx in generate_ledger(n, parties=PARTIES, seed=seed, workers=workers):
            order.extend(bytes(stx.id))
            yield stx

    try:
        store.bulk_record(recorded(), states_to_record=StatesToRecord.ONLY_RELEVANT, batch_size=20_000)
    finally:
        store.close()
    _checkpoint(partial)
    ids.write_bytes(bytes(order))
    partial.replace(db)
    return db, time.perf_counter() - started


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the file, so that one file copied is the whole ledger."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def cut_suffix(db: Path, ids: bytes, d: int) -> int:
    """Take the last d transactions (of ids, in generation order) out of db, vault included; the count.

    Their outputs leave the vault; the states they consumed become unconsumed again.
    """
    if d == 0:
        return 0
    last = ids[len(ids) - ID_SIZE * d :]
    cut = [(last[ID_SIZE * i : ID_SIZE * i + ID_SIZE].hex().upper(),) for i in range(d)]
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("CREATE TEMP TABLE cut (tx_id TEXT PRIMARY KEY)")
            conn.executemany("INSERT INTO cut VALUES (?)", cut)
            deleted = conn.execute(
                "DELETE FROM node_transactions WHERE tx_id IN (SELECT tx_id FROM cut)"
            ).rowcount
            conn.execute("DELETE FROM vault_states WHERE transaction_id IN (SELECT tx_id FROM cut)")
            conn.execute("DELETE FROM state_party WHERE transaction_id IN (SELECT tx_id FROM cut)")
            conn.execute(
                "UPDATE vault_states SET state_status = ?, consumed_timestamp = NULL, consuming_tx_id = NULL "
                "WHERE consuming_tx_id IN (SELECT tx_id FROM cut)",
                (int(StateStatus.UNCONSUMED),),
            )
    finally:
        conn.close()
    return int(deleted)


@dataclass(frozen=True)
class Cast:
    """The two nodes (the fixture's parties, with their keys) and the notary."""

    requester: X500Name
    responder: X500Name
    notary: X500Name
    keys: dict[X500Name, KeyPair]


def cast(seed: int) -> Cast:
    parties = ledger_parties(PARTIES, seed)
    requester, responder = (m.party.name for m in parties.members)
    keys = {m.party.name: m.keys for m in (*parties.members, parties.notary)}
    return Cast(requester, responder, parties.notary.party.name, keys)


def pair_set(db: Path, me: X500Name, other: X500Name, key: KeyPair) -> npt.NDArray[Any]:
    """The set for the pair as `me`'s agent builds it (read-only use of agent.ledgersync), as S32 ids."""
    from agent.ledgersync.graph import LedgerGraph
    from agent.ledgersync.pairset import pair_set as agent_pair_set

    store = LedgerStore(f"sqlite:///{db}", our_keys={key.public})
    try:
        graph = LedgerGraph.build(store.graph_scans, page_size=5000, pool_size=1, readers="thread")
        ids = agent_pair_set(graph, str(me), str(other))
        result = np.frombuffer(b"".join(ids), dtype="S32") if len(ids) else np.empty(0, dtype="S32")
    finally:
        store.close()
    del graph
    gc.collect()
    return result


def cached_pair_set(path: Path, db: Path, me: X500Name, other: X500Name, key: KeyPair) -> npt.NDArray[Any]:
    if path.exists():
        cached: npt.NDArray[Any] = np.load(path)
        return cached
    ids = pair_set(db, me, other, key)
    np.save(path, ids)
    return ids


# -- the agents ---------------------------------------------------------------------------------------


def process_memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB, from /proc (0 once it has gone)."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


class RssSampler:
    """Samples the agents' VmRSS in a thread while a call runs, to catch the peak between samples."""

    def __init__(self, pids: list[int], interval: float = 0.01) -> None:
        self.pids = pids
        self.interval = interval
        self.peaks = dict.fromkeys(pids, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def peak(self) -> float:
        return max(self.peaks.values(), default=0.0)

    def _sample(self) -> None:
        for pid in self.pids:
            self.peaks[pid] = max(self.peaks[pid], process_memory_mb(pid)[0])

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


@dataclass
class Call:
    """One ReconcileWithPartyFlow call, as the operator's client saw it."""

    result: dict[str, Any]
    seconds: float
    rss_peaks_mb: list[float]  # per process, in the order of the pids sampled

    @property
    def rss_peak_mb(self) -> float:
        return max(self.rss_peaks_mb, default=0.0)

    @property
    def bytes(self) -> int:
        return int(self.result["bytesSent"]) + int(self.result["bytesReceived"])

    @property
    def exchanges(self) -> int:
        return int(self.result["exchanges"])

    @property
    def round_trips(self) -> int:
        return self.exchanges - 1  # the closing `end`: see the module's docstring

    @property
    def missing(self) -> int:
        return len(self.result["missingHere"])


def reconcile_call(client: ManagementClient, party: X500Name, method: str, pids: list[int]) -> Call:
    with RssSampler(pids) as sampler:
        started = time.perf_counter()
        reply = client.start_flow(FLOW, party=str(party), method=method)
        seconds = time.perf_counter() - started
    return Call(reply["result"], seconds, list(sampler.peaks.values()))


def recheck_call(process: AgentProcess) -> Call:
    """The operator's CheckConsistency (Jolokia exec): the graph's states read again from the store."""
    assert process.pid is not None
    body = {"type": "exec", "mbean": "ledgeragent:type=LedgerGraph", "operation": "CheckConsistency"}
    with RssSampler([process.pid]) as sampler:
        started = time.perf_counter()
        reply = process.management.call("POST", "/jolokia", body)
        seconds = time.perf_counter() - started
    if reply.get("value") is not True:
        raise RuntimeError(f"CheckConsistency did not find the ledger consistent: {reply}")
    return Call(reply, seconds, list(sampler.peaks.values()))


@dataclass
class Network:
    requester: AgentProcess
    responder: AgentProcess

    @property
    def pids(self) -> list[int]:
        return [p for p in (self.requester.pid, self.responder.pid) if p is not None]


def start_network(folder: Path, people: Cast, responder_db: Path, requester_db: Path) -> Network:
    """init_network with the fixture's identities, the ledgers in place, both nodes started (not the notary)."""
    layout = init_network(
        folder / "net",
        [people.requester, people.responder],
        people.notary,
        base_port=free_port_range(6),
        identity_keys=people.keys,
    )
    procs = []
    for name, db in ((people.requester, requester_db), (people.responder, responder_db)):
        node = layout.node(name)
        db.replace(node.folder / DATABASE_FILE)
        client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
        client.timeout = 1800.0
        procs.append(AgentProcess(node.config, node.folder / "agent.log", client))
    return Network(procs[0], procs[1])


def graph_ready(process: AgentProcess, timeout: float) -> dict[str, Any]:
    """Wait for the node's ledger graph; refuse to measure on a ledger LedgerSync finds inconsistent."""
    process.wait_ready(deadline_s=timeout)
    state = process.management.wait_ledgersync_ready(timeout=timeout)
    if state.get("ledgerGraphIsSelfConsistent") is False:
        raise RuntimeError(f"{process.config}: the ledger graph is not self-consistent: {state}")
    return state


# -- the run ------------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, d, seed = args.n, args.d, args.seed
    if not 0 <= d <= n:
        raise SystemExit(f"--d must be between 0 and --n, got {d}")
    cache: Path = args.cache
    people = cast(seed)
    say(f"ledgers: n={n:,}, d={d:,}, seed {seed}, cache {cache}")
    responder_db, built = build_responder(cache, n, seed, workers=args.workers)
    say(f"  responder's ledger {f'made in {built:.1f} s' if built else 'cached'}: {responder_db}")
    ids = ids_path(cache, n, seed).read_bytes()
    folder = Path(tempfile.mkdtemp(prefix="bench-reconcile-", dir=args.scratch))
    try:
        started = time.perf_counter()
        responder_copy, requester_copy = folder / "responder.db", folder / "requester.db"
        shutil.copyfile(responder_db, responder_copy)
        shutil.copyfile(responder_db, requester_copy)
        cut = cut_suffix(requester_copy, ids, d)
        say(
            f"  copied both and cut {cut:,} transactions off the requester's in {time.perf_counter() - started:.1f} s"
        )
        key = people.keys
        theirs = cached_pair_set(
            pair_set_path(cache, n, seed, 0, "responder"),
            responder_copy,
            people.responder,
            people.requester,
            key[people.responder],
        )
        mine = cached_pair_set(
            pair_set_path(cache, n, seed, d, "requester"),
            requester_copy,
            people.requester,
            people.responder,
            key[people.requester],
        )
        theirs_only = len(np.setdiff1d(theirs, mine, assume_unique=True))
        mine_only = len(np.setdiff1d(mine, theirs, assume_unique=True))
        say(
            f"  sets for the pair: responder {len(theirs):,}, requester {len(mine):,}; "
            f"difference {theirs_only:,} + {mine_only:,}"
        )

        network = start_network(folder, people, responder_copy, requester_copy)
        riblt: list[Call] = []
        naive: list[Call] = []
        hwm = rss_after = startup_hwm = 0.0
        recheck: Call | None = None
        try:
            network.requester.start()
            network.responder.start()
            started = time.perf_counter()
            for proc in (network.requester, network.responder):
                graph_ready(proc, args.start_timeout)
            say(f"  both agents' ledger graphs ready in {time.perf_counter() - started:.1f} s")
            # The build and first consistency check's peak, before any call: VmHWM once ready.
            ready = [process_memory_mb(pid) for pid in network.pids]
            startup_hwm = max(peak for _, peak in ready)
            say(
                f"  ready: RSS {', '.join(f'{r:.1f}' for r, _ in ready)} MB; start-up peak {startup_hwm:.1f} MB"
            )
            client = network.requester.management
            recheck = recheck_call(network.requester)
            say(
                f"  CheckConsistency on the requester: {recheck.seconds:.1f} s, RSS peak {recheck.rss_peak_mb:.1f} MB"
            )
            for i in range(args.repeat):
                # Alternated, so that neither method always runs on warmer caches.
                order = ("riblt", "list") if i % 2 == 0 else ("list", "riblt")
                for method in order:
                    call = reconcile_call(client, people.responder, method, network.pids)
                    (riblt if method == "riblt" else naive).append(call)
                    say(
                        f"  {method}: {call.seconds:.3f} s, {call.bytes:,} bytes, {call.exchanges} exchanges, "
                        f"missing {call.missing:,}, used id list {call.result['usedIdList']}, "
                        f"RSS peak {' / '.join(f'{p:.1f}' for p in call.rss_peaks_mb)} MB (requester / responder)"
                    )
            for pid in network.pids:
                rss, peak = process_memory_mb(pid)
                rss_after, hwm = max(rss_after, rss), max(hwm, peak)
        finally:
            network.requester.stop()
            network.responder.stop()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    started = time.perf_counter()
    base = eppstein.reconcile(mine, theirs)
    base_seconds = time.perf_counter() - started
    if base.decoded and len(base.missing_here) != theirs_only:
        raise RuntimeError(f"the baseline decoded {len(base.missing_here)} ids, not {theirs_only}")
    missing = [c.missing for c in riblt]
    if any(m != missing[0] for m in missing) or any(c.missing != missing[0] for c in naive):
        raise RuntimeError(f"the runs disagree on what is missing: {missing} {[c.missing for c in naive]}")
    seconds = med([c.seconds for c in riblt])
    naive_seconds = med([c.seconds for c in naive])
    result: dict[str, Any] = {
        "benchmark": "reconcile",
        "n": n,
        "d": d,
        "missing": missing[0],
        "pair_set_responder": len(theirs),
        "pair_set_requester": len(mine),
        "pair_difference": theirs_only + mine_only,
        "bytes": int(med([c.bytes for c in riblt])),
        "round_trips": int(med([c.round_trips for c in riblt])),
        "exchanges": int(med([c.exchanges for c in riblt])),
        "used_id_list": any(c.result["usedIdList"] for c in riblt),
        "seconds": round(seconds, 3),
        "floor_bytes": ID_SIZE * d,
        **base.as_json(),
        "baseline_seconds": round(base_seconds, 2),
        "naive_bytes": int(med([c.bytes for c in naive])),
        "naive_round_trips": int(med([c.round_trips for c in naive])),
        "naive_seconds": round(naive_seconds, 3),
        "seconds_ratio": round(seconds / naive_seconds, 3) if naive_seconds > 0 else None,
        "agent_rss_mb": round(max([c.rss_peak_mb for c in riblt] + [rss_after]), 1),
        "agent_rss_naive_mb": round(max(c.rss_peak_mb for c in naive), 1),
        "agent_hwm_mb": round(hwm, 1),
        "agent_startup_hwm_mb": round(startup_hwm, 1),
        "agent_recheck_rss_mb": round(recheck.rss_peak_mb, 1) if recheck else None,
        "recheck_seconds": round(recheck.seconds, 1) if recheck else None,
        "runs": args.repeat,
        "all_seconds": [round(c.seconds, 3) for c in riblt],
        "all_naive_seconds": [round(c.seconds, 3) for c in naive],
        "all_bytes": [c.bytes for c in riblt],
        "seed": seed,
        **machine(),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="transactions in the responder's ledger")
    parser.add_argument("--d", type=int, default=1000, help="the last d are missing on the requester")
    parser.add_argument("--seed", type=int, default=1, help="the ledger's seed (default: 1)")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"cached ledgers (default: {DEFAULT_CACHE})"
    )
    parser.add_argument(
        "--scratch", type=Path, default=None, help="where the run's folder goes (default: the temp dir)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="reconciliations of each method on the same agents"
    )
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="signing processes when generating"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=900.0, help="seconds for an agent's graph to be ready"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (the nodes' logs)")
    args = parser.parse_args(argv)
    result = run(args)
    say(
        f"riblt: {result['bytes']:,} bytes ({result['floor_bytes']:,} floor), {result['round_trips']} round trips, "
        f"{result['seconds']} s; naive: {result['naive_bytes']:,} bytes, {result['naive_seconds']} s; "
        f"Corda-style: {result['baseline_bytes']:,} bytes, {result['baseline_round_trips']} round trips, "
        f"decoded {result['baseline_decoded']}; agent RSS {result['agent_rss_mb']} MB (HWM {result['agent_hwm_mb']} MB)"
    )
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ledger Recovery: a restored node recovers n missing transactions from 2 peers, against a baseline.

    python bench/recover.py --n 100000 [--repeat 3] [--baseline 2000] [--cache /tmp/bw/recover]

The network: three nodes (the fixture's Party0001 = A, Party0002 = B, Party0003 = C, with their own
keys) and the notary, made by `init_network`, each node on SQLite. The ledger is the fixture's token
ledger for 3 parties (`bench/fixture.py`: issuances, moves and exits, signed by the right keys and the
notary), prefix + n transactions. Each transaction has an initiator (its first signing party) who sent
it to the other two (a participant records ONLY_RELEVANT, the other one is an observer, ALL_VISIBLE):
the initiator holds a sender record per receiver, each receiver a receiver record with the initiator's
distribution list sealed under the initiator's AES key, as finality writes them. B and C hold every
transaction and their records; A is "restored from a backup": it holds the first `prefix` and their
records, and lacks the last n. A recovers them through its records' peers: B's and C's sender records
naming A (what B or C initiated) and their receiver records from A (what A initiated, whose sealed
list only A can open).

The processes. B and C are `ledger-agent run` processes (agent/client/launcher.py). The management
REST has no LedgerRecoveryFlow route in this branch, so A is the agent built by the composition root
(`agent.composition.build_agent(node.conf)`: the same runtime, store and HTTP peer transport as
`ledger-agent run`, not serving, with the collector settings `ledger-agent run` applies once it
serves, `agent.process.settle_gc`) in a child process of this script, which runs the flow through
`LedgerRecoveryService.recover` (the flow on the engine, with checkpoints) and reports its own
VmHWM; this script samples the child's VmRSS meanwhile. LedgerSync is off on all three nodes (its
graph is not part of recovery, and would add its own memory to A's).

The baseline, in the same run and on the same B and C processes: another copy of A's restored ledger,
in another child, fetches the missing transactions one a request (recovery.transactions with one id,
from the peer whose record names it, parents first) and records each (LedgerService.record: verify,
then record_transaction) without distribution records. By default it runs over the first --baseline
missing transactions only (a run over 100,000 would take many minutes at its rate) and its rate is
compared with recovery's.

The cache (--cache): the three nodes' SQLite files per (n, prefix, seed) and the missing ids with the
peer that initiated each; runs copy them, so no agent writes to the cache. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.network.bootstrap import DATABASE_FILE, OPERATOR_USER, init_network
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.distribution_list import DistributionList, PublicHeader, encrypt
from agent.store.ledger_store import LedgerStore
from bench.common import DEFAULT_WORKERS, emit, machine, say
from bench.fixture import generate_ledger, ledger_parties

PARTIES = 3
DEFAULT_CACHE = Path("/tmp/bw/recover")
CHUNK = 5000
PER_SECOND = 50  # records per whole second of record time (the discriminator tells them apart)
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)  # the ledger's first record; the window starts before it


@dataclass(frozen=True)
class Cast:
    names: tuple[X500Name, X500Name, X500Name]  # A (recovers), B, C
    notary: X500Name
    keys: dict[X500Name, KeyPair]


def cast(seed: int) -> Cast:
    parties = ledger_parties(PARTIES, seed)
    a, b, c = (m.party.name for m in parties.members)
    keys = {m.party.name: m.keys for m in (*parties.members, parties.notary)}
    return Cast((a, b, c), parties.notary.party.name, keys)


# -- the fixture ----------------------------------------------------------------------------------------


def fixture_dir(cache: Path, n: int, prefix: int, seed: int) -> Path:
    return cache / f"n{n}-p{prefix}-s{seed}"


def record_time(i: int) -> tuple[datetime, int]:
    return EPOCH + timedelta(seconds=i // PER_SECOND), i % PER_SECOND


def _checkpoint(db: Path) -> None:
    """Fold the WAL into the file, so that one file copied is the whole ledger."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()


def _write_records(
    store: LedgerStore, sent: list[SenderDistribution], received: list[ReceiverDistribution]
) -> None:
    """The rows DistributionRepository.write would add, in one database transaction."""
    schema = store.schema
    with store.database.atomic():
        for i in range(0, len(sent), 500):
            schema.sender_distr_recs.insert_many(
                [
                    {
                        "transaction_id": str(r.tx_id),
                        "peer_party_id": r.peer.peer_id,
                        "timestamp": r.timestamp,
                        "timestamp_discriminator": r.timestamp_discriminator,
                        "sender_states_to_record": int(r.sender_states_to_record),
                        "receiver_states_to_record": int(r.receiver_states_to_record),
                    }
                    for r in sent[i : i + 500]
                ]
            ).execute()
        for i in range(0, len(received), 500):
            schema.receiver_distr_recs.insert_many(
                [
                    {
                        "transaction_id": str(r.tx_id),
                        "peer_party_id": r.sender.peer_id,
                        "timestamp": r.timestamp,
                        "timestamp_discriminator": r.timestamp_discriminator,
                        "distribution_list": r.distribution_list,
                        "receiver_states_to_record": int(r.receiver_states_to_record),
                    }
                    for r in received[i : i + 500]
                ]
            ).execute()


def build_fixture(cache: Path, n: int, prefix: int, seed: int, *, workers: int) -> tuple[Path, float]:
    """The three nodes' ledgers (made now unless cached) and the seconds making them took."""
    where = fixture_dir(cache, n, prefix, seed)
    if (where / "done").exists():
        return where, 0.0
    shutil.rmtree(where, ignore_errors=True)
    where.mkdir(parents=True)
    started = time.perf_counter()
    people = cast(seed)
    names = people.names
    stores = {
        name: LedgerStore(f"sqlite:///{where / f'{i}.db'}", our_keys={people.keys[name].public})
        for i, name in enumerate(names)
    }
    for store in stores.values():
        for other in names:  # recovery_party_info, as DistributionRepository._ensure_party adds it
            store.schema.recovery_party_info.insert(
                party_id=other.peer_id, party_name=str(other)
            ).on_conflict(action="NOTHING").execute()
    aes = {name: NodeAesKeys(store.keys, name) for name, store in stores.items()}
    by_key = {people.keys[name].public: name for name in names}
    missing: list[list[str]] = []  # [tx id, the initiator's name], in generation order

    def flush(chunk: list[tuple[int, SignedTransaction]]) -> None:
        sent: dict[X500Name, list[SenderDistribution]] = {name: [] for name in names}
        received: dict[X500Name, list[ReceiverDistribution]] = {name: [] for name in names}
        a_txs = [stx for i, stx in chunk if i < prefix]
        for i, stx in chunk:
            tx = stx.tx
            signers = [by_key[k] for k in tx.required_signers() if k in by_key]
            initiator = signers[0]
            named = {p.name for s in tx.outputs for p in s.participants} | set(signers)
            how = {
                r: StatesToRecord.ONLY_RELEVANT if r in named else StatesToRecord.ALL_VISIBLE
                for r in names
                if r != initiator
            }
            ts, disc = record_time(i)
            key_id, key = aes[initiator].pick()
            sealed = encrypt(
                DistributionList(StatesToRecord.ONLY_RELEVANT, {r.peer_id: h for r, h in how.items()}),
                PublicHeader(ts, disc),
                key_id,
                key,
            )
            for receiver, h in sorted(how.items()):
                sent[initiator].append(
                    SenderDistribution(stx.id, receiver, ts, disc, StatesToRecord.ONLY_RELEVANT, h)
                )
                received[receiver].append(ReceiverDistribution(stx.id, initiator, ts, disc, sealed, h))
            if i >= prefix:
                missing.append([str(stx.id), str(initiator)])
        a = names[0]
        for name, store in stores.items():
            txs = [stx for _, stx in chunk] if name != a else a_txs
            if txs:
                store.bulk_record(txs, batch_size=CHUNK)
            if name == a:  # the records of what A lacks are lost with it
                sent_a = [r for r in sent[a] if record_index(r) < prefix]
                received_a = [r for r in received[a] if record_index(r) < prefix]
                _write_records(store, sent_a, received_a)
            else:
                _write_records(store, sent[name], received[name])

    chunk: list[tuple[int, SignedTransaction]] = []
    try:
        for i, stx in enumerate(generate_ledger(prefix + n, parties=PARTIES, seed=seed, workers=workers)):
            chunk.append((i, stx))
            if len(chunk) >= CHUNK:
                flush(chunk)
                chunk = []
        if chunk:
            flush(chunk)
    finally:
        for store in stores.values():
            store.close()
    for i in range(len(names)):
        _checkpoint(where / f"{i}.db")
    (where / "missing.json").write_text(json.dumps(missing))
    (where / "done").write_text("")
    return where, time.perf_counter() - started


def record_index(record: SenderDistribution | ReceiverDistribution) -> int:
    """The generation index of a record's transaction, from its key (see record_time)."""
    seconds = int((record.timestamp - EPOCH).total_seconds())
    return seconds * PER_SECOND + record.timestamp_discriminator


# -- the processes --------------------------------------------------------------------------------------


def process_memory_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM of a process, in MiB (0, 0 once it is gone)."""
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
    """The peak VmRSS of one process, sampled every 50 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, process_memory_mb(self.pid)[0])
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Network:
    folder: Path
    configs: dict[X500Name, Path]
    peers: list[AgentProcess]


def make_network(folder: Path, people: Cast, fixture: Path, *, plain: bool = False) -> Network:
    """The network of the run: TLS between the agents and on management as `network init` makes it,
    or with plain, both off (what TLS costs, measured)."""
    layout = init_network(
        folder / "net",
        list(people.names),
        people.notary,
        base_port=free_port_range(8),
        identity_keys=people.keys,
    )
    configs = {}
    peers = []
    for i, name in enumerate(people.names):
        node = layout.node(name)
        with node.config.open("a") as conf:
            conf.write("ledgerSync.enabled = false\n")
            if plain:
                conf.write("p2pTls = false\nmanagementSsl.useSsl = false\n")
        configs[name] = node.config
        if i == 0:
            continue  # A's ledger is copied for each child
        shutil.copyfile(fixture / f"{i}.db", node.folder / DATABASE_FILE)
        client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
        client.timeout = 600.0
        peers.append(AgentProcess(node.config, node.folder / "agent.log", client))
    return Network(folder, configs, peers)


def process_cpu_s(pid: int) -> float:
    """User and system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_child(
    mode: str, config: Path, fixture: Path, args: argparse.Namespace, peers: Sequence[int] = ()
) -> dict[str, Any]:
    """A, restored afresh from the fixture, in a child process: recovery or the baseline. peers: B's
    and C's pids, whose CPU time during the run is reported beside A's."""
    shutil.copyfile(fixture / "0.db", config.parent / DATABASE_FILE)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--config",
        str(config),
        "--fixture",
        str(fixture),
        "--baseline",
        str(args.baseline),
        "--batch-size",
        str(args.batch_size),
        "--prefix",
        str(args.prefix),
    ]
    log = (config.parent / f"{mode}.log").open("ab")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    cpu_before = [process_cpu_s(pid) for pid in peers]
    with RssSampler(child.pid) as sampler:
        out, _ = child.communicate()
    peers_cpu = [round(process_cpu_s(pid) - before, 2) for pid, before in zip(peers, cpu_before, strict=True)]
    if child.returncode != 0:
        tail = (config.parent / f"{mode}.log").read_text()[-3000:]
        raise RuntimeError(f"the {mode} child exited with {child.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["sampled_rss_mb"] = round(sampler.peak, 1)
    result["peers_cpu_s"] = peers_cpu
    return result


# -- in the child: A -----------------------------------------------------------------------------------


def child_main(args: argparse.Namespace) -> int:
    from agent.composition import build_agent
    from agent.ledgersync.memory import tune_malloc
    from agent.process import settle_gc
    from agent.recovery.protocol import TOPIC_TRANSACTIONS

    tune_malloc()  # as `ledger-agent run` does before any thread starts (agent/process.py)

    people_names = [str(n) for n in cast(args.seed).names]
    agent = build_agent(args.config, ledgersync_background=False)
    agent.start()
    settle_gc()  # as `ledger-agent run` does once it serves (agent/process.py)
    runtime = agent.runtime
    try:
        started_rss = process_memory_mb_self()
        started_cpu = time.process_time()
        if args.child == "recover":
            started = time.perf_counter()
            result = runtime.ledger_recovery.recover(
                {
                    "recoveryPeers": people_names[1:],
                    "timeWindow": {"fromTime": (EPOCH - timedelta(seconds=1)).isoformat()},
                    "recoveryBatchSize": args.batch_size,
                },
                timeout=3600,
            )
            seconds = time.perf_counter() - started
            count = int(result["totalRecoveredTransactions"])
            errors = int(result["totalErrors"])
            # What A holds beyond the prefix (the missing ids are not read here: they would weigh on its RSS).
            held = (
                runtime.node.store.transactions.count_transactions(TransactionStatus.VERIFIED) - args.prefix
            )
            out = {"transactions": count, "errors": errors, "held": held, "seconds": seconds}
        else:
            missing = json.loads((args.fixture / "missing.json").read_text())
            todo = missing[: args.baseline] if args.baseline > 0 else missing
            store = runtime.node.store
            started = time.perf_counter()
            for tx_id, initiator in todo:
                peer = X500Name.parse(initiator)
                if peer == runtime.node.identity.name:  # what A initiated: any peer holds it
                    peer = X500Name.parse(people_names[1])
                reply = runtime.peers.request(peer, TOPIC_TRANSACTIONS, {"ids": [tx_id], "roots": []})
                (item,) = reply["txs"]
                stx = SignedTransaction.deserialize(item[2])
                runtime.node.ledger.record(stx)
            seconds = time.perf_counter() - started
            out = {
                "transactions": len(todo),
                "errors": 0,
                "held": store.transactions.count_transactions(),
                "seconds": seconds,
            }
        out["cpu_s"] = round(time.process_time() - started_cpu, 2)  # all A's threads, the run only
        out["rss_before_mb"] = round(started_rss[0], 1)
        rss, hwm = process_memory_mb_self()
        out["rss_after_mb"], out["hwm_mb"] = round(rss, 1), round(hwm, 1)
    finally:
        agent.stop()
    print(json.dumps(out), flush=True)
    return 0


def process_memory_mb_self() -> tuple[float, float]:
    import os

    return process_memory_mb(os.getpid())


# -- the run --------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    n, prefix, seed = args.n, args.prefix, args.seed
    people = cast(seed)
    say(f"ledgers: n={n:,} missing after a prefix of {prefix:,}, seed {seed}, cache {args.cache}")
    fixture, built = build_fixture(args.cache, n, prefix, seed, workers=args.workers)
    say(f"  fixture {f'made in {built:.1f} s' if built else 'cached'}: {fixture}")
    missing = json.loads((fixture / "missing.json").read_text())
    split = {str(name): sum(1 for _, i in missing if i == str(name)) for name in people.names}
    say(f"  missing by initiator: {split}")
    folder = Path(tempfile.mkdtemp(prefix="bench-recover-", dir=args.scratch))
    recoveries: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    loads: list[float] = []
    try:
        network = make_network(folder, people, fixture, plain=args.plain)
        a_config = network.configs[people.names[0]]
        try:
            for peer in network.peers:
                peer.start()
            for peer in network.peers:
                peer.wait_ready(120)
            say(f"  B and C running: pids {[p.pid for p in network.peers]}")
            for i in range(args.repeat):
                order = ("recover", "baseline") if i % 2 == 0 else ("baseline", "recover")
                for mode in order:
                    if mode == "baseline" and args.baseline < 0:
                        continue
                    loads.append(_load())
                    result = run_child(mode, a_config, fixture, args, [p.pid for p in network.peers])
                    rate = result["transactions"] / result["seconds"] if result["seconds"] else 0.0
                    result["tx_per_s"] = rate
                    (recoveries if mode == "recover" else baselines).append(result)
                    say(
                        f"  {mode}: {result['transactions']:,} tx in {result['seconds']:.1f} s = {rate:,.0f} tx/s, "
                        f"errors {result['errors']}, RSS peak {result['sampled_rss_mb']} MB "
                        f"(VmHWM {result['hwm_mb']} MB, {result['rss_before_mb']} MB before), load {loads[-1]:.2f}, "
                        f"CPU ms a tx: A {1000 * result['cpu_s'] / result['transactions']:.2f}, B and C "
                        + ", ".join(f"{1000 * c / result['transactions']:.2f}" for c in result["peers_cpu_s"])
                    )
                    if mode == "recover" and (result["transactions"] != n or result["held"] != n):
                        raise RuntimeError(f"recovery got {result['transactions']} of {n}: {result}")
        finally:
            for peer in network.peers:
                peer.stop()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    med = statistics.median
    rate = med([r["tx_per_s"] for r in recoveries])
    base_rate = med([r["tx_per_s"] for r in baselines]) if baselines else None
    return {
        "benchmark": "recover",
        "n": n,
        "prefix": prefix,
        "peers": 2,
        "batch_size": args.batch_size,
        "seconds": round(med([r["seconds"] for r in recoveries]), 2),
        "tx_per_s": round(rate, 1),
        "baseline_n": baselines[0]["transactions"] if baselines else None,
        "baseline_tx_per_s": round(base_rate, 1) if base_rate else None,
        "ratio": round(rate / base_rate, 2) if base_rate else None,
        "agent_rss_mb": max(r["sampled_rss_mb"] for r in recoveries),
        "agent_hwm_mb": max(r["hwm_mb"] for r in recoveries),
        "baseline_rss_mb": max(r["sampled_rss_mb"] for r in baselines) if baselines else None,
        "runs": len(recoveries),
        "all_seconds": [round(r["seconds"], 2) for r in recoveries],
        "all_baseline_tx_per_s": [round(r["tx_per_s"], 1) for r in baselines],
        "load_average": [round(x, 2) for x in loads],
        "seed": seed,
        **machine(),
    }


def _load() -> float:
    import os

    return os.getloadavg()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="transactions A lacks (default: 100,000)")
    parser.add_argument(
        "--prefix", type=int, default=2000, help="transactions A still holds (default: 2,000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="the ledger's seed (default: 1)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="recoveries (and baselines), each on a fresh copy"
    )
    parser.add_argument(
        "--baseline",
        type=int,
        default=2000,
        help="missing transactions the baseline fetches (0: all, -1: none)",
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="recoveryBatchSize (default: 1,000)")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"cached ledgers (default: {DEFAULT_CACHE})"
    )
    parser.add_argument("--scratch", type=Path, default=None, help="where the run's folder goes")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help="signing processes when generating"
    )
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (the nodes' logs)")
    parser.add_argument(
        "--plain", action="store_true", help="TLS off between the agents and on management (its cost)"
    )
    parser.add_argument("--child", choices=("recover", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--fixture", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    result = run(args)
    say(
        f"recovered {result['n']:,} in {result['seconds']} s: {result['tx_per_s']:,} tx/s; baseline "
        f"{result['baseline_tx_per_s']} tx/s (ratio {result['ratio']}); agent RSS {result['agent_rss_mb']} MB"
    )
    emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

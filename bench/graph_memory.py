"""The ledger graph's memory and build time, and a reconciliation's; baseline: a plain dict {id: [parent ids]}.

    python bench/graph_memory.py --reuse /tmp/bw/ledgers/ledger-1000000.db [--page-size 10000]
        [--pool-size 2] [--readers process|thread] [--baseline-n 100000] [--our-keys fixture|none]
        [--me NAME] [--other NAME] [--symbols 1000]

The ledger is copied to a scratch folder first (opening a store migrates it), never modified. Each measurement runs in a
fresh spawned process, so one's memory is not in another's RSS: the graph's build reports VmRSS
after imports and opening the store, after the build, and its peak (ru_maxrss); the baseline
builds the dict for the first --baseline-n transactions only and its RSS growth is extrapolated
linearly to the whole ledger (said so in the output). The main process only starts and reports.

The reconciliation measurement builds the graph, then resets the kernel's peak-RSS mark
(/proc/self/clear_refs) and computes the set for the pair (--me, --other; by default the first
two parties: with their back-chains, 98.8% of the 1M ledger) and --symbols coded symbols from it
with FastEncoder, as a responder's first batches do: its peak is the whole process's while
reconciling.
--our-keys fixture opens the store with the first party's key, as bulk_load's node has it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, say
from bench.fixture import party_name


def vm_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def hwm_mb() -> float:
    """The peak RSS since the last reset_peak (VmHWM); ru_maxrss cannot be reset."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def open_read_only(path: str, our_keys: str = "none") -> Any:
    """The copy, with the store's default (small) SQLite page cache: the graph's memory is measured."""
    import peewee

    from agent.store.ledger_store import LedgerStore
    from bench.fixture import fixture_store_keys

    keys = fixture_store_keys() if our_keys == "fixture" else frozenset()
    return LedgerStore(peewee.SqliteDatabase(path), our_keys=keys)


def measure_graph(path: str, page_size: int, pool_size: int, readers: str, our_keys: str) -> dict[str, Any]:
    from agent.ledgersync.consistency import check_consistency
    from agent.ledgersync.graph import LedgerGraph

    store = open_read_only(path, our_keys)
    gc.collect()
    before = vm_rss_mb()
    started = time.perf_counter()
    graph = LedgerGraph.build(store.graph_scans, page_size=page_size, pool_size=pool_size, readers=readers)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    gc.collect()
    after = vm_rss_mb()
    peak = peak_mb()
    # What glibc keeps of freed page buffers, told apart from what the graph holds.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    trimmed = vm_rss_mb()
    started = time.perf_counter()
    report = check_consistency(graph, store.graph_scans, page_size=page_size)
    check_seconds = time.perf_counter() - started
    after_check, peak_check = vm_rss_mb(), peak_mb()
    # The CheckConsistency operation later on: the states are read again from the store.
    started = time.perf_counter()
    again = check_consistency(graph, store.graph_scans, page_size=page_size, pool_size=pool_size)
    recheck_seconds = time.perf_counter() - started
    return {
        "transactions": graph.size,
        "rss_before_mb": before,
        "rss_after_build_mb": after,
        "peak_rss_build_mb": peak,
        "rss_after_malloc_trim_mb": trimmed,
        "rss_after_check_mb": after_check,
        "peak_rss_after_check_mb": peak_check,
        "rss_after_recheck_mb": vm_rss_mb(),
        "peak_rss_after_recheck_mb": peak_mb(),
        "arrays_mb": round(graph.nbytes / 2**20, 1),
        "arrays_bytes_per_tx": round(graph.nbytes / max(graph.size, 1), 1),
        "rss_growth_bytes_per_tx": round((after - before) * 2**20 / max(graph.size, 1), 1),
        "build_seconds": round(seconds, 2),
        "check_seconds": round(check_seconds, 2),
        "recheck_seconds": round(recheck_seconds, 2),
        "readers_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "consistent": report.is_self_consistent and again.is_self_consistent,
        "errors": report.error_count,
    }


def measure_reconciliation(
    path: str, page_size: int, pool_size: int, readers: str, our_keys: str, me: str, other: str, symbols: int
) -> dict[str, Any]:
    from agent.ledgersync.graph import LedgerGraph
    from agent.ledgersync.pairset import pair_set
    from agent.ledgersync.riblt_numpy import FastEncoder

    store = open_read_only(path, our_keys)
    graph = LedgerGraph.build(store.graph_scans, page_size=page_size, pool_size=pool_size, readers=readers)  # type: ignore[arg-type]
    gc.collect()
    before = vm_rss_mb()
    reset_peak()
    started = time.perf_counter()
    ids = pair_set(graph, me, other)
    pair_seconds = time.perf_counter() - started
    after_pair_set = vm_rss_mb()
    peak_pair_set = hwm_mb()
    started = time.perf_counter()
    encoder = FastEncoder(ids, bytes(16))
    sent = 0
    batch = 64
    while sent < symbols:  # doubling batches, as the protocol asks for them
        encoder.next_batch_bytes(min(batch, symbols - sent))
        sent += min(batch, symbols - sent)
        batch *= 2
    encode_seconds = time.perf_counter() - started
    return {
        "graph_transactions": graph.size,
        "pair_set_ids": len(ids),
        "symbols": symbols,
        "rss_before_mb": before,
        "rss_after_pair_set_mb": after_pair_set,
        "peak_rss_pair_set_mb": peak_pair_set,
        "rss_after_encode_mb": vm_rss_mb(),
        "peak_rss_reconciling_mb": hwm_mb(),
        "pair_set_seconds": round(pair_seconds, 2),
        "encode_seconds": round(encode_seconds, 2),
    }


def measure_baseline(path: str, n: int, page_size: int) -> dict[str, Any]:
    import cbor2

    from agent.ledger.vault import TransactionStatus

    store = open_read_only(path)
    nt = store.schema.node_transactions
    gc.collect()
    before = vm_rss_mb()
    graph: dict[bytes, list[bytes]] = {}
    last = ""
    while len(graph) < n:
        query = (
            nt.select(nt.tx_id, nt.transaction_value)
            .where((nt.tx_id > last) & (nt.status == TransactionStatus.VERIFIED.value))
            .order_by(nt.tx_id)
            .limit(min(page_size, n - len(graph)))
        )
        rows = store.database.execute(query).fetchall()
        if not rows:
            break
        for tx_id, blob in rows:
            obj = cbor2.loads(blob)
            graph[bytes.fromhex(tx_id)] = list(dict.fromkeys(bytes(r[0]) for r in (*obj[1], *obj[2])))
        last = rows[-1][0]
    gc.collect()
    after = vm_rss_mb()
    return {"transactions": len(graph), "rss_growth_mb": round(after - before, 1)}


def _child(send: Any, func: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    send.send(func(*args))
    send.close()


def in_fresh_process(func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """func(*args) in a spawned, non-daemon process (the graph's readers may be processes too)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, func, args))
    child.start()
    send.close()
    result: dict[str, Any] = receive.recv()
    child.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", required=True, help="an existing SQLite ledger (opened read-only)")
    parser.add_argument("--page-size", type=int, default=10_000, help="transactionReaderPageSize")
    parser.add_argument("--pool-size", type=int, default=2, help="transactionReaderPoolSize")
    parser.add_argument("--readers", choices=("process", "thread"), default="process")
    parser.add_argument("--baseline-n", type=int, default=100_000)
    parser.add_argument("--our-keys", choices=("fixture", "none"), default="fixture")
    parser.add_argument("--me", default=party_name(0), help="our name in the set for the pair")
    parser.add_argument("--other", default=party_name(1), help="the other party's name")
    parser.add_argument("--symbols", type=int, default=1000, help="symbols encoded from the set for the pair")
    parser.add_argument("--skip", choices=("baseline", "reconciliation"), action="append", default=[])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="graph-memory-") as scratch:
        # A copy: opening the store applies newer migrations, and the given ledger must stay as it is.
        path = str(Path(scratch) / "ledger.db")
        shutil.copyfile(args.reuse, path)
        result = in_fresh_process(
            measure_graph, path, args.page_size, args.pool_size, args.readers, args.our_keys
        )
        if "reconciliation" not in args.skip:
            result["reconciliation"] = in_fresh_process(
                measure_reconciliation, path, args.page_size, args.pool_size, args.readers,
                args.our_keys, args.me, args.other, args.symbols,
            )  # fmt: skip
        baseline = (
            in_fresh_process(measure_baseline, path, args.baseline_n, args.page_size)
            if "baseline" not in args.skip
            else {"transactions": 0, "rss_growth_mb": 0.0}
        )
    n = result["transactions"]
    per_tx = baseline["rss_growth_mb"] * 2**20 / max(baseline["transactions"], 1)
    result["baseline"] = {
        "kind": "dict {id bytes: [parent id bytes]}",
        "measured_transactions": baseline["transactions"],
        "measured_rss_growth_mb": baseline["rss_growth_mb"],
        "bytes_per_tx": round(per_tx, 1),
        "extrapolated_mb_for_all": round(per_tx * n / 2**20, 1),
        "extrapolated": baseline["transactions"] < n,
    }
    say(
        f"graph of {n:,} transactions: RSS {result['rss_before_mb']} MB before, "
        f"{result['rss_after_build_mb']} MB after build (peak {result['peak_rss_build_mb']} MB), "
        f"arrays {result['arrays_bytes_per_tx']} B/tx, RSS growth {result['rss_growth_bytes_per_tx']} B/tx, "
        f"build {result['build_seconds']} s ({args.pool_size} {args.readers} readers, pages of {args.page_size}); "
        f"first check {result['check_seconds']} s (peak {result['peak_rss_after_check_mb']} MB), a later check "
        f"reading the states again {result['recheck_seconds']} s (peak {result['peak_rss_after_recheck_mb']} MB)"
    )
    if "reconciliation" in result:
        r = result["reconciliation"]
        say(
            f"reconciliation: set for ({args.me}, {args.other}) of {r['pair_set_ids']:,} ids in "
            f"{r['pair_set_seconds']} s, {r['symbols']} symbols in {r['encode_seconds']} s; RSS "
            f"{r['rss_before_mb']} MB before, peak {r['peak_rss_pair_set_mb']} MB computing the set, "
            f"peak {r['peak_rss_reconciling_mb']} MB with the encoder"
        )
    say(
        f"baseline dict: {baseline['rss_growth_mb']} MB for {baseline['transactions']:,} transactions "
        f"= {round(per_tx)} B/tx, extrapolated linearly to {n:,}: "
        f"{result['baseline']['extrapolated_mb_for_all']} MB"
    )
    emit({"benchmark": "graph_memory", "args": vars(args), "machine": machine(), **result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

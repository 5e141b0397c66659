"""Rateless IBLT codec: encode time, decode time and symbols per difference, pure Python.

    python bench/riblt_codec.py [--n 100000] [--d 1000] [--seeds 5] [--batch 1]

For each seed: two sets of --n random ids sharing all but --d (split evenly between the sides). The
responder's encoder is timed producing the symbols the requester needed ("encode"), plus the cost of
symbol 0 alone (the identical-sets exchange); the requester's decoder is timed over the same symbols
("decode": its own encoder's symbols, subtraction and peeling). Symbols are streamed in --batch
sized batches, so symbols_used over-counts by at most batch - 1. Times are medians over the seeds.

    python bench/riblt_codec.py --compare [--sizes 100000,1000000] [--symbols 1400,140000]

Times riblt.Encoder (the baseline, one run) against riblt_numpy.FastEncoder (median of --repeats) in
the same run: a fresh encoder over N random ids producing the first k symbols in one call, for
every N in --sizes and k in --symbols (1,400 and 140,000 are about 1.4 symbols per difference for
d = 1,000 and d = 100,000); the two symbol lists are checked equal.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.ledgersync.riblt import SYMBOL_SIZE, Decoder, Encoder
from agent.ledgersync.riblt_numpy import FastEncoder
from bench.common import emit, machine, median, quiet_gc, say

SALT = bytes(range(16))


def one_seed(n: int, d: int, seed: int, batch: int) -> dict[str, float]:
    rng = random.Random(seed)
    shared = [rng.randbytes(32) for _ in range(n - (d + 1) // 2)]
    only_local = [rng.randbytes(32) for _ in range(d // 2)]
    only_remote = [rng.randbytes(32) for _ in range(d - d // 2)]

    started = time.perf_counter()
    Encoder(shared + only_remote, SALT).next_symbols(1)
    encode_one = time.perf_counter() - started

    started = time.perf_counter()
    remote = Encoder(shared + only_remote, SALT)
    encode = time.perf_counter() - started
    started = time.perf_counter()
    decoder = Decoder.from_ids(shared + only_local, SALT)
    decode = time.perf_counter() - started

    while not decoder.decoded:
        started = time.perf_counter()
        next_batch = remote.next_symbols(batch)
        encode += time.perf_counter() - started
        started = time.perf_counter()
        decoder.add_remote(next_batch)
        decode += time.perf_counter() - started
    assert decoder.remote_only() == set(only_remote)
    assert decoder.local_only() == set(only_local)
    return {
        "symbols": decoder.symbols_used,
        "per_difference": decoder.symbols_used / max(d, 1),
        "encode_s": encode,
        "encode_one_symbol_s": encode_one,
        "decode_s": decode,
    }


def compare_encoders(n: int, symbols: int, repeats: int) -> dict[str, float]:
    rng = random.Random(n)
    ids = [rng.randbytes(32) for _ in range(n)]
    started = time.perf_counter()
    expected = Encoder(ids, SALT).next_symbols(symbols)
    pure = time.perf_counter() - started
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        got = FastEncoder(ids, SALT).next_symbols(symbols)
        times.append(time.perf_counter() - started)
        assert got == expected, "FastEncoder's symbols differ from Encoder's"
    fast = median(times)
    return {
        "n": n,
        "symbols": symbols,
        "pure_s": round(pure, 3),
        "numpy_s": round(fast, 3),
        "speedup": round(pure / fast, 1),
    }


def compare_main(args: argparse.Namespace) -> None:
    rows = []
    with quiet_gc():
        for n in (int(x) for x in args.sizes.split(",")):
            for symbols in (int(x) for x in args.symbols.split(",")):
                row = compare_encoders(n, symbols, args.repeats)
                rows.append(row)
                say(
                    f"N = {n}, {symbols} symbols: pure {row['pure_s']:.3f} s, "
                    f"numpy {row['numpy_s']:.3f} s, {row['speedup']}x"
                )
    emit({"bench": "riblt_encoders", "repeats": args.repeats, "runs": rows, "machine": machine()})


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="ids per side")
    parser.add_argument("--d", type=int, default=1000, help="ids in the symmetric difference")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="symbols per streamed batch")
    parser.add_argument("--compare", action="store_true", help="pure vs numpy encoder instead")
    parser.add_argument("--sizes", default="100000,1000000", help="--compare: set sizes N")
    parser.add_argument("--symbols", default="1400,140000", help="--compare: symbols produced")
    parser.add_argument("--repeats", type=int, default=3, help="--compare: numpy runs (median)")
    args = parser.parse_args()
    if args.compare:
        compare_main(args)
        return

    runs = []
    with quiet_gc():
        for seed in range(args.seeds):
            run = one_seed(args.n, args.d, seed, args.batch)
            runs.append(run)
            say(
                f"seed {seed}: {run['symbols']} symbols ({run['per_difference']:.3f}/difference), "
                f"encode {run['encode_s']:.3f} s, decode {run['decode_s']:.3f} s, "
                f"symbol 0 alone {run['encode_one_symbol_s']:.3f} s"
            )
    per_difference = [r["per_difference"] for r in runs]
    result = {
        "bench": "riblt_codec",
        "n": args.n,
        "d": args.d,
        "seeds": args.seeds,
        "batch": args.batch,
        "symbols_per_difference_mean": round(statistics.mean(per_difference), 4),
        "symbols_per_difference_max": round(max(per_difference), 4),
        "bytes_per_difference_mean": round(statistics.mean(per_difference) * SYMBOL_SIZE, 1),
        "encode_s_median": round(median([r["encode_s"] for r in runs]), 3),
        "encode_one_symbol_s_median": round(median([r["encode_one_symbol_s"] for r in runs]), 3),
        "decode_s_median": round(median([r["decode_s"] for r in runs]), 3),
        "machine": machine(),
    }
    say(
        f"N = {args.n}, d = {args.d}: {result['symbols_per_difference_mean']} symbols per difference "
        f"(max {result['symbols_per_difference_max']}), encode {result['encode_s_median']} s, "
        f"decode {result['decode_s_median']} s, symbol 0 alone {result['encode_one_symbol_s_median']} s"
    )
    emit(result)


if __name__ == "__main__":
    main()

"""`python -m tests.simulation --seeds 5000 [--start N] [--db postgresql]` or `--seed N`: run seeds,
print failing ones."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.simulation.network import BACKENDS, Template
from tests.simulation.run import quiet_logs, replay_command, run_seed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation", description=__doc__)
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds to run (default 200)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--seed", type=int, help="run this one seed and print its whole story")
    parser.add_argument("--every", type=int, default=100, help="print progress every N seeds")
    parser.add_argument(
        "--db", choices=BACKENDS, default="sqlite", help="the nodes' databases (default sqlite)"
    )
    args = parser.parse_args(argv)
    seeds = [args.seed] if args.seed is not None else list(range(args.start, args.start + args.seeds))
    began = time.perf_counter()
    with quiet_logs(), tempfile.TemporaryDirectory(prefix="ledger-sim-") as tmp:
        template = Template.create(Path(tmp) / "template", args.db)
        try:
            failed = _run(seeds, template, Path(tmp), args, began)
        finally:
            template.drop()
    if failed:
        print("failing seeds:", " ".join(map(str, failed)))
        print("replay one with:", replay_command(failed[0], args.db))
        return 1
    return 0


def _run(
    seeds: list[int], template: Template, tmp: Path, args: argparse.Namespace, began: float
) -> list[int]:
    failed: list[int] = []
    for done, seed in enumerate(seeds, start=1):
        result = run_seed(seed, template, tmp)
        if not result.ok:
            failed.append(seed)
            print(result.report(), flush=True)
        elif args.seed is not None:
            print(f"seed {seed} ({result.profile}) passed in {result.seconds:.2f} s")
            print("\n".join(f"  operation: {e}" for e in result.log))
            print("\n".join(f"  event: {e}" for e in result.events))
        if done % args.every == 0 or done == len(seeds):
            elapsed = time.perf_counter() - began
            print(f"{done}/{len(seeds)} seeds, {len(failed)} failed, {elapsed:.1f} s", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())

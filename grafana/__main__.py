"""`python -m grafana` writes grafana/dashboards/*.json; `--check` only says whether they are stale."""

from __future__ import annotations

import argparse
import sys

from grafana.render import OUT, stale, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON differs from the Python"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for name in problems:
            print(f"{OUT / name}: differs from the dashboards' Python; run `python -m grafana`")
        return 1 if problems else 0
    for path in write():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

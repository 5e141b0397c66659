"""The seeded network simulation in CI: seeds 0..199, and every seed that once failed, pinned.

A failing seed's message carries the command that replays it (`python -m tests.simulation --seed N`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.simulation.network import Template
from tests.simulation.run import run_seed

CI_SEEDS = range(200)
# Seeds that once found a bug (docs/simulation.md says which). The workload has grown since, so they
# now replay other stories; each bug also has a deterministic test (tests/flows/test_engine_timers.py).
PINNED: tuple[int, ...] = (204, 219, 234, 366, 510, 756, 872, 2203, 3303)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [*CI_SEEDS, *(s for s in PINNED if s not in CI_SEEDS)])
def test_seed_keeps_every_invariant(seed: int, template: Template, tmp_path: Path) -> None:
    result = run_seed(seed, template, tmp_path)
    assert result.ok, result.report()


# The same stories on PostgreSQL (a database per node, per seed): fewer seeds, for its isolation and
# locking rather than for more stories. `python -m tests.simulation --db postgresql --seeds N` runs more.
PG_SEEDS = range(10)


@pytest.mark.slow
@pytest.mark.parametrize("seed", PG_SEEDS)
def test_seed_keeps_every_invariant_on_postgresql(seed: int, pg_template: Template, tmp_path: Path) -> None:
    result = run_seed(seed, pg_template, tmp_path)
    assert result.ok, result.report()

"""The seeded network simulation in CI: seeds 0..199, and every seed that once failed, pinned.

A failing seed's message carries the command that replays it (`python -m tests.simulation --seed N`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.simulation.network import Template
from tests.simulation.run import run_seed

CI_SEEDS = range(200)
# Seeds that once found a bug, kept as regression tests (docs/simulation.md says which bug each found).
PINNED: tuple[int, ...] = ()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [*CI_SEEDS, *(s for s in PINNED if s not in CI_SEEDS)])
def test_seed_keeps_every_invariant(seed: int, template: Template, tmp_path: Path) -> None:
    result = run_seed(seed, template, tmp_path)
    assert result.ok, result.report()

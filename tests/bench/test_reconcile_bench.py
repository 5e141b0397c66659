"""The reconciliation benchmark: the Corda-style baseline's codec, and one tiny end-to-end run.

No timings are asserted: speed is reported by bench/reconcile.py, never checked here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import eppstein
from tests.bench.scripts import run_script


def random_ids(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 32), dtype=np.uint8)


def as_set(rows: np.ndarray) -> set[bytes]:
    return {bytes(r) for r in rows}


@pytest.mark.parametrize(("only_theirs", "only_mine"), [(0, 0), (1, 0), (0, 1), (7, 5), (60, 0), (300, 200)])
def test_baseline_decodes_small_differences_exactly(only_theirs: int, only_mine: int) -> None:
    ids = random_ids(2000 + only_theirs + only_mine, seed=only_theirs * 1000 + only_mine)
    common, theirs_extra, mine_extra = ids[:2000], ids[2000 : 2000 + only_theirs], ids[2000 + only_theirs :]
    mine = np.concatenate([common, mine_extra])
    theirs = np.concatenate([common, theirs_extra])

    result = eppstein.reconcile(mine.tobytes(), theirs.tobytes())

    assert result.decoded
    assert set(result.missing_here) == as_set(theirs_extra)
    assert set(result.missing_there) == as_set(mine_extra)
    assert result.round_trips == 1 + len(result.ibf_cells)
    assert result.sent == eppstein.ESTIMATOR_BYTES + eppstein.CELL_BYTES * sum(result.ibf_cells)


def test_estimator_and_smallest_filter_are_the_notes_figures() -> None:
    # set-reconciliation-notes.md: 112,640 B for the estimator; 113,168 B in all for one difference.
    assert eppstein.ESTIMATOR_BYTES == 112_640
    ids = random_ids(1001, seed=3)
    result = eppstein.reconcile(ids[:1000].tobytes(), ids.tobytes())
    assert result.decoded
    assert result.sent == 113_168


def test_difference_cells_equal_whole_set_cells() -> None:
    # reconcile() encodes only the ids one side lacks: common ids must cancel exactly.
    ids = random_ids(3000, seed=4)
    mine, theirs = ids[:2500], ids[400:]
    whole = eppstein.encode_ibf(eppstein.as_words(theirs.tobytes()), 99) - eppstein.encode_ibf(
        eppstein.as_words(mine.tobytes()), 99
    )
    a, b = eppstein.as_words(mine.tobytes()), eppstein.as_words(theirs.tobytes())
    only = eppstein.encode_ibf(eppstein.only_in(b, a), 99) - eppstein.encode_ibf(eppstein.only_in(a, b), 99)
    assert np.array_equal(whole.count, only.count)
    assert np.array_equal(whole.ids, only.ids)
    assert np.array_equal(whole.check, only.check)
    strata = eppstein.encode_strata(b) - eppstein.encode_strata(a)
    strata_only = eppstein.encode_strata(eppstein.only_in(b, a)) - eppstein.encode_strata(
        eppstein.only_in(a, b)
    )
    assert np.array_equal(strata.ids, strata_only.ids)


def test_strata_estimate_is_near_the_difference() -> None:
    ids = random_ids(12_000, seed=5)
    a = eppstein.as_words(ids[:10_000].tobytes())
    b = eppstein.as_words(ids[1000:].tobytes())  # 1,000 + 2,000 differences
    estimate = eppstein.estimate_difference(eppstein.encode_strata(a), eppstein.encode_strata(b))
    assert 1500 <= estimate <= 6000


def test_gives_up_after_max_ibfs_when_the_estimate_is_too_low() -> None:
    ids = random_ids(1500, seed=6)
    result = eppstein.reconcile(ids[:1000].tobytes(), ids.tobytes(), estimate=1)

    assert not result.decoded
    assert result.ibf_cells == [12, 24, 48, 96, 192]
    assert result.round_trips == 6
    assert result.sent == eppstein.ESTIMATOR_BYTES + eppstein.CELL_BYTES * 372
    assert result.failure is not None and "maxNumberOfIbfFilterFlows" in result.failure
    assert result.missing_here == []


def test_gives_up_when_a_filter_exceeds_the_message_size() -> None:
    ids = random_ids(4000, seed=7)
    result = eppstein.reconcile(ids[:1000].tobytes(), ids.tobytes(), max_message_size=100_000)

    assert not result.decoded
    assert result.ibf_cells == []
    assert result.round_trips == 1
    assert result.sent == eppstein.ESTIMATOR_BYTES
    assert result.failure is not None and "MaxMessageSizeExceededException" in result.failure


@pytest.mark.slow
def test_reconcile_script_end_to_end(tmp_path: Path) -> None:
    """Two real agent processes, 300 transactions, the requester lacking the last 20."""
    output = run_script(
        "reconcile.py",
        "--n", "300", "--d", "20", "--workers", "0",
        "--cache", str(tmp_path / "cache"), "--scratch", str(tmp_path),
    )  # fmt: skip
    result = json.loads(output.strip().splitlines()[-1])
    for key in (
        "n", "d", "bytes", "round_trips", "exchanges", "seconds", "floor_bytes", "baseline_bytes",
        "baseline_round_trips", "baseline_decoded", "naive_bytes", "naive_seconds", "agent_rss_mb",
        "agent_hwm_mb", "missing",
    ):  # fmt: skip
        assert key in result, key
    assert (result["n"], result["d"]) == (300, 20)
    assert result["missing"] == 20
    assert result["floor_bytes"] == 640
    # 20 of 296 differ: the symbols must cost less than the responder's whole id list.
    assert result["bytes"] < result["naive_bytes"]
    assert result["round_trips"] == result["exchanges"] - 1
    assert result["baseline_decoded"]
    assert result["agent_rss_mb"] > 0
    assert not list(tmp_path.glob("bench-reconcile-*")), "the run's folder was not removed"

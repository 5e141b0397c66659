"""The management-plane benchmark end to end, tiny: its JSON and that nothing failed; never its times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.bench.scripts import run_script

CALLS = ("health", "rpc_in_progress", "rpc_status", "jolokia_read", "jolokia_exec")


@pytest.mark.slow
def test_management_script_end_to_end(tmp_path: Path) -> None:
    output = run_script(
        "management.py",
        "--rate", "20", "--seconds", "1", "--parties", "20", "--scrapes", "5", "--warmup", "0.2",
        "--scratch", str(tmp_path),
    )  # fmt: skip
    lines = output.strip().splitlines()
    result = json.loads(lines[-1])

    measured = {
        record["measurement"]: record
        for record in (json.loads(line) for line in lines if line.startswith('{"measurement"'))
    }
    assert set(measured) == {*CALLS, "metrics", "metrics_baseline"}
    for name in CALLS:
        assert measured[name]["requests"] == 20, name
        assert measured[name]["errors"] == 0, name
        for key in ("achieved_rps", "p50_ms", "p99_ms", "max_ms", "errors"):
            assert key in result[name], (name, key)
    for name in CALLS[1:]:
        assert "p99_ratio" in result[name]
    for key in (
        "errors", "worst_p99_ms", "scrape_median_ms", "scrape_p99_ms", "scrape_bytes", "scrape_peers",
        "scrape_baseline_median_ms", "scrape_baseline_bytes", "scrape_ratio", "goal_p99_met",
        "goal_scrape_met", "statuses",
    ):  # fmt: skip
        assert key in result, key
    assert result["errors"] == 0
    assert sum(result["statuses"].values()) == 20
    # Every seeded party is a peer in the scrape; the node without statuses has none.
    assert result["scrape_peers"] == 20
    assert measured["metrics_baseline"]["peers"] == 0
    assert result["scrape_bytes"] > result["scrape_baseline_bytes"]
    assert not list(tmp_path.glob("bench-management-*")), "the run's folder was not removed"

"""The dashboards validated against Grafana's own schema package, @grafana/schema (npm, installed in
tests/js by `make`), with the TypeScript compiler: tests/js/validate-dashboards.mjs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from grafana.modern import SCHEMA_VERSION
from grafana.render import DASHBOARDS, OUT

JS = Path(__file__).parent / "js"
VALIDATOR = JS / "validate-dashboards.mjs"


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is not installed (the JavaScript clients' tests need it)"
    for package in ("@grafana/schema", "typescript"):
        assert (JS / "node_modules" / package).is_dir(), (
            f"{package} missing: run `make tests/js/node_modules/.installed`"
        )
    return subprocess.run(
        [node, str(VALIDATOR), *map(str, paths)], capture_output=True, text=True, timeout=120, check=False
    )


def test_the_committed_dashboards_have_no_violation() -> None:
    result = validate(*(OUT / name for name in DASHBOARDS))
    assert result.returncode == 0, result.stdout + result.stderr
    for name in DASHBOARDS:
        assert f"{name}: 0 violations" in result.stdout
    # The package declares the schemaVersion the dashboards carry.
    assert f"schemaVersion {SCHEMA_VERSION}" in result.stdout


def test_the_validator_finds_what_grafana_would_reject(tmp_path: Path) -> None:
    dashboard = json.loads((OUT / "ledgeragent-node.json").read_text())
    dashboard["schemaVersion"] = 12
    stat, other = [p for p in dashboard["panels"] if p["type"] == "stat"][:2]
    stat["fieldConfig"]["defaults"]["thresholds"]["steps"] = ""  # what grafanalib's Stat wrote
    # A field Grafana dropped (TypeScript reports an excess property once an object has no other error).
    other["span"] = 4
    timeseries = next(p for p in dashboard["panels"] if p["type"] == "timeseries")
    del timeseries["options"]["legend"]["showLegend"]
    dashboard["templating"]["list"][0]["type"] = "datasources"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(dashboard))

    result = validate(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "schemaVersion is 12" in out and "declares 42" in out
    assert (
        f"panel {stat['id']} {json.dumps(stat['title'])} (stat) fieldConfig.defaults.thresholds.steps" in out
    )
    assert f"panel {other['id']} {json.dumps(other['title'])} (stat) span" in out
    assert "'\"span\"' does not exist" in out
    assert "showLegend" in out
    assert '"datasources"' in out
    assert "broken.json: 0 violations" not in out


@pytest.mark.parametrize("argument", [[], ["/nonexistent/dashboard.json"]])
def test_the_validator_fails_without_a_dashboard(argument: list[str]) -> None:
    result = validate(*map(Path, argument))
    assert result.returncode != 0

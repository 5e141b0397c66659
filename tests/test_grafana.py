"""The dashboards in grafana/: the committed JSON is what the Python renders, the structure is one
Grafana can lay out, and every PromQL expression parses (promtool) and uses only mbeans.metrics names.

Whether the expressions return data from real agents is tested in tests/test_monitoring_processes.py.
Import into Grafana itself is not tested: no Grafana can be installed here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana import hospital_rows, ledger_recovery_rows
from grafana.__main__ import main
from grafana.render import DASHBOARDS, OUT, as_json, stale
from mbeans import metrics as m

PANEL_TYPES = {"row", "stat", "timeseries"}
BUILTINS = {"__rate_interval", "__interval", "__range", "__all"}
# What Grafana would put in place of a variable; $node is filled in per test.
STAND_INS = {"__rate_interval": "30s", "__interval": "15s", "__range": "5m"}


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: as_json(build()) for name, build in DASHBOARDS.items()}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel["title"], target


def row_targets(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(row title, panel title, target) of every query; a panel follows its row (none is collapsed)."""
    row = ""
    for panel in panels(dashboard):
        if panel["type"] == "row":
            row = panel["title"]
        for target in panel.get("targets", []):
            yield row, panel["title"], target


def concrete(expr: str, node: str) -> str:
    """expr with Grafana's variables replaced as it would replace them, `$node` by node."""
    values = {**STAND_INS, "node": node}
    return re.sub(r"\$(\w+)", lambda found: values[found.group(1)], expr)


def test_the_committed_json_is_what_the_python_renders() -> None:
    assert stale() == [], "run `python -m grafana` and commit grafana/dashboards/"
    assert main(["--check"]) == 0


def test_the_check_notices_an_edited_file(tmp_path: Path) -> None:
    for path in OUT.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    assert stale(tmp_path) == []
    edited = next(iter(DASHBOARDS))
    (tmp_path / edited).write_text(
        (tmp_path / edited).read_text().replace('"ledger-agent', '"ledger agent', 1)
    )
    (tmp_path / "stray.json").write_text("{}")
    assert stale(tmp_path) == [edited, "stray.json"]


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_the_structure(name: str) -> None:
    dashboard = dashboards()[name]
    assert dashboard["uid"] and dashboard["title"]
    (source,) = dashboard["__inputs"]
    assert source["type"] == "datasource" and source["pluginId"] == "prometheus"
    declared = "${" + source["name"] + "}"

    all_panels = list(panels(dashboard))
    ids = [p["id"] for p in all_panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in all_panels:
        assert panel["type"] in PANEL_TYPES, panel["title"]
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']} runs past the 24 columns"
        cells = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": declared}, panel["title"]
            assert panel["targets"], f"{panel['title']} has no query"

    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "node" in variables
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": declared}
    for title, target in targets(dashboard):
        assert target["expr"] and target["refId"], title
        used = set(re.findall(r"\$(\w+)", target["expr"]))
        assert used <= variables | BUILTINS, f"{title}: undefined {sorted(used - variables - BUILTINS)}"
        names = set(re.findall(r"\b(ledgeragent_[a-z_]+)", target["expr"]))
        assert names and names <= m.NAMES, f"{title}: unknown metrics {sorted(names - m.NAMES)}"
    refs = [[t["refId"] for t in p.get("targets", [])] for p in all_panels]
    assert all(len(r) == len(set(r)) for r in refs), "refIds are unique within a panel"


def test_a_flow_hospital_row_on_each_dashboard_shows_every_hospital_metric() -> None:
    hospital = {metric.name for metric in m.ALL if metric.name.startswith(m.PREFIX + "hospital_")}
    assert len(hospital) == 5
    for name, dashboard in dashboards().items():
        used = {
            found
            for row, _, target in row_targets(dashboard)
            if row == hospital_rows.TITLE
            for found in re.findall(r"\b(ledgeragent_[a-z_]+)", target["expr"])
        }
        assert used, f"{name} has no {hospital_rows.TITLE!r} row"
        if "node" in name:
            assert used == hospital, sorted(hospital - used)


def test_the_node_dashboard_has_a_ledger_recovery_row_with_every_recovery_metric() -> None:
    recovery = {metric.name for metric in m.ALL if metric.name.startswith(m.PREFIX + "ledger_recovery_")}
    assert len(recovery) == 5
    used = {
        found
        for row, _, target in row_targets(dashboards()["ledgeragent-node.json"])
        if row == ledger_recovery_rows.TITLE
        for found in re.findall(r"\b(ledgeragent_[a-z_]+)", target["expr"])
    }
    assert used == recovery, sorted(recovery - used)


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (.ci/run installs it)"
)
def test_every_expression_parses(tmp_path: Path) -> None:
    rules = [
        {
            "record": f"check:{name.removesuffix('.json').replace('-', '_')}:{i}",
            "expr": concrete(t["expr"], "a:1"),
        }
        for name, dashboard in dashboards().items()
        for i, (_, t) in enumerate(targets(dashboard))
    ]
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
    # promtool notices a broken expression (the check is not vacuous).
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": [{"record": "x:y", "expr": "sum(("}]}]})
    )
    assert (
        subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, check=False).returncode
        == 1
    )

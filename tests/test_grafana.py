"""The dashboards in grafana/: the committed JSON is what the Python renders, the structure is one
Grafana can lay out, the datasource is the provisioned one (grafana/provisioning/), stats are coloured
by what their value means, legends name nodes, and every PromQL expression parses (promtool) and uses
only mbeans.metrics names.

Validation against @grafana/schema's types is tests/test_grafana_schema.py; whether the expressions
return data from real agents is tests/test_monitoring_processes.py. Import into Grafana itself is not
tested: no Grafana can be installed here.
"""

from __future__ import annotations

import json
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
from grafana.modern import SCHEMA_VERSION
from grafana.panels import DATASOURCE, DATASOURCE_UID, DATASOURCE_VARIABLE, NODE_LABEL
from grafana.render import DASHBOARDS, OUT, as_json, stale
from mbeans import metrics as m

PROVISIONING = Path(__file__).parent.parent / "grafana" / "provisioning"
# Grafana's named colours the stats use, and its theme's text colour for quantities neither good nor bad.
COLORS = {"green", "yellow", "orange", "red", "text"}

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
    assert dashboard["schemaVersion"] == SCHEMA_VERSION == 42

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
            assert panel["datasource"] == DATASOURCE, panel["title"]
            assert panel["targets"], f"{panel['title']} has no query"

    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert "node" in variables
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "datasource":
            assert variable["datasource"] == DATASOURCE
    for title, target in targets(dashboard):
        assert target["expr"] and target["refId"], title
        assert target["datasource"] == DATASOURCE, title
        used = set(re.findall(r"\$(\w+)", target["expr"]))
        assert used <= variables | BUILTINS, f"{title}: undefined {sorted(used - variables - BUILTINS)}"
        names = set(re.findall(r"\b(ledgeragent_[a-z_]+)", target["expr"]))
        assert names and names <= m.NAMES, f"{title}: unknown metrics {sorted(names - m.NAMES)}"
    refs = [[t["refId"] for t in p.get("targets", [])] for p in all_panels]
    assert all(len(r) == len(set(r)) for r in refs), "refIds are unique within a panel"


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_the_datasource_is_the_provisioned_one_and_can_be_switched(name: str) -> None:
    """No `${DS_PROMETHEUS}` import input (file provisioning cannot fill it in): every panel, query and
    variable names `$datasource`, a datasource variable whose default is the provisioned uid."""
    dashboard = dashboards()[name]
    assert "__inputs" not in dashboard
    assert "DS_PROMETHEUS" not in json.dumps(dashboard)
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["name"] == DATASOURCE_VARIABLE and variable["query"] == "prometheus"
    assert variable["current"]["value"] == DATASOURCE_UID
    assert DATASOURCE == {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
    # The variable comes first: the others' queries need it.
    assert dashboard["templating"]["list"][0] is variable

    config = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["uid"] == DATASOURCE_UID and source["type"] == "prometheus" and source["url"]


def test_the_dashboard_provider_loads_the_dashboards_folder() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "ledger-agent.yml").read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    assert sorted(p.name for p in OUT.glob("*.json")) == sorted(DASHBOARDS)


@pytest.mark.parametrize("name", list(DASHBOARDS))
def test_every_panel_has_thresholds_from_a_base_colour(name: str) -> None:
    """A list of steps from a base colour (grafanalib's Stat wrote "", which Grafana's data library
    throws on), rising; stats map values to text where a number alone says little."""
    shown = [p for p in panels(dashboards()[name]) if p["type"] != "row"]
    assert any(p["type"] == "stat" for p in shown)
    for panel in shown:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert isinstance(steps, list) and steps, f"{panel['title']}: thresholds.steps {steps!r}"
        assert steps[0]["value"] is None, f"{panel['title']}: the first step is the base"
        values = [step["value"] for step in steps[1:]]
        assert all(isinstance(v, (int, float)) for v in values) and values == sorted(set(values)), panel[
            "title"
        ]
        assert {step["color"] for step in steps} <= COLORS, panel["title"]
        for mapping in panel["fieldConfig"]["defaults"]["mappings"]:
            assert mapping["type"] == "value" and mapping["options"], panel["title"]


def colour(panel: dict[str, Any], value: float) -> tuple[str, str | None]:
    """(colour, text) Grafana shows for value: a value mapping's, else the highest step reached."""
    defaults = panel["fieldConfig"]["defaults"]
    for mapping in defaults["mappings"]:
        found = mapping["options"].get(str(int(value)) if value == int(value) else str(value))
        if found:
            return found["color"], found["text"]
    reached = [
        s["color"] for s in defaults["thresholds"]["steps"] if s["value"] is None or value >= s["value"]
    ]
    return reached[-1], None


def stat_titled(name: str, title: str) -> dict[str, Any]:
    (panel,) = [p for p in panels(dashboards()[name]) if p["type"] == "stat" and p["title"] == title]
    return panel


def test_stats_colour_their_values_by_what_they_mean() -> None:
    node = "ledgeragent-node.json"
    consistent = stat_titled(node, "Self-consistent")
    assert colour(consistent, 0) == ("red", "not consistent")
    assert colour(consistent, 1) == ("green", "consistent")
    assert consistent["options"]["colorMode"] == "background"
    assert colour(stat_titled(node, "Initialised"), 0) == ("orange", "building")
    assert colour(stat_titled(node, "Initialised"), 1) == ("green", "built")
    for title in ("Consistency errors", "Failed peers", "Hospitalised", "Failed", "Unrecoverable"):
        assert colour(stat_titled(node, title), 0)[0] == "green", title
        assert colour(stat_titled(node, title), 3)[0] == "red", title
    assert colour(stat_titled(node, "Missing transactions"), 2)[0] == "orange"
    # Ages turn red where their alert fires: FinalityInFlightTooLong at 30 min, LedgerRecoveryStalled at 10.
    assert colour(stat_titled(node, "Oldest IN_FLIGHT"), 1799)[0] == "orange"
    assert colour(stat_titled(node, "Oldest IN_FLIGHT"), 1800)[0] == "red"
    assert colour(stat_titled(node, "Since the last progress"), 600)[0] == "red"
    assert colour(stat_titled(node, "Scheduled"), 5)[0] == "text"
    network = "ledgeragent-network.json"
    assert colour(stat_titled(network, "Nodes not self-consistent"), 0)[0] == "green"
    assert colour(stat_titled(network, "Nodes not self-consistent"), 1)[0] == "red"


def test_legends_name_nodes_by_their_legal_name() -> None:
    """`{{node}}`, never `{{instance}}` (127.0.0.1:port): the query joins ledgeragent_node_info's `node`."""
    seen = 0
    for name, dashboard in dashboards().items():
        for title, target in targets(dashboard):
            legend = target["legendFormat"]
            assert "{{instance}}" not in legend, f"{name}: {title}"
            if "{{" + NODE_LABEL + "}}" in legend:
                seen += 1
                assert target["expr"].endswith(
                    f"* on (instance) group_left ({NODE_LABEL}) max by (instance, {NODE_LABEL}) ({m.NODE_INFO.name})"
                ), f"{name}: {title}"
    assert seen >= 10


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

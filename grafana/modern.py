"""grafanalib 0.7.1's JSON brought to what current Grafana stores (schemaVersion 42, @grafana/schema).

grafanalib writes every field it knows, unset ones as null, and fields Grafana has dropped since
schema 12 (`rows`, `style`, a panel's `span`, a query's `intervalFactor`, ...). @grafana/schema's
types have no null for them and no place for the dropped ones, so they are left out here; nothing else
is changed. tests/js/validate-dashboards.mjs checks the result against the package's types.
"""

from __future__ import annotations

from typing import Any

# What @grafana/schema 13.2.3 declares (defaultDashboard.schemaVersion); the validator checks it.
SCHEMA_VERSION = 42

DASHBOARD_LEGACY = frozenset({"rows", "style", "hideControls", "sharedCrosshair"})
TIMEPICKER_LEGACY = frozenset({"time_options"})
PANEL_LEGACY = frozenset({"editable", "error", "height", "span", "minSpan"})
# All a row has in current Grafana (RowPanel); grafanalib gives it every field of a panel.
ROW_FIELDS = frozenset({"collapsed", "datasource", "gridPos", "id", "panels", "repeat", "title", "type"})
# An interval variable's auto* fields, on every variable; tags were dropped in Grafana 8.
VARIABLE_LEGACY = frozenset({"useTags", "tagsQuery", "tagValuesQuery", "auto", "auto_min", "auto_count"})
# Graphite-era and pre-8 Prometheus query fields; `range` is what Grafana now sets for a range query.
TARGET_LEGACY = frozenset({"intervalFactor", "step", "metric", "target", "query"})


def modern(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard JSON without nulls and without the fields current Grafana no longer has."""
    data: dict[str, Any] = _without_nulls(dashboard)
    for key in DASHBOARD_LEGACY:
        data.pop(key, None)
    if not data.get("__inputs"):
        data.pop("__inputs", None)
    for key in TIMEPICKER_LEGACY:
        data.get("timepicker", {}).pop(key, None)
    for variable in data.get("templating", {}).get("list", []):
        for key in VARIABLE_LEGACY:
            variable.pop(key, None)
        current = variable.get("current", {})
        current.pop("tags", None)
        if "value" not in current:  # no default: Grafana selects the first value
            variable.pop("current", None)
    for panel in _panels(data):
        for key in PANEL_LEGACY | (panel.keys() - ROW_FIELDS if panel.get("type") == "row" else set()):
            panel.pop(key, None)
        for target in panel.get("targets", []):
            for key in TARGET_LEGACY:
                target.pop(key, None)
            target.setdefault("range", not target.get("instant", False))
    return data


def _panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in data.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _without_nulls(value: Any) -> Any:
    """value with null members of objects removed, except a threshold step's `value` (null is the base)."""
    if isinstance(value, dict):
        return {
            k: _without_nulls(v)
            for k, v in value.items()
            if v is not None or (k == "value" and "color" in value)
        }
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value

"""Small builders over grafanalib: panels on the dashboard's Prometheus datasource variable, stats
coloured by what their value means, laid out in rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib.core import GridPos, RowPanel, Stat, Target, Template, TimeSeries

from mbeans import metrics as m

GRID_WIDTH = 24
# The uid of the Prometheus datasource grafana/provisioning/datasources/prometheus.yml creates. Panels
# name the `datasource` variable, whose default is this uid, so that file provisioning finds the
# datasource without the import dialog `${DS_PROMETHEUS}` needs, and users can still pick another.
DATASOURCE_UID = "ledger-agent-prometheus"
DATASOURCE_VARIABLE = "datasource"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}
# The node's legal name, a label of ledgeragent_node_info: a legend with NODE_LEGEND gets its query's
# series joined with it on `instance` (by_node), so that it names nodes, not 127.0.0.1:port.
NODE_LABEL = "node"
NODE_LEGEND = "{{" + NODE_LABEL + "}}"


def selector(metric: Any, node_match: str, labels: str = "") -> str:
    """metric{instance<node_match>"$node", labels}: `=` for one node, `=~` for a multi-value variable."""
    extra = f", {labels}" if labels else ""
    return f'{metric.name}{{instance{node_match}"$node"{extra}}}'


def by_node(expr: str) -> str:
    """expr's series with the `node` label of their agent's ledgeragent_node_info (one per instance)."""
    info = f"max by (instance, {NODE_LABEL}) ({m.NODE_INFO.name})"
    return f"({expr}) * on (instance) group_left ({NODE_LABEL}) {info}"


def datasource_variable() -> Template:
    """`$datasource`: any Prometheus datasource, the provisioned one (DATASOURCE_UID) by default."""
    return Template(
        name=DATASOURCE_VARIABLE,
        label="Prometheus",
        type="datasource",
        query="prometheus",
        default=DATASOURCE_UID,
        regex="",
        refresh=1,
    )


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


@dataclass(frozen=True)
class Colors:
    """How a stat colours its value: threshold steps (from a base colour) and value-to-text mappings."""

    steps: tuple[tuple[float | None, str], ...]  # (from this value, colour); the base step's value is None
    texts: tuple[tuple[int, str, str], ...] = ()  # (value, text, colour)
    mode: str = "value"  # Grafana's colorMode: colour the value, or the whole panel ("background")

    def thresholds(self) -> list[dict[str, Any]]:
        return [{"color": color, "value": value} for value, color in self.steps]

    def mappings(self) -> list[dict[str, Any]]:
        if not self.texts:
            return []
        options = {
            str(v): {"text": text, "color": color, "index": i}
            for i, (v, text, color) in enumerate(self.texts)
        }
        return [{"type": "value", "options": options}]


# A quantity with no good or bad value (queued, recorded, recovered): the text colour.
NEUTRAL = Colors(((None, "text"),))


def problems(color: str = "red", at: float = 1) -> Colors:
    """A count of something wrong: green at 0, color from `at`."""
    return Colors(((None, "green"), (at, color)))


def ages(warn: float, alert: float) -> Colors:
    """An age in seconds: green, orange from warn, red from alert (an alert's threshold)."""
    return Colors(((None, "green"), (warn, "orange"), (alert, "red")))


def flag(yes: str, no: str, no_color: str = "red") -> Colors:
    """A 0/1 gauge shown as words: 1 green, 0 no_color, on the whole panel."""
    return Colors(((None, no_color), (1, "green")), ((0, no, no_color), (1, yes, "green")), "background")


def stat(
    title: str,
    colors: Colors,
    expr: str,
    *,
    unit: str = "none",
    description: str = "",
    legend: str = "",
) -> Stat:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend)],
        reduceCalc="lastNotNull",
        format=unit,
        graphMode="none",
        colorMode=colors.mode,
        thresholds=colors.thresholds(),
        mappings=colors.mappings(),
        noValue=None,  # Grafana's own "No data"
        # The stat options @grafana/schema requires that grafanalib 0.7.1 does not know, at Grafana's defaults.
        extraJson={
            "options": {"percentChangeColorMode": "standard", "showPercentChange": False, "wideLayout": True}
        },
    )


def series(
    title: str,
    *exprs: tuple[str, str],
    unit: str = "short",
    description: str = "",
) -> TimeSeries:
    """A time series of one or more (expr, legend) targets, refIds A, B, ...; a legend naming the node
    (NODE_LEGEND) has its expr joined with the node's name (by_node)."""
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[
            target(by_node(expr) if NODE_LEGEND in legend else expr, legend, chr(ord("A") + i))
            for i, (expr, legend) in enumerate(exprs)
        ],
        unit=unit,
        # Lines are coloured by series (palette-classic); the steps only need their base, as Grafana's own.
        thresholds=NEUTRAL.thresholds(),
        # Required by @grafana/schema's timeseries options, unknown to grafanalib 0.7.1.
        extraJson={"options": {"legend": {"showLegend": True}}},
    )


@dataclass(frozen=True)
class Row:
    title: str
    panels: Sequence[tuple[Any, int, int]]  # (panel, width, height)


def layout(rows: Sequence[Row]) -> list[Any]:
    """Row headers and their panels placed left to right, wrapping at the grid's 24 columns."""
    placed: list[Any] = []
    y = 0
    for row in rows:
        placed.append(RowPanel(title=row.title, gridPos=GridPos(h=1, w=GRID_WIDTH, x=0, y=y)))
        y += 1
        x, line_height = 0, 0
        for panel, width, height in row.panels:
            if x + width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            placed.append(_at(panel, GridPos(h=height, w=width, x=x, y=y)))
            x += width
            line_height = max(line_height, height)
        y += line_height
    return placed


def _at(panel: Any, position: GridPos) -> Any:
    return attr.evolve(panel, gridPos=position)

"""Small builders over grafanalib: panels on the Prometheus datasource input, laid out in rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import attr
from grafanalib.core import DataSourceInput, GridPos, RowPanel, Stat, Target, TimeSeries

GRID_WIDTH = 24
DATASOURCE_INPUT = "DS_PROMETHEUS"
# A datasource reference (not grafanalib's plain string) so that import asks for the Prometheus
# datasource through __inputs, as Grafana's own exports do.
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "${" + DATASOURCE_INPUT + "}"}


def selector(metric: Any, node_match: str, labels: str = "") -> str:
    """metric{instance<node_match>"$node", labels}: `=` for one node, `=~` for a multi-value variable."""
    extra = f", {labels}" if labels else ""
    return f'{metric.name}{{instance{node_match}"$node"{extra}}}'


def prometheus_input() -> DataSourceInput:
    """The datasource Grafana asks for on import (`${DS_PROMETHEUS}` in every panel and target)."""
    return DataSourceInput(
        name=DATASOURCE_INPUT,
        label="Prometheus",
        pluginId="prometheus",
        pluginName="Prometheus",
        description="The Prometheus that scrapes the agents' /metrics",
    )


def target(expr: str, legend: str = "", ref: str = "A") -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE)


def stat(title: str, expr: str, *, unit: str = "none", description: str = "", legend: str = "") -> Stat:
    return Stat(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend)],
        reduceCalc="lastNotNull",
        format=unit,
        graphMode="none",
    )


def series(
    title: str,
    *exprs: tuple[str, str],
    unit: str = "short",
    description: str = "",
) -> TimeSeries:
    """A time series of one or more (expr, legend) targets, refIds A, B, ..."""
    return TimeSeries(
        title=title,
        description=description,
        dataSource=DATASOURCE,
        targets=[target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(exprs)],
        unit=unit,
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

"""The dashboards as JSON files: rendered, written, and compared with what is committed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import Dashboard

from grafana import network_view, node_view
from grafana.modern import modern

OUT = Path(__file__).parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    f"{node_view.UID}.json": node_view.dashboard,
    f"{network_view.UID}.json": network_view.dashboard,
}


def as_json(dashboard: Dashboard) -> dict[str, Any]:
    """grafanalib's JSON of the dashboard, as current Grafana stores it (grafana.modern)."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    return modern(data)


def render(dashboard: Dashboard) -> str:
    """Stable text (sorted keys, a final newline) so that a regeneration diff is meaningful."""
    return json.dumps(as_json(dashboard), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def write(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(out: Path = OUT) -> list[str]:
    """Files in out that differ from a fresh rendering, are missing, or are not ours."""
    fresh = rendered()
    problems = [
        name
        for name, text in fresh.items()
        if not (out / name).exists() or (out / name).read_text(encoding="utf-8") != text
    ]
    problems += sorted(p.name for p in out.glob("*.json") if p.name not in fresh)
    return problems

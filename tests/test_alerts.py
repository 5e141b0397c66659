"""The alert rules in alerts/: promtool accepts them, their unit tests pass and would catch a broken rule,
every metric they use is one of mbeans.metrics, and every runbook is a section of docs/management.md (or
of docs/hospital.md, docs/finality-recovery.md or docs/ledger-recovery.md)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mbeans import metrics as m

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "alerts"
RULES = sorted(ALERTS.glob("*.rules.yml"))
UNIT_TESTS = sorted(ALERTS.glob("*.rules.test.yml"))
RUNBOOK_PAGES = (
    "docs/management.md",
    "docs/hospital.md",
    "docs/finality-recovery.md",
    "docs/ledger-recovery.md",
)
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (.ci/run installs it)"
)


def rules() -> list[dict[str, Any]]:
    found = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            found.extend(group["rules"])
    return found


def promtool(*args: str, cwd: Path = ALERTS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_there_are_rules_and_unit_tests() -> None:
    assert RULES and UNIT_TESTS
    names = [r["alert"] for r in rules()]
    assert len(names) == len(set(names)), "alert names are unique"
    assert set(names) >= {
        "LedgerAgentDown",
        "LedgerGraphNotSelfConsistent",
        "LedgerGraphNotInitialized",
        "ReconciliationFailing",
        "MissingTransactionsUnrecovered",
        "PeerNotReconciled",
        "ReconciliationSchedulerSaturated",
        "TransactionsStuckInFlight",
        "FinalityInFlightTooLong",
        "FlowsHospitalized",
        "FlowRetryLoop",
    }


def test_every_metric_an_alert_uses_exists() -> None:
    for rule in rules():
        used = set(re.findall(r"\b(ledgeragent_[a-z_]+|up)\b", rule["expr"]))
        assert used, rule["alert"]
        known = m.SERIES | m.STANDARD
        assert used <= known, f"{rule['alert']}: unknown {sorted(used - known)}"


def test_every_alert_has_a_runbook_in_the_docs() -> None:
    anchors = {
        page: {
            re.sub(r"[^a-z0-9-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
            for line in (ROOT / page).read_text().splitlines()
            if line.startswith("#")
        }
        for page in RUNBOOK_PAGES
    }
    for rule in rules():
        notes = rule["annotations"]
        assert {"summary", "description", "runbook"} <= set(notes), rule["alert"]
        path, _, anchor = notes["runbook"].partition("#")
        assert anchor in anchors.get(path, set()), (rule["alert"], notes["runbook"])
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in rules():
        assert cases.get(rule["alert"]) == {True, False}, rule["alert"]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", *(p.name for p in RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", *(p.name for p in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def _variant(tmp_path: Path, change: Any) -> subprocess.CompletedProcess[str]:
    """The unit tests run against the rules with one change made."""
    for path in RULES:
        data = yaml.safe_load(path.read_text())
        for group in data["groups"]:
            group["rules"] = [r for r in (change(dict(rule)) for rule in group["rules"]) if r is not None]
        (tmp_path / path.name).write_text(yaml.safe_dump(data, sort_keys=False))
    for path in UNIT_TESTS:
        shutil.copy(path, tmp_path / path.name)
    return promtool("test", "rules", *(p.name for p in UNIT_TESTS), cwd=tmp_path)


@needs_promtool
@pytest.mark.parametrize("alert", [r["alert"] for r in rules()])
def test_the_unit_tests_catch_a_rule_that_never_fires_or_always_fires(tmp_path: Path, alert: str) -> None:
    removed = _variant(tmp_path, lambda r: None if r["alert"] == alert else r)
    assert removed.returncode != 0 and alert in removed.stdout + removed.stderr

    def always(rule: dict[str, Any]) -> dict[str, Any]:
        if rule["alert"] == alert:
            rule["expr"] = re.search(r"(ledgeragent_[a-z_]+|up)(\{[^}]*\})?", rule["expr"]).group(0)  # type: ignore[union-attr]
            rule.pop("for", None)
        return rule

    noisy = _variant(tmp_path, always)
    assert noisy.returncode != 0 and alert in noisy.stdout + noisy.stderr

"""`ledger-agent recover`'s printing: the plan per peer, the progress bar (a line at a time in a pipe),
the totals and failures, and following an applied run to its end (against a fake agent)."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest

from agent.client import cli
from agent.client.recovery_report import human_bytes, plan_text, progress_bar, results_text, totals_text
from agent.operator_api.kinds import TRANSACTION_ROLES
from agent.recovery.parameters import TransactionRole

B = "O=PartyB, L=New York, C=US"
TX = "A" * 64


def test_the_roles_are_the_flows() -> None:
    assert TRANSACTION_ROLES == tuple(r.value for r in TransactionRole) == cli.RECOVERY_ROLES


def test_bytes_are_human_readable() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 20 * 2**20, 3 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.5 KiB",
        "20.0 MiB",
        "3.0 GiB",
    ]


def test_a_plan_says_per_peer_what_is_missing_and_what_cannot_be_had() -> None:
    summary = {
        "flowId": "f1",
        "dryRun": True,
        "totalErrors": 0,
        "plan": {
            "peers": {
                B: {
                    "missing": 3,
                    "available": 2,
                    "bytes": 4096,
                    "cannotRecover": [[TX, "refused by the peer: x"]],
                }
            },
            "transactions": 2,
            "bytes": 4096,
            "estimatedSeconds": 90,
        },
        "ledgerSync": {B: ["DIFFERENCES_FOUND", 1]},
    }
    text = plan_text(summary)
    assert "PEER" in text and B in text and "4.0 KiB" in text
    assert f"{TX} from {B}: refused by the peer: x" in text
    assert "Total: 2 transaction(s), 4.0 KiB, about 1m30s to recover" in text
    assert "DIFFERENCES_FOUND, 1 missing" in text and "--apply" in text


def test_the_bar_counts_what_is_no_longer_pending() -> None:
    bar = progress_bar({B: {"PENDING": 3, "RECOVERED": 1}}, "RECOVERED_1")
    assert bar.startswith("[" + "#" * 7 + "." * 23 + "] 1/4 transactions")
    assert bar.endswith("(PENDING 3, RECOVERED 1) at RECOVERED_1")


def test_totals_name_the_failures() -> None:
    results = [
        {
            "transactionId": TX,
            "recoveryPeer": B,
            "transactionRole": "PEER",
            "synchronised": False,
            "failureCause": "gone",
        }
    ]
    text = totals_text(
        {"flowId": "f1", "totalRecoveredTransactions": 0, "totalErrors": 1, "results": results}
    )
    assert "Recovered 0 transaction(s), 1 error(s)" in text and f"{TX} from {B}: gone" in text
    assert "gone" in results_text("f1", results) and "no results" in results_text("f1", [])


class FakeAgent:
    """The management API as `recover --apply` uses it: the start answers 202, then the flow runs."""

    def __init__(self) -> None:
        self.polls = 0
        self.timeout = 0.0
        self.calls: list[tuple[str, str, Any]] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append((method, path, body))
        if path == "/api/recovery/recover":
            return {"flowId": "f1", "status": "RUNNABLE", "message": "still running"}
        if path.startswith("/api/flows"):
            self.polls += 1
            status = "RUNNABLE" if self.polls < 3 else "COMPLETED"
            return [{"flowId": "f1", "status": status, "step": "RECOVERED_1"}] if status == "RUNNABLE" else []
        if path == "/api/recovery/progress":
            return {B: {"PENDING": max(0, 2 - self.polls), "RECOVERED": min(2, self.polls)}}
        if path == "/api/recovery/results/f1":
            return {
                "flowId": "f1",
                "results": [{"transactionId": TX, "recoveryPeer": B, "synchronised": True}],
            }
        raise AssertionError(path)

    def close(self) -> None:
        pass


def test_apply_follows_the_flow_with_a_line_per_interval_in_a_pipe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = FakeAgent()
    monkeypatch.setattr(cli, "_management", lambda config, user: agent)
    monkeypatch.setattr(cli, "PIPE_LINE_S", 0.0)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert cli.main(["recover", "--peer", B, "--apply", "--config", "node.conf", "--reason", "restored"]) == 0
    (start,) = [c for c in agent.calls if c[1] == "/api/recovery/recover"]
    assert start[2] == {
        "dryRun": False,
        "recoveryPeers": [B],
        "reason": "restored",
        "timeout": cli.APPLY_WAIT_S,
    }
    lines = sys.stderr.getvalue().splitlines()  # type: ignore[attr-defined]
    assert "\r" not in sys.stderr.getvalue() and len(lines) == 3  # type: ignore[attr-defined]
    assert lines[-1].startswith("[" + "#" * 30 + "] 2/2")
    assert "Recovered 1 transaction(s), 0 error(s)" in capsys.readouterr().out

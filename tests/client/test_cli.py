"""The command line as an operator uses it: real processes, real exit codes, real output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from agent.client.cli import main


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_network_init_then_vault(tmp_path: Path) -> None:
    result = run("network", "init", "--dir", str(tmp_path / "net"), "--nodes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "notary  O=Notary, L=Zurich, C=CH" in result.stdout
    key = tmp_path / "net" / "PartyB" / "certificates" / "identity-key.pem"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    vault = run("vault", "--config", str(tmp_path / "net" / "PartyB" / "node.conf"), cwd=tmp_path)
    assert vault.returncode == 0, vault.stderr
    assert "O=PartyB, L=New York, C=US  (0 transactions" in vault.stdout


def test_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    assert main(["network", "init", "--dir", str(tmp_path / "n"), "--nodes", "27"]) == 2
    assert not (tmp_path / "n").exists()
    again = run("network", "init", "--dir", str(tmp_path / "n2"), "--nodes", "99", cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith("ledger-agent: error: nodes")
    assert "Traceback" not in again.stderr
    missing = run("vault", "--config", str(tmp_path / "absent.conf"), cwd=tmp_path)
    assert missing.returncode == 2
    assert "--config" in missing.stderr

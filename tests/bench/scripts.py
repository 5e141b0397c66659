"""Running a benchmark script end to end from a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *arguments: str, timeout: float = 120) -> str:
    """bench/<name> with arguments; its output (stdout and stderr). Fails the test on a non-zero exit.

    The scripts stop their agents by their PIDs, whatever happens; the timeout bounds the run.
    """
    command = [sys.executable, str(ROOT / "bench" / name), *arguments]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, output
    return output

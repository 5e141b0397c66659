"""The collector settings `ledger-agent run` applies once it serves (agent.process.settle_gc), in a
Python of their own: they are process-wide, and this test process must keep CPython's defaults."""

from __future__ import annotations

import json
import subprocess
import sys

from agent.process import GC_THRESHOLDS

PROBE = """
import gc, json
from agent.process import settle_gc
before = gc.get_freeze_count()
settle_gc()
print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))
"""


def test_settle_gc_freezes_what_was_built_and_raises_the_young_threshold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    before, frozen, thresholds = json.loads(done.stdout)
    assert before == 0
    assert frozen > 10_000  # the modules imported and what they built
    assert tuple(thresholds) == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700  # CPython's default young threshold: the point of the setting

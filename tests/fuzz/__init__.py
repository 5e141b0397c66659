"""Property-based fuzzing of the agent's decoders and of a live agent's surfaces (issue 16).

CI runs a few hundred inputs per target; `make fuzz FUZZ_EXAMPLES=20000` runs the same tests longer
(docs/security.md gives the figures of a long run). Each run prints, at its end, how many inputs each
target was given.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))


def fuzz_settings(scale: float = 1.0) -> settings:
    """Hypothesis' settings for a fuzzer: FUZZ_EXAMPLES (times scale) inputs, no deadline (a shared
    2-core machine), no database of examples (each run draws afresh; a failure prints its input)."""
    return settings(
        max_examples=max(1, int(EXAMPLES * scale)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )

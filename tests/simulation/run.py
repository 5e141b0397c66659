"""Run one seed: build the network, run its workload, settle, check the invariants; report in words."""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from agent.errors import SimulatedCrash
from agent.p2p.faulty import NetworkFaults
from tests.simulation.invariants import check
from tests.simulation.network import Simulation, SimulationStuckError, Template
from tests.simulation.workload import run_workload

# How rough a seed's network is: (name, faults, chance that a node's first life has a crash point).
PROFILES = (
    ("calm", NetworkFaults(), 0.3),
    ("lossy", NetworkFaults(drop_request=0.05, drop_reply=0.05, delay=0.03, duplicate=0.05), 0.3),
    ("stormy", NetworkFaults(drop_request=0.12, drop_reply=0.12, delay=0.08, duplicate=0.1), 0.5),
)

# Simulated time the network gets to settle before a restored node's recovery: well past a receiver's
# outcome timeout (60 s) and the retries' back-off, so only what waits for the recovery still waits.
CALM = timedelta(minutes=10)


def replay_command(seed: int, backend: str = "sqlite") -> str:
    db = "" if backend == "sqlite" else f" --db {backend}"
    return f"python -m tests.simulation --seed {seed}{db}"


@dataclass
class SeedResult:
    seed: int
    profile: str
    violations: list[str]
    seconds: float
    log: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    backend: str = "sqlite"

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> str:
        lines = [
            f"seed {self.seed} ({self.profile}) failed; replay with: {replay_command(self.seed, self.backend)}"
        ]
        lines += [f"  violation: {v}" for v in self.violations]
        lines += [f"  operation: {entry}" for entry in self.log]
        lines += [f"  event: {entry}" for entry in self.events]
        return "\n".join(lines)


def run_seed(seed: int, template: Template, scratch: Path) -> SeedResult:
    """One seed, start to finish, in scratch/seed-N (removed afterwards)."""
    began = time.perf_counter()
    rng = random.Random(seed)
    profile, faults, crash_chance = rng.choice(PROFILES)
    sim = Simulation(seed, template, scratch / f"seed-{seed}", faults=faults, crash_chance=crash_chance)
    violations: list[str] = []
    log: list[str] = []
    try:
        sim.start()
        record = run_workload(sim, rng)
        log = record.log
        if sim.restored:
            # The operator runs Ledger Recovery on a restored node once the network is calm, not
            # quiescent: a restored initiator's receivers wait at RECORDED for what only its
            # recovery can finish (seed 3303, docs/simulation.md).
            sim.settle(give_up_after=CALM)
            violations = sim.recover_restored()
        sim.settle()
        violations += check(sim, record)
    except SimulationStuckError as exc:
        violations = [str(exc)]
    except (Exception, SimulatedCrash):  # the harness failed: still a failing seed, with its replay command
        violations = [f"the simulation failed:\n{traceback.format_exc()}"]
    finally:
        sim.close()
    seconds = time.perf_counter() - began
    return SeedResult(seed, profile, violations, seconds, log, list(sim.events), template.backend)


@contextmanager
def quiet_logs() -> Iterator[None]:
    """Crashes and refused messages are the point here: the agent's warnings would drown the report.
    The levels are put back after: a test of another file run later in the same process (pytest-xdist
    runs many files per worker) must still see the agent's warnings."""
    loggers = [logging.getLogger(name) for name in ("ledger_agent", "agent")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)

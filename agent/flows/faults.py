"""Fault injection, for tests only: `faultInjection = ["FinalityFlow.AFTER_NOTARISE=crash"]`.

A fault names a (flow, step) point. The engine honours `crash` and `fail` right after that step's
checkpoint has committed, so a crash there leaves exactly what a real crash between two steps leaves,
and a restart resumes from that checkpoint (the fault is not met again by the resumed flow: it is past
that step). `crash-before` strikes once the step that reaches that point has done its work (its
messages to peers are sent) but before its checkpoint commits: the restarted flow does the step again,
sends again, and the peers must answer the repeat as the first.

What a crash does is the plan's `crash` action: by default the process exits (what a kill -9 leaves);
a simulation of many nodes in one process gives `simulate_crash` (or its own callable that also marks
the node dead) instead, which raises SimulatedCrash so that only the flow's thread unwinds.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import NoReturn

from agent.errors import AgentError, ConfigurationError, SimulatedCrash

log = logging.getLogger("ledger_agent.flows")

CRASH_EXIT_CODE = 70  # what a process killed by an injected crash exits with


class FaultAction(Enum):
    CRASH = "crash"
    FAIL = "fail"
    CRASH_BEFORE = "crash-before"


class InjectedFaultError(AgentError):
    """A test asked this flow to fail here."""

    def __init__(self, flow_name: str, step: str) -> None:
        super().__init__(f"injected failure in {flow_name} at {step}")


CrashAction = Callable[[str, str], NoReturn]
"""What a planned crash does, given the flow's name and the step it has just committed."""


def exit_process(flow_name: str, step: str) -> NoReturn:
    """The real thing: the process exits at once, as a kill -9 would leave it (the default)."""
    log.error("injected crash in %s at %s", flow_name, step)
    logging.shutdown()
    sys.stdout.flush()
    os._exit(CRASH_EXIT_CODE)


def simulate_crash(flow_name: str, step: str) -> NoReturn:
    """In-process: only this thread unwinds (the engine writes nothing more for the flow)."""
    raise SimulatedCrash(f"{flow_name}.{step}")


@dataclass(frozen=True)
class FaultPlan:
    """(flow name, step) -> action; `crash` is what a CRASH does."""

    faults: Mapping[tuple[str, str], FaultAction] = field(default_factory=dict)
    crash: CrashAction = exit_process

    @classmethod
    def parse(
        cls, entries: Iterable[str], key: str = "faultInjection", *, crash: CrashAction = exit_process
    ) -> FaultPlan:
        faults = {}
        for entry in entries:
            point, sep, action = str(entry).partition("=")
            flow, dot, step = point.partition(".")
            allowed = (
                "allowed: entries like FinalityFlow.AFTER_NOTARISE=crash (actions: crash, fail, crash-before)"
            )
            if not (sep and dot and flow and step):
                raise ConfigurationError(key, entry, allowed)
            try:
                faults[(flow.strip(), step.strip())] = FaultAction(action.strip().lower())
            except ValueError:
                raise ConfigurationError(key, entry, allowed) from None
        return cls(faults, crash)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def inject(self, flow_name: str, step: str) -> None:
        """Crash (the plan's crash action) or raise InjectedFaultError if a fault is planned here."""
        action = self.faults.get((flow_name, step))
        if action is FaultAction.CRASH:
            self.crash(flow_name, step)
        if action is FaultAction.FAIL:
            raise InjectedFaultError(flow_name, step)

    def inject_before(self, flow_name: str, step: str) -> None:
        """Crash if `crash-before` is planned here: the step's work done, its checkpoint not committed."""
        if self.faults.get((flow_name, step)) is FaultAction.CRASH_BEFORE:
            self.crash(flow_name, f"{step} (before its commit)")

"""Fault injection, for tests only: `faultInjection = ["FinalityFlow.AFTER_NOTARISE=crash"]`.

A fault names a (flow, step) point. The engine honours it right after that step's checkpoint has
committed, so a crash there leaves exactly what a real crash between two steps leaves, and a restart
resumes from that checkpoint (the fault is not met again by the resumed flow: it is past that step).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from agent.errors import AgentError, ConfigurationError

log = logging.getLogger("ledger_agent.flows")

CRASH_EXIT_CODE = 70  # what a process killed by an injected crash exits with


class FaultAction(Enum):
    CRASH = "crash"
    FAIL = "fail"


class InjectedFaultError(AgentError):
    """A test asked this flow to fail here."""

    def __init__(self, flow_name: str, step: str) -> None:
        super().__init__(f"injected failure in {flow_name} at {step}")


@dataclass(frozen=True)
class FaultPlan:
    """(flow name, step) -> action."""

    faults: Mapping[tuple[str, str], FaultAction] = field(default_factory=dict)

    @classmethod
    def parse(cls, entries: Iterable[str], key: str = "faultInjection") -> FaultPlan:
        faults = {}
        for entry in entries:
            point, sep, action = str(entry).partition("=")
            flow, dot, step = point.partition(".")
            allowed = "allowed: entries like FinalityFlow.AFTER_NOTARISE=crash (actions: crash, fail)"
            if not (sep and dot and flow and step):
                raise ConfigurationError(key, entry, allowed)
            try:
                faults[(flow.strip(), step.strip())] = FaultAction(action.strip().lower())
            except ValueError:
                raise ConfigurationError(key, entry, allowed) from None
        return cls(faults)

    def __bool__(self) -> bool:
        return bool(self.faults)

    def inject(self, flow_name: str, step: str) -> None:
        """Crash the process or raise InjectedFaultError if a fault is planned at this point."""
        action = self.faults.get((flow_name, step))
        if action is FaultAction.CRASH:
            log.error("injected crash in %s at %s", flow_name, step)
            logging.shutdown()
            sys.stdout.flush()
            os._exit(CRASH_EXIT_CODE)
        if action is FaultAction.FAIL:
            raise InjectedFaultError(flow_name, step)

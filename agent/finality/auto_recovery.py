"""The optional automatic finality recovery: off by default; node.conf's `finalityRecovery` turns it on.

    finalityRecovery {
        autoRecover = false    # true: scan and recover in the background
        minimumAge = 30m       # only transactions IN_FLIGHT at least this long (1s to 30d)
        scanInterval = 10m     # between scans (1s to 1d)
        jitter = 0.2           # each interval drawn from scanInterval * (1 +- jitter), 0 to 0.5
    }

Each scan takes the IN_FLIGHT transactions at least minimumAge old whose finality flows here have all
stopped, classifies them with the dry run (agent.finality.dry_run: the notarisation check, which
consumes nothing) and recovers only those the notary signed, on whichever side this node is: the
finalise path. It never undoes anything: a transaction not notarised (its initiator may yet notarise
it), one whose inputs another consumed (an undo), one the check cannot tell about, and one whose
flow is still running are left to an operator, and logged. The jitter keeps the nodes of a network
that started together from scanning (and asking the notary) together.

The scan runs in a thread tied to the engine: it ends when the runtime stops or the engine is shut
down. Time is the node's clock, so tests drive scans with a ManualClock and `poll()`.

The lower bounds are a second: safety rests on recoverable() (notarised, the finalise path, no flow
running here), never on the age, which is the operator's grace period; the interval only sets how often
the notary is asked. Production values are minutes; seconds serve tests and demos of real processes.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock
from agent.errors import AgentError, ConfigurationError
from agent.finality.dry_run import Action, RecoveryPlan
from agent.finality.notarisation_check import Notarisation
from agent.finality.queries import FlowRecoveryQuery
from agent.finality.recovery import FinalityRecoveryService
from agent.flows.engine import FlowEngine
from agent.hospital.policy import parse_duration
from agent.ledger.vault import TransactionStatus

log = logging.getLogger("ledger_agent.finality.auto_recovery")

SECTION = "finalityRecovery"
AUTO_RECOVERY_KEYS = tuple(f"{SECTION}.{k}" for k in ("autoRecover", "minimumAge", "scanInterval", "jitter"))
MINIMUM_AGE_RANGE_S = (1.0, 30 * 86400.0)
SCAN_INTERVAL_RANGE_S = (1.0, 86400.0)
MAX_JITTER = 0.5
RECOVERY_TIMEOUT_S = 60.0  # how long a scan waits for one recovery before going on to the next


@dataclass(frozen=True, kw_only=True)
class AutoRecoverySettings:
    auto_recover: bool = False
    minimum_age_s: float = 1800.0
    scan_interval_s: float = 600.0
    jitter: float = 0.2


def _within(key: str, seconds: float, value: Any, bounds: tuple[float, float], allowed: str) -> float:
    if not bounds[0] <= seconds <= bounds[1]:
        raise ConfigurationError(key, value, f"allowed: {allowed}")
    return seconds


def parse_auto_recovery_settings(flat: Mapping[str, Any]) -> AutoRecoverySettings:
    """finalityRecovery's keys of a flattened node.conf; each error names the key and the range."""
    default = AutoRecoverySettings()
    key = f"{SECTION}.autoRecover"
    auto = flat.get(key, default.auto_recover)
    if not isinstance(auto, bool):
        raise ConfigurationError(key, auto, "allowed: true or false")
    key = f"{SECTION}.minimumAge"
    value = flat.get(key, default.minimum_age_s)
    minimum_age = _within(
        key, parse_duration(key, value), value, MINIMUM_AGE_RANGE_S, "a duration from 1s to 30d"
    )
    key = f"{SECTION}.scanInterval"
    value = flat.get(key, default.scan_interval_s)
    interval = _within(
        key, parse_duration(key, value), value, SCAN_INTERVAL_RANGE_S, "a duration from 1s to 1d"
    )
    key = f"{SECTION}.jitter"
    jitter = flat.get(key, default.jitter)
    if not isinstance(jitter, int | float) or isinstance(jitter, bool) or not 0 <= jitter <= MAX_JITTER:
        raise ConfigurationError(key, jitter, f"allowed: a number from 0 to {MAX_JITTER:g}")
    return AutoRecoverySettings(
        auto_recover=auto, minimum_age_s=minimum_age, scan_interval_s=interval, jitter=float(jitter)
    )


def recoverable(plan: RecoveryPlan) -> bool:
    """Only the finalise path, of an IN_FLIGHT transaction the notary signed, with no flow running here."""
    return (
        plan.status is TransactionStatus.IN_FLIGHT
        and plan.notarisation is Notarisation.NOTARISED
        and plan.action is Action.FINALISE
        and not plan.running
    )


class AutoRecovery:
    """Scans every jittered scanInterval (when autoRecover) and finalises what recoverable() allows."""

    def __init__(
        self,
        service: FinalityRecoveryService,
        settings: AutoRecoverySettings,
        clock: Clock,
        engine: FlowEngine | None = None,
        *,
        rng: random.Random | None = None,
        recovery_timeout: float = RECOVERY_TIMEOUT_S,
    ) -> None:
        self.service = service
        self.settings = settings
        self.clock = clock
        self.engine = engine
        self.rng = rng or random.Random()
        self.recovery_timeout = recovery_timeout
        self.due: datetime | None = None
        self.scans = 0  # begun since the start (the scans_total counter of /metrics)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def next_interval(self) -> timedelta:
        jitter = self.settings.jitter
        return timedelta(seconds=self.settings.scan_interval_s * (1 + self.rng.uniform(-jitter, jitter)))

    def scan(self) -> dict[str, bool]:
        """One scan, now: {key: recovered} for the transactions it took (the others are logged)."""
        self.scans += 1
        query = FlowRecoveryQuery(min_age=timedelta(seconds=self.settings.minimum_age_s))
        results: dict[str, bool] = {}
        # Those still running here are left out before the notary is asked: recovery leaves them too.
        for plan in self.service.dry_run(query=query, running=False):
            if not recoverable(plan):
                log.info(
                    "automatic finality recovery leaves %s to an operator: %s, %s, %s (%s)%s",
                    plan.tx_id,
                    plan.notarisation.value,
                    "nobody" if plan.side is None else plan.side.value,
                    plan.action.value,
                    plan.reason,
                    f"; still running: {', '.join(plan.running)}" if plan.running else "",
                )
                continue
            try:
                results[plan.key] = self.service.recover_finality_flow_by_txn_id(
                    plan.tx_id, timeout=self.recovery_timeout
                )
            except AgentError as exc:
                log.warning("automatic finality recovery of %s failed: %s", plan.tx_id, exc)
                results[plan.key] = False
        if results:
            log.info("automatic finality recovery: %s", results)
        return results

    def poll(self) -> dict[str, bool] | None:
        """Scan if one is due on the clock (the first is due one jittered interval after the first poll)."""
        if not self.settings.auto_recover:
            return None
        now = self.clock.now()
        if self.due is None:
            self.due = now + self.next_interval()
            return None
        if now < self.due:
            return None
        self.due = now + self.next_interval()
        return self.scan()

    def start(self) -> None:
        if not self.settings.auto_recover or self._thread is not None:
            return
        self.poll()  # the first scan is due one interval from now
        self._thread = threading.Thread(target=self._loop, name="finality-auto-recovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(min(1.0, self.settings.scan_interval_s)):
            if self.engine is not None and self.engine.stopping:
                return  # its engine was shut down (a stopped or crashed node): nothing more to recover
            try:
                self.poll()
            except Exception:  # the store or the notary may be down: say so and try at the next scan
                log.warning("automatic finality recovery: the scan failed", exc_info=True)

"""Runs flows and keeps a checkpoint row for each, so that after a restart the node knows them all.

Every flow gets a state machine run id (a UUID) and a row in node_checkpoints that moves through the
steps it reaches. A flow that ends normally is COMPLETED; one that raises is FAILED with its error.
A flow that was still RUNNABLE when the process stopped (crash, kill -9) is found at the next start
and marked FAILED with the step it had reached, which is what finality recovery looks for.

Fault injection, for tests only: a FaultPlan names (flow, step) points where the flow crashes the
process or fails. It is empty unless the node's config lists faults.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

from agent.clock import Clock
from agent.errors import AgentError, ConfigurationError
from agent.flows.checkpoints import FlowCheckpoint, FlowStatus
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.store.ledger_store import LedgerStore

T = TypeVar("T")
log = logging.getLogger("ledger_agent.flows")

CRASH_EXIT_CODE = 70  # what a process killed by an injected crash exits with


class FaultAction(Enum):
    CRASH = "crash"
    FAIL = "fail"


class InjectedFaultError(AgentError):
    """A test asked this flow to fail here."""

    def __init__(self, flow_name: str, step: str) -> None:
        super().__init__(f"injected failure in {flow_name} at {step}")


class FlowNotFoundError(AgentError, KeyError):
    def __init__(self, flow_id: str) -> None:
        super().__init__(f"no flow with id {flow_id}")

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class FaultPlan:
    """(flow name, step) -> action; parsed from faultInjection = ["FinalityFlow.AFTER_NOTARISE=crash"]."""

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


class FlowContext:
    """What a running flow uses to record its progress."""

    def __init__(self, runner: FlowRunner, checkpoint: FlowCheckpoint) -> None:
        self._runner = runner
        self.checkpoint = checkpoint

    @property
    def flow_id(self) -> str:
        return self.checkpoint.flow_id

    def step(
        self,
        name: str,
        *,
        tx_id: SecureHash | None = None,
        counterparties: Iterable[X500Name] | None = None,
        value: bytes | None = None,
    ) -> None:
        """Record that the flow reached this step, then honour any fault planned here."""
        changes: dict[str, Any] = {"progress_step": name, "updated_at": self._runner.clock.now()}
        if tx_id is not None:
            changes["tx_id"] = tx_id
        if counterparties is not None:
            changes["counterparties"] = tuple(counterparties)
        if value is not None:
            changes["value"] = value
        self.checkpoint = replace(self.checkpoint, **changes)
        self._runner.store.save_checkpoint(self.checkpoint)
        self._runner.inject(self.checkpoint.flow_name, name)


class FlowRunner:
    def __init__(
        self, store: LedgerStore, clock: Clock, faults: FaultPlan | None = None, workers: int = 8
    ) -> None:
        self.store = store
        self.clock = clock
        self.faults = faults or FaultPlan()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flow")
        self._running: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._accepting = True

    def inject(self, flow_name: str, step: str) -> None:
        action = self.faults.faults.get((flow_name, step))
        if action is FaultAction.CRASH:
            log.error("injected crash in %s at %s", flow_name, step)
            logging.shutdown()
            sys.stdout.flush()
            os._exit(CRASH_EXIT_CODE)
        if action is FaultAction.FAIL:
            raise InjectedFaultError(flow_name, step)

    def _begin(
        self,
        flow_name: str,
        flow_id: str | None,
        counterparties: Iterable[X500Name],
        tx_id: SecureHash | None,
    ) -> FlowContext:
        now = self.clock.now()
        checkpoint = FlowCheckpoint(
            flow_id=flow_id or str(uuid.uuid4()),
            flow_name=flow_name,
            status=FlowStatus.RUNNABLE,
            started_at=now,
            updated_at=now,
            progress_step="STARTED",
            counterparties=tuple(counterparties),
            tx_id=tx_id,
        )
        self.store.save_checkpoint(checkpoint)
        return FlowContext(self, checkpoint)

    def finish(self, ctx: FlowContext, status: FlowStatus, error: str | None = None) -> None:
        ctx.checkpoint = replace(ctx.checkpoint, status=status, error=error, updated_at=self.clock.now())
        self.store.save_checkpoint(ctx.checkpoint)

    def run(
        self,
        flow_name: str,
        body: Callable[[FlowContext], T],
        *,
        flow_id: str | None = None,
        counterparties: Iterable[X500Name] = (),
        tx_id: SecureHash | None = None,
        complete: bool = True,
    ) -> T:
        """Run a flow in the calling thread; complete=False leaves it RUNNABLE (it waits for a peer)."""
        ctx = self._begin(flow_name, flow_id, counterparties, tx_id)
        try:
            result = body(ctx)
        except Exception as exc:
            log.warning(
                "flow %s %s failed at %s: %s", flow_name, ctx.flow_id, ctx.checkpoint.progress_step, exc
            )
            self.finish(ctx, FlowStatus.FAILED, f"{type(exc).__name__}: {exc}")
            raise
        if complete:
            self.finish(ctx, FlowStatus.COMPLETED)
        return result

    def start(
        self,
        flow_name: str,
        body: Callable[[FlowContext], T],
        *,
        counterparties: Iterable[X500Name] = (),
        tx_id: SecureHash | None = None,
    ) -> tuple[str, Future[T]]:
        """Start a flow on the pool; returns its run id at once and a future of its result."""
        flow_id = str(uuid.uuid4())
        with self._lock:
            if not self._accepting:
                raise AgentError("the node is stopping and starts no new flows")
            future = self._pool.submit(
                self.run, flow_name, body, flow_id=flow_id, counterparties=counterparties, tx_id=tx_id
            )
            self._running[flow_id] = future
        future.add_done_callback(lambda _: self._forget(flow_id))
        return flow_id, future

    def _forget(self, flow_id: str) -> None:
        with self._lock:
            self._running.pop(flow_id, None)

    def context_of(self, flow_id: str) -> FlowContext:
        checkpoint = self.store.get_checkpoint(flow_id)
        if checkpoint is None:
            raise FlowNotFoundError(flow_id)
        return FlowContext(self, checkpoint)

    def fail_interrupted(self) -> list[FlowCheckpoint]:
        """At start: flows a previous run left RUNNABLE did not finish; mark them FAILED where they stopped."""
        interrupted = []
        for cp in list(self.store.iter_checkpoints(FlowStatus.RUNNABLE)):
            failed = replace(
                cp,
                status=FlowStatus.FAILED,
                updated_at=self.clock.now(),
                error=f"the node stopped while the flow was at step {cp.progress_step}",
            )
            self.store.save_checkpoint(failed)
            interrupted.append(failed)
        return interrupted

    def shutdown(self, timeout: float = 30.0) -> None:
        """Start nothing new; let running flows finish (their checkpoints say where each stands)."""
        with self._lock:
            self._accepting = False
            pending = list(self._running.values())
        for future in pending:
            try:
                future.result(timeout=timeout)
            except Exception:  # a failed flow has already recorded its error
                log.debug("flow ended with an error during shutdown", exc_info=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

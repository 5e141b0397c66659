"""Finality recovery: the operations of Corda's FlowRPCOps and NodeFlowStatusRpcOps, on one node.

    recover_finality_flow(id, force_recover)              -> bool
    recover_finality_flows(ids, force_recover)            -> {id: bool}
    recover_all_finality_flows(force_recover)             -> {id: bool}
    recover_finality_flow_by_txn_id(tx_id, force_recover) -> bool
    recover_finality_flow_by_txn_ids(tx_ids, force_recover) -> {tx_id: bool}
    recover_finality_flows_matching(query, force_recover) -> {id: bool}
    get_flow_transaction(flow_id), get_flow_transaction_by_txn_id(tx_id) -> FlowTransactionInfo | None

True when the transaction was recovered (finalised, or undone after a notary conflict, here or at a
receiver), False when nothing needed it (a VERIFIED transaction logs "Recovery not possible for
transaction with status VERIFIED"), FlowRecoveryException on an error: an unknown flow or
transaction, a finality still running without force_recover, a receiver's transaction that the
notary never signed (only its initiator may act), or the recovery flow's own failure (its cause).
The bulk operations report an error as False for that entry and go on with the next.

Only a transaction whose finality flows here have all stopped (FAILED, KILLED, COMPLETED, or no flow
at all: a store restored from a backup, a checkpoint removed) is recovered, unless force_recover:
then a RUNNABLE, PAUSED or HOSPITALIZED one is killed first, and waited for, so that two flows never
act on one transaction. The work itself is a FinalityRecoveryFlow on the engine (recovery_flows.py),
durable like every flow: a crash in the middle of a recovery resumes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from agent.errors import AgentError, FlowRecoveryException
from agent.finality.dry_run import RecoveryPlan, classify
from agent.finality.flows import FinalityDeps
from agent.finality.jobs import RecoveryJobs
from agent.finality.queries import (
    FINALITY_FLOWS,
    INITIATOR,
    PEER,
    RECOVERY_FLOW,
    FinalityMetadata,
    FinalityQueries,
    FlowRecoveryQuery,
    FlowTransactionInfo,
)
from agent.finality.recovery_flows import (
    VERIFIED_MESSAGE,
    FinalityRecoveryFlow,
    RecoveryDeps,
)
from agent.finality.recovery_receiver import Handlers, RecoveryReceiver
from agent.flows.checkpoints import FlowCheckpoint
from agent.flows.engine import FlowEngine, FlowHandle, FlowTimeoutError
from agent.ledger.hashing import SecureHash
from agent.ledger.keys import KeyPair
from agent.ledger.vault import TransactionStatus
from agent.ports.hospital import AuditLog

log = logging.getLogger("ledger_agent.finality.recovery")

STOP_TIMEOUT_S = 60.0  # how long a forced recovery waits for the flow it killed to end its step


class FinalityRecoveryService:
    def __init__(
        self,
        deps: FinalityDeps,
        engine: FlowEngine,
        key: KeyPair,
        *,
        stop_timeout: float = STOP_TIMEOUT_S,
        audit: AuditLog | None = None,
    ) -> None:
        self.deps = deps
        self.engine = engine
        self.stop_timeout = stop_timeout
        self.queries = FinalityQueries(
            deps.identity.name, deps.transactions, deps.distribution, engine.checkpoints
        )
        self.receiver = RecoveryReceiver(deps, engine)
        recovery_deps = RecoveryDeps(deps, key)
        engine.register(RECOVERY_FLOW, lambda state: FinalityRecoveryFlow(state, recovery_deps))
        self._deps = recovery_deps
        self._starting = threading.Lock()  # one decision at a time: two recoveries never start for one tx
        # agent.finality.jobs; the audit log takes each job's closing entry
        self.jobs = RecoveryJobs(self, engine, engine.checkpoints, deps.clock, audit)
        self.jobs.register()

    def register(self, handlers: Handlers) -> None:
        """The receiver's side of an initiator's recovery (finality.recovery.finalise and .abort)."""
        self.receiver.register(handlers)

    # -- queries (NodeFlowStatusRpcOps) --------------------------------------------------------------

    def get_flow_transaction(self, flow_id: str) -> FlowTransactionInfo | None:
        return self.queries.get_flow_transaction(flow_id)

    def get_flow_transaction_by_txn_id(self, tx_id: SecureHash) -> FlowTransactionInfo | None:
        return self.queries.get_flow_transaction_by_txn_id(tx_id)

    # -- recovery (FlowRPCOps) -----------------------------------------------------------------------

    def recover_finality_flow(
        self, flow_id: str, force_recover: bool = False, *, timeout: float | None = None
    ) -> bool:
        """Recover the transaction of that finality flow."""
        checkpoint = self.engine.checkpoints.get_checkpoint(flow_id)
        if checkpoint is None:
            raise FlowRecoveryException(f"no flow with id {flow_id}")
        if checkpoint.flow_name not in FINALITY_FLOWS or checkpoint.tx_id is None:
            raise FlowRecoveryException(f"flow {flow_id} is a {checkpoint.flow_name}, not a finality flow")
        return self._recover(checkpoint.tx_id, force_recover, timeout)

    def recover_finality_flows(
        self, ids: Iterable[str], force_recover: bool = False, *, timeout: float | None = None
    ) -> dict[str, bool]:
        return {
            i: self._quietly(lambda i=i: self.recover_finality_flow(i, force_recover, timeout=timeout))
            for i in ids
        }

    def recover_finality_flow_by_txn_id(
        self, tx_id: SecureHash, force_recover: bool = False, *, timeout: float | None = None
    ) -> bool:
        """Recover that transaction; on an initiator that finalised it, the receivers that failed."""
        return self._recover(tx_id, force_recover, timeout)

    def recover_finality_flow_by_txn_ids(
        self, tx_ids: Iterable[SecureHash], force_recover: bool = False, *, timeout: float | None = None
    ) -> dict[SecureHash, bool]:
        return {t: self._quietly(lambda t=t: self._recover(t, force_recover, timeout)) for t in tx_ids}

    def recover_all_finality_flows(
        self, force_recover: bool = False, *, timeout: float | None = None
    ) -> dict[str, bool]:
        """Every IN_FLIGHT transaction here (and every issuance whose distribution stopped half way)
        whose finality flows have stopped; with force_recover, those still running too."""
        return self._recover_each(self.queries.candidates(), force_recover, timeout)

    def recover_finality_flows_matching(
        self, query: FlowRecoveryQuery, force_recover: bool = False, *, timeout: float | None = None
    ) -> dict[str, bool]:
        """As recover_all_finality_flows, for those matching every criterion of the query."""
        return self._recover_each(self.matching(query), force_recover, timeout)

    def matching(self, query: FlowRecoveryQuery) -> list[FinalityMetadata]:
        """The candidates (recover_all_finality_flows's) matching every criterion, ages measured now."""
        now = self.deps.clock.now()
        return [m for m in self.queries.candidates() if m.matches(query, now)]

    # -- dry run -------------------------------------------------------------------------------------

    def dry_run(
        self,
        *,
        ids: Iterable[str] | None = None,
        tx_ids: Iterable[SecureHash] | None = None,
        query: FlowRecoveryQuery | None = None,
        check_notary: bool = True,
        running: bool = True,
    ) -> list[RecoveryPlan]:
        """What recovering would do, changing nothing (agent.finality.dry_run): for the finality flows
        ids, the transactions tx_ids, those matching query, or else every candidate of
        recover_all_finality_flows; without running, leaving out those whose finality still runs here
        (recovery without force_recover would too), so the notary is not asked about them."""
        now = self.deps.clock.now()
        return [
            classify(meta, self.deps, self._deps.key, now, check_notary=check_notary)
            for meta in self._selected(ids, tx_ids, query)
            if running or not meta.live_flows
        ]

    def start_job(
        self,
        *,
        ids: Iterable[str] | None = None,
        tx_ids: Iterable[SecureHash] | None = None,
        query: FlowRecoveryQuery | None = None,
        force: bool = False,
        timeout: float = 60.0,
        reason: str | None = None,
        user: str = "(in-process)",
        role: str = "",
        surface: str = "",
    ) -> dict[str, Any]:
        """Recover the selection (as dry_run selects: without force, leaving out those whose finality
        still runs here) one transaction at a time in a job on the engine (agent.finality.jobs): the
        job, at once; its progress and results by its id from jobs.job."""
        chosen = [
            (meta.key, meta.tx_id)
            for meta in self._selected(ids, tx_ids, query)
            if force or not meta.live_flows
        ]
        return self.jobs.start(
            chosen, force=force, timeout=timeout, reason=reason, user=user, role=role, surface=surface
        )

    def _selected(
        self,
        ids: Iterable[str] | None,
        tx_ids: Iterable[SecureHash] | None,
        query: FlowRecoveryQuery | None,
    ) -> list[FinalityMetadata]:
        if ids is None and tx_ids is None:
            return self.matching(query) if query is not None else self.queries.candidates()
        found: list[FinalityMetadata] = []
        for flow_id in ids or ():
            checkpoint = self.engine.checkpoints.get_checkpoint(flow_id)
            if checkpoint is None or checkpoint.flow_name not in FINALITY_FLOWS or checkpoint.tx_id is None:
                raise FlowRecoveryException(f"no finality flow with id {flow_id}")
            found.append(self.queries.metadata(checkpoint.tx_id))
        found.extend(self.queries.metadata(tx_id) for tx_id in tx_ids or ())
        if query is not None:
            now = self.deps.clock.now()
            found = [m for m in found if m.matches(query, now)]
        return found

    # -- the work ------------------------------------------------------------------------------------

    def _recover_each(
        self, candidates: list[FinalityMetadata], force: bool, timeout: float | None
    ) -> dict[str, bool]:
        results: dict[str, bool] = {}
        for meta in candidates:
            if meta.live_flows and not force:
                continue  # still running: not a failed flow, unless forced
            results[meta.key] = self._quietly(lambda m=meta: self._recover(m.tx_id, force, timeout))
        return results

    @staticmethod
    def _quietly(recover: Any) -> bool:
        try:
            return bool(recover())
        except AgentError as exc:
            log.warning("Failed to recover finality flow: %s", exc)
            return False

    def _recover(self, tx_id: SecureHash, force: bool, timeout: float | None) -> bool:
        with self._starting:
            meta = self.queries.metadata(tx_id)
            if not self._needs_recovery(meta):
                return False
            live = meta.live_flows
            if live and not force:
                described = ", ".join(f"{f.flow_name} {f.flow_id} is {f.status.name}" for f in live)
                raise FlowRecoveryException(
                    f"the finality of transaction {tx_id} is still under way here ({described}); "
                    "it may finish by itself, or forceRecover stops it and recovers"
                )
            for checkpoint in live:
                self._stop(checkpoint)
            handle = self.engine.start(FinalityRecoveryFlow.create(tx_id, self._deps))
        log.info("recovering the finality of %s: %s %s", tx_id, RECOVERY_FLOW, handle.flow_id)
        return self._result(handle, tx_id, timeout)

    def _needs_recovery(self, meta: FinalityMetadata) -> bool:
        """False (and why, in the log) when nothing here needs recovering; raise when it cannot be."""
        tx_id, stored = meta.tx_id, meta.stored
        if stored is None:
            if meta.role is None:
                raise FlowRecoveryException(f"no finality of transaction {tx_id} here")
            if meta.role == PEER:
                raise FlowRecoveryException(
                    f"transaction {tx_id} is not recorded here (its receiving flow stopped before it "
                    f"recorded it): only its initiator {meta.initiator} can recover it"
                )
            log.warning("transaction %s was never recorded here: nothing to recover", tx_id)
            return False
        if stored.status is TransactionStatus.VERIFIED and not (meta.role == INITIATOR and meta.peers):
            log.warning("%s: %s", VERIFIED_MESSAGE, tx_id)
            return False
        return True

    def _stop(self, checkpoint: FlowCheckpoint) -> None:
        """Kill a flow of the transaction that is still running, and wait until it has ended."""
        if not self.engine.kill(checkpoint.flow_id):
            return  # it ended meanwhile
        log.warning(
            "forceRecover: killed %s %s (%s at %s)",
            checkpoint.flow_name,
            checkpoint.flow_id,
            checkpoint.status.name,
            checkpoint.progress_step,
        )
        handle = self.engine.handle(checkpoint.flow_id)
        if handle is not None and not handle.wait_for(lambda h: h.done, self.stop_timeout):
            raise FlowRecoveryException(
                f"{checkpoint.flow_name} {checkpoint.flow_id} did not stop within {self.stop_timeout:.0f} s"
            )

    def _result(self, handle: FlowHandle, tx_id: SecureHash, timeout: float | None) -> bool:
        try:
            return bool(handle.result(timeout))
        except (FlowRecoveryException, FlowTimeoutError):
            raise
        except AgentError as exc:
            raise FlowRecoveryException(
                f"recovery of transaction {tx_id} failed ({RECOVERY_FLOW} {handle.flow_id}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc

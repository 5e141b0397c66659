"""Ledger Recovery on a node: LedgerRecoveryFlow started and answered, the peer's side served, and the
pushes of optimisticInitiatorRecovery received (docs/ledger-recovery.md)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

from agent.clock import Clock, from_epoch_ms, to_epoch_ms
from agent.errors import (
    AgentError,
    LedgerRecoveryInProgressError,
    SerializationError,
    TransactionAccessDeniedError,
)
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowEngine, FlowHandle
from agent.ledger import serialization as ser
from agent.ledger.contracts import ContractRegistry
from agent.ledger.distribution import ReceiverDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StatesToRecord, TransactionStatus, states_to_record
from agent.network.network_map import NetworkMap
from agent.p2p.client import PeerClient
from agent.ports.distribution import DistributionRecords
from agent.ports.recovery import PENDING, UNRECOVERABLE, RecoveryLog, RecoveryResultRow
from agent.ports.transactions import TransactionStore
from agent.ports.unit_of_work import UnitOfWork
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.distribution_list import DistributionList, PublicHeader, encrypt
from agent.recovery.fetch import TransactionFetcher
from agent.recovery.flow import LEDGER_RECOVERY_FLOW, LedgerRecoveryFlow, RecoveryDeps, result_json
from agent.recovery.naming import named_parties
from agent.recovery.parameters import LedgerRecoveryParameters, parse_parameters
from agent.recovery.protocol import TOPIC_PUSH
from agent.recovery.responder import RecoveryResponder
from agent.recovery.settings import LedgerRecoverySettings

log = logging.getLogger("ledger_agent.recovery")

MAX_ATTEMPTS = 24  # a transaction no peer supplied is asked for this many times, then left to an operator
PUSHED_RUN = "PUSH"  # node_recovery_results.flow_id of what a peer's optimisticInitiatorRecovery pushed


class Handlers(Protocol):
    def register(self, topic: str, handler: Any) -> None: ...


class LedgerRecoveryService:
    def __init__(
        self,
        me: X500Name,
        transactions: TransactionStore,
        distribution: DistributionRecords,
        recovery_log: RecoveryLog,
        unit: UnitOfWork,
        peers: PeerClient,
        contracts: ContractRegistry,
        aes_keys: NodeAesKeys,
        network_map: NetworkMap,
        clock: Clock,
        engine: FlowEngine,
        *,
        recovery_period: timedelta | None = None,
        finalize: Callable[[SecureHash, frozenset[str]], bool] | None = None,
        settings: LedgerRecoverySettings | None = None,
    ) -> None:
        self.settings = settings or LedgerRecoverySettings()
        self._stop = threading.Event()
        self._retrier: threading.Thread | None = None
        self.me = me
        self.transactions = transactions
        self.distribution = distribution
        self.log = recovery_log
        self.unit = unit
        self.peers = peers
        self.aes_keys = aes_keys
        self.network_map = network_map
        self.clock = clock
        self.engine = engine
        self.recovery_period = recovery_period
        self.fetcher = TransactionFetcher(peers, transactions, contracts)
        self.responder = RecoveryResponder(me, transactions, distribution, aes_keys, network_map, clock)
        self.deps = RecoveryDeps(
            me=me,
            transactions=transactions,
            distribution=distribution,
            log=recovery_log,
            peers=peers,
            fetcher=self.fetcher,
            aes_keys=aes_keys,
            network_map=network_map,
            clock=clock,
            push=self.push,
            finalize=finalize or (lambda _tx, _force: False),
        )

    def register(self, handlers: Handlers) -> None:
        self.responder.register(handlers)
        handlers.register(TOPIC_PUSH, ser.map_payload(self._on_push))
        self.engine.register(LEDGER_RECOVERY_FLOW, lambda state: LedgerRecoveryFlow(state, self.deps))

    # -- the slow retry of what no peer supplied, and the hold on new flows --------------------------

    def start_retrying(self) -> None:
        """The retry thread: every unrecoverableRetryInterval, what no peer supplied is asked for again."""
        if self._retrier is None:
            self._retrier = threading.Thread(
                target=self._retry_loop, name="ledger-recovery-retry", daemon=True
            )
            self._retrier.start()

    def stop_retrying(self) -> None:
        self._stop.set()
        if self._retrier is not None:
            self._retrier.join(5)

    def _retry_loop(self) -> None:
        due = self.clock.now() + timedelta(seconds=self.settings.unrecoverable_retry_interval_s)
        while not self._stop.wait(1.0):
            if self.engine.stopping:
                return  # its engine was shut down (a stopped or crashed node): nothing more to retry
            if self.clock.now() < due:
                continue
            due = self.clock.now() + timedelta(seconds=self.settings.unrecoverable_retry_interval_s)
            try:
                self.retry_unrecoverable()
            except AgentError as exc:  # the store or a peer may be down: try at the next interval
                log.warning("retrying what no peer supplied failed: %s", exc)

    def retry_unrecoverable(self) -> FlowHandle | None:
        """Put back what no peer supplied (tried longer than an interval ago, fewer than MAX_ATTEMPTS
        times) and start a run that asks those peers for it alone; None when there is nothing to do or
        a recovery is already running."""
        if self.engine.stopping or self.running():
            return None
        cutoff = self.clock.now() - timedelta(seconds=self.settings.unrecoverable_retry_interval_s)
        rows = [r for r in self.log.missing(status=UNRECOVERABLE) if r.attempts < MAX_ATTEMPTS]
        peers = sorted({r.peer for r in rows if r.updated_at is None or r.updated_at < cutoff})
        if not peers or not self.log.requeue(peers, updated_before=cutoff):
            return None
        params = self.parameters({"recoveryPeers": peers, "timeWindow": {"fromTime": 0}})
        return self.start(replace(params, retry_only=True))

    def running(self) -> bool:
        return bool(self.engine.flows(flow_name=LEDGER_RECOVERY_FLOW, status=FlowStatus.RUNNABLE))

    def hold_new_flows(self) -> None:
        """Raise LedgerRecoveryInProgressError while recovery is under way, if node.conf asks."""
        if not self.settings.hold_new_flows_until_recovered:
            return
        pending = sum(by.get(PENDING, 0) for by in self.log.count_missing().values())
        if self.running() or pending:
            raise LedgerRecoveryInProgressError(
                f"new flows are held until Ledger Recovery completes ({pending} transaction(s) still to "
                "recover; node.conf ledgerRecovery.holdNewFlowsUntilRecovered = true)"
            )

    # -- starting ------------------------------------------------------------------------------------

    def parameters(self, given: Mapping[str, Any]) -> LedgerRecoveryParameters:
        def known(name: X500Name) -> bool:
            try:
                self.network_map.node(name)
            except AgentError:
                return False
            return True

        return parse_parameters(
            given,
            now=self.clock.now(),
            me=self.me,
            network_nodes=lambda: [n.name for n in self.network_map.nodes if not n.is_notary],
            known=known,
            recovery_period=self.recovery_period,
        )

    def start(self, params: LedgerRecoveryParameters) -> FlowHandle:
        handle = self.engine.start(LedgerRecoveryFlow(LedgerRecoveryFlow.initial_state(params), self.deps))
        log.warning("LedgerRecoveryFlow %s started: %s", handle.flow_id, params.describe())
        return handle

    def recover(self, given: Mapping[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Run LedgerRecoveryFlow to its end (FlowTimeoutError with its id if it outlasts timeout)."""
        result: dict[str, Any] = self.start(self.parameters(given)).result(timeout)
        return result

    def reconcile_then_recover_parameters(self, given: Mapping[str, Any]) -> LedgerRecoveryParameters:
        """`ledger-agent recover`: LedgerSync first, a dry run unless dryRun is false, and, with no
        timeWindow and no transactionRecoveryPeriod, the whole history."""
        args = dict(given)
        args.setdefault("reconcileFirst", True)
        args.setdefault("dryRun", True)
        if "timeWindow" not in args and self.recovery_period is None:
            args["timeWindow"] = {"fromTime": 0}
        return self.parameters(args)

    def held_by_no_peer(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Our transactions no peer holds, which nothing could recover were this store lost: no
        distribution record, and no other party named in them (an issuance to ourselves without
        observers, an exit of our own). Found by a scan of the ledger; at most limit of them."""
        found: list[dict[str, Any]] = []
        after: str | None = None
        while len(found) < limit:
            page = self.distribution.transactions_without_records(after=after, limit=1000)
            if not page:
                return found
            after = page[-1]
            for tx_id in page:
                stored = self.transactions.get_stored(SecureHash.parse(tx_id))
                if stored is None or named_parties(stored.stx, self.transactions, self.network_map) - {
                    self.me
                }:
                    continue
                found.append(
                    {
                        "transactionId": tx_id,
                        "status": stored.status.name,
                        "timestamp": stored.timestamp.isoformat(),
                        "reason": "no peer holds it: no distribution record, no other party in it",
                    }
                )
                if len(found) >= limit:
                    break
        return found

    def results(self, flow_id: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        return [result_json(r) for r in self.log.results(flow_id, limit=limit)]

    def progress(self) -> dict[str, dict[str, int]]:
        """peer -> status (PENDING, RECOVERED, UNRECOVERABLE) -> transactions."""
        return self.log.count_missing()

    # -- optimisticInitiatorRecovery -----------------------------------------------------------------

    def push(self, target: X500Name, stx: SignedTransaction) -> None:
        """Tell target, a peer of a transaction we initiated, to fetch it from us with its record."""
        sent = [r for r in self.distribution.sender_records(stx.id)]
        mine = [r for r in sent if r.peer == target]
        if not mine:
            raise SerializationError("push", f"{target} is not in the distribution list of {stx.id}")
        record = mine[0]
        key_id, key = self.aes_keys.pick()
        sealed = encrypt(
            DistributionList(
                record.sender_states_to_record, {r.peer.peer_id: r.receiver_states_to_record for r in sent}
            ),
            PublicHeader(record.timestamp, record.timestamp_discriminator),
            key_id,
            key,
        )
        self.peers.request(
            target,
            TOPIC_PUSH,
            {
                "txId": str(stx.id),
                "timestamp": to_epoch_ms(record.timestamp),
                "discriminator": record.timestamp_discriminator,
                "statesToRecord": int(record.receiver_states_to_record),
                "distributionList": sealed,
            },
        )

    def _on_push(self, pusher: X500Name, payload: Any) -> dict[str, Any]:
        tx_id = SecureHash.parse(ser.expect(payload.get("txId"), str, "txId"), "txId")
        if self.transactions.transaction_status(tx_id) is TransactionStatus.VERIFIED:
            return {"recorded": False}
        how = states_to_record(payload.get("statesToRecord"), "statesToRecord")
        record = ReceiverDistribution(
            tx_id,
            pusher,
            from_epoch_ms(ser.expect(payload.get("timestamp"), int, "timestamp")),
            ser.expect(payload.get("discriminator"), int, "discriminator"),
            ser.expect(payload.get("distributionList"), bytes, "distributionList"),
            how,
        )
        # We fetch it from the pusher like any recovery: verified, with the back-chain we lack.
        fetched = self.fetcher.fetch(pusher, [str(tx_id)])
        found = {stx.id: status for stx, status in fetched.verified}
        if tx_id not in found:
            cause = fetched.failed.get(str(tx_id), "its back-chain did not come")
            raise SerializationError("txId", f"{tx_id} pushed by {pusher} cannot be recorded: {cause}")
        pushed = next(stx for stx, _ in fetched.verified if stx.id == tx_id)
        # Only its initiator pushes a transaction: one that does not name the pusher is refused.
        if pusher not in named_parties(pushed, self.transactions, self.network_map):
            raise TransactionAccessDeniedError(
                str(pusher), str(tx_id), "it pushed a transaction that does not name it"
            )
        now = self.clock.now()
        with self.unit.unit_of_work():
            for stx, status in fetched.verified:
                if stx.id == tx_id:
                    self.transactions.record_transaction(
                        stx, status=status, states_to_record=how, receiver_record=record
                    )
                else:
                    self.transactions.record_transaction(stx, states_to_record=StatesToRecord.ONLY_RELEVANT)
            role = "OBSERVER" if how is StatesToRecord.ALL_VISIBLE else "PEER"
            self.log.add_results(
                [RecoveryResultRow(PUSHED_RUN, str(tx_id), str(pusher), role, True, False, None, now)]
            )
        log.warning("recovered %s, pushed by %s (its optimisticInitiatorRecovery)", tx_id, pusher)
        return {"recorded": True}

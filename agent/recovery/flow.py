"""LedgerRecoveryFlow: a restored node gets back, from its peers' records, what it lost.

A durable flow on the engine. Its steps:

1. PLANNED: the lanes. A lane is one peer and one record type (SENDER: the peer's sender records
   naming us, which rebuild our receiver records; RECEIVER: its receiver records from us, whose
   encrypted lists rebuild our sender records), as transactionRole asks. With
   useTimeWindowNarrowing, the window is cut in sub-windows and the peer's count and hash of each is
   compared with ours: only the ones that differ are walked. Each lane starts at its cursor
   (node_recovery_cursors), so a second run walks nothing twice.
2. IDENTIFIED_n: a page (recoveryBatchSize) of each lane's records, peers in parallel, in ascending
   (timestamp, discriminator) order; the ones we lack go to node_recovery_missing as PENDING, committed
   with the lane's cursor.
3. RECOVERED_n: a batch of PENDING rows per peer, peers in parallel: their transactions fetched with
   the back-chains we lack, verified, and recorded (vault updated, records rebuilt), each row marked
   and a RecoveryResult written, all in the step's commit. Rows left PENDING by an interrupted run
   are taken first. A transaction no peer supplies is UNRECOVERABLE with its cause: it never blocks
   the rest (LedgerRecoveryService retries those on a slow interval).
4. PUSHED (optimisticInitiatorRecovery): the transactions we initiated are pushed to the other peers
   of their distribution lists. FINALISED (alsoFinalize): finality recovery on the IN_FLIGHT ones.
5. DONE: the totals and the results.

A dry run walks the same records and writes nothing but its checkpoint: its results say what would be
recovered. A peer that cannot be reached ends the flow FAILED with LedgerRecoveryException, naming it;
what was recovered stays, and running the flow again resumes from the cursors.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock, from_epoch_ms, to_epoch_ms
from agent.errors import AgentError, LedgerRecoveryException, PeerError
from agent.flows.flow import Advance, Await, Flow, FlowContext, StepOutcome
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.ledger.verification import dependency_order
from agent.ledgersync.memory import release_freed_memory
from agent.network.network_map import NetworkMap
from agent.p2p.client import PeerClient
from agent.ports.distribution import DistributionRecords, RecordCursor, TimeWindow
from agent.ports.recovery import (
    LEDGERSYNC,
    RECOVERED,
    UNRECOVERABLE,
    LaneKey,
    MissingTransaction,
    RecoveryLog,
    RecoveryResultRow,
)
from agent.ports.transactions import Recording, TransactionStore
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.distribution_list import DistributionListError, decrypt
from agent.recovery.fetch import Ahead, Fetched, TransactionFetcher
from agent.recovery.parameters import LedgerRecoveryParameters
from agent.recovery.protocol import (
    RECEIVER,
    SENDER,
    TOPIC_RECORDS,
    TOPIC_WINDOW_HASHES,
    WireRecord,
    cursor_from_obj,
    cursor_to_obj,
    keys_digest,
    split_window,
    window_from_obj,
    window_to_obj,
)
from agent.recovery.reconcile import Reconciled, Reconciler

log = logging.getLogger("ledger_agent.recovery")

LEDGER_RECOVERY_FLOW = "LedgerRecoveryFlow"
NARROWING_PARTS = 64
RECONCILE_POLL_S = 0.5
# What a dry run's time estimate assumes: the recovery rate measured by bench/recover.py (BENCHMARKS.md).
ESTIMATED_TX_PER_S = 400
MAX_RESULTS_RETURNED = 10_000  # the rest stay in node_recovery_results


@dataclass
class RecoveryDeps:
    """What the flow uses of the node."""

    me: X500Name
    transactions: TransactionStore
    distribution: DistributionRecords
    log: RecoveryLog
    peers: PeerClient
    fetcher: TransactionFetcher
    aes_keys: NodeAesKeys
    network_map: NetworkMap
    clock: Clock
    push: Callable[[X500Name, SignedTransaction], None]  # optimisticInitiatorRecovery's push to one peer
    # alsoFinalize: finality recovery of one transaction; forceRecover for flows of these ids
    finalize: Callable[[SecureHash, frozenset[str]], bool]
    reconciler: Reconciler | None = None


def role_of(record_type: str, receiver_states_to_record: int) -> str:
    if record_type == RECEIVER:
        return "INITIATOR"
    return "OBSERVER" if receiver_states_to_record == StatesToRecord.ALL_VISIBLE else "PEER"


class LedgerRecoveryFlow(Flow):
    name = LEDGER_RECOVERY_FLOW

    def __init__(self, state: dict[str, Any], deps: RecoveryDeps) -> None:
        super().__init__(state)
        self.deps = deps
        self.params = LedgerRecoveryParameters.from_state(state["params"])
        self._executor: ThreadPoolExecutor | None = None
        self._ahead: dict[X500Name, Ahead] = {}  # the next batch's first requests, under way
        # The next batch as _pending_after read it, for the step after a committed batch: (the
        # "recovered" count it follows, ledgersync, rows). A step that fails is rebuilt from its
        # checkpoint, and this with it.
        self._next_pending: tuple[int, bool, dict[str, list[MissingTransaction]]] | None = None
        self._pages_ahead: dict[str, Future[tuple[list[WireRecord], Any]]] = {}  # by _page_key

    @classmethod
    def initial_state(cls, params: LedgerRecoveryParameters) -> dict[str, Any]:
        return {
            "params": params.to_state(),
            "lanes": [],
            "identified": 0,  # pages of records walked: steps IDENTIFIED_1, _2, ...
            "recovered": 0,  # batches fetched and recorded: steps RECOVERED_1, _2, ...
            "totals": {"records": 0, "transactions": 0, "inFlight": 0, "errors": 0},
            "dryResults": [],
            "push": [],
            "inFlight": [],
        }

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return self.params.recovery_peers

    # -- steps ---------------------------------------------------------------------------------------

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        outcome = self._step(progress_step, ctx)
        if isinstance(outcome, Advance) and (outcome.done or outcome.fail is not None):
            self._close_pool()
        return outcome

    def _step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        try:
            if progress_step == "STARTED" and self.params.reconcile_first:
                return self._reconcile(ctx)
            if progress_step == "RECONCILING":
                return self._reconciled(ctx)
            if progress_step in ("STARTED", "RECONCILED"):
                return self._plan()
            # A page of each lane, then its rows fetched, and so on: walking every lane first held twice
            # the memory at 100,000 (bench/recover.py: 370 MB against 167) and was slower.
            if not self.params.dry_run:
                pending = self._pending(ledgersync=False)
                if pending:
                    return self._recover(pending, ctx.flow_id)
            if any(not lane["done"] for lane in self.state["lanes"]):
                return self._identify(ctx.flow_id)
            if not self.params.dry_run:
                pending = self._pending(ledgersync=True)  # what records did not already bring
                if pending:
                    return self._recover(pending, ctx.flow_id, ledgersync=True)
            if self.params.dry_run and "plan" not in self.state:
                return self._size_plan()
            if self.state["push"]:
                return self._push(ctx.flow_id)
            if self.params.also_finalize and self.state["inFlight"]:
                return self._finalize()
        except PeerError as exc:
            peer = getattr(exc, "peer", None) or "a recovery peer"
            error = LedgerRecoveryException(
                f"cannot go on: {peer} could not be asked ({type(exc).__name__}: {exc}); "
                f"{self.state['totals']['transactions']} transaction(s) recovered so far are kept, "
                "and running LedgerRecoveryFlow again resumes where this run stopped"
            )
            return Advance("PEER_FAILED", fail=error)
        return Advance("DONE", done=True, result=self.summary(ctx.flow_id))

    # -- reconciling first ---------------------------------------------------------------------------

    def _reconcile(self, ctx: FlowContext) -> StepOutcome:
        if self.deps.reconciler is None:
            raise LedgerRecoveryException("reconcileFirst needs LedgerSync, which is off on this node")
        for peer in self.params.recovery_peers:
            self.deps.reconciler.schedule(peer)
        self.state["reconcile"] = {"since": to_epoch_ms(ctx.now), "outcomes": {}}
        log.info("LedgerRecoveryFlow: reconciling with %d peer(s) first", len(self.params.recovery_peers))
        return Advance("RECONCILING")

    def _reconciled(self, ctx: FlowContext) -> StepOutcome:
        reconciler = self.deps.reconciler
        assert reconciler is not None
        since = int(self.state["reconcile"]["since"])
        waiting = []
        outcomes: dict[str, Reconciled] = {}
        for peer in self.params.recovery_peers:
            found = reconciler.outcome(peer, since)
            if found is None:
                waiting.append(str(peer))
            else:
                outcomes[str(peer)] = found
        if waiting:
            return Await(
                (), ctx.now + timedelta(seconds=RECONCILE_POLL_S), f"LedgerSync with {', '.join(waiting)}"
            )
        failed = {p: o.error for p, o in outcomes.items() if o.status == "FAILED"}
        if failed:
            raise LedgerRecoveryException(
                "LedgerSync failed with " + "; ".join(f"{p}: {e}" for p, e in sorted(failed.items()))
            )
        now = self.deps.clock.now()
        wanted = self.params.transaction_role.covers("PEER")
        rows = [
            MissingTransaction(
                tx_id=tx_id,
                peer=peer,
                record_type=LEDGERSYNC,
                role="PEER",
                timestamp=now,
                timestamp_discriminator=0,
                states_to_record=int(StatesToRecord.ONLY_RELEVANT),
                distribution_list=b"",
                flow_id=ctx.flow_id,
                updated_at=now,
            )
            for peer, outcome in sorted(outcomes.items())
            for tx_id in outcome.missing
            if wanted
        ]
        self.state["reconcile"]["outcomes"] = {p: [o.status, len(o.missing)] for p, o in outcomes.items()}
        log.info(
            "LedgerRecoveryFlow: LedgerSync found %s",
            ", ".join(f"{len(o.missing)} missing with {p}" for p, o in sorted(outcomes.items())),
        )
        if self.params.dry_run:
            self.state["dryResults"].extend([r.tx_id, r.peer, r.role, False, False, None] for r in rows)
            return Advance("RECONCILED")
        return Advance("RECONCILED", effect=lambda: self.deps.log.add_missing(rows))

    # -- a dry run's plan ----------------------------------------------------------------------------

    def _size_plan(self) -> StepOutcome:
        """Per peer: what is missing, its bytes, and what the peer would not or could not give."""
        by_peer: dict[str, list[str]] = {}
        held: set[str] = set()
        for tx_id, peer, *_ in self.state["dryResults"]:
            if tx_id not in held:  # the first peer to name a transaction would supply it
                held.add(tx_id)
                by_peer.setdefault(peer, []).append(tx_id)
        ours = self.deps.transactions.transaction_statuses([SecureHash.parse(t) for t in held])
        for ids in by_peer.values():
            ids[:] = [t for t in ids if ours.get(SecureHash.parse(t)) is not TransactionStatus.VERIFIED]

        def sized(item: tuple[str, list[str]]) -> dict[str, Any]:
            peer, ids = item
            return self.deps.fetcher.sizes(X500Name.parse(peer), ids)

        sizes = dict(zip(by_peer, self._pool().map(sized, by_peer.items()), strict=True))
        total = sum(s["bytes"] for s in sizes.values())
        count = sum(s["available"] for s in sizes.values())
        self.state["plan"] = {
            "peers": {
                peer: {
                    "missing": len(by_peer[peer]),
                    "available": s["available"],
                    "bytes": s["bytes"],
                    "cannotRecover": s["failed"],
                }
                for peer, s in sorted(sizes.items())
            },
            "transactions": count,
            "bytes": total,
            "estimatedSeconds": -(-count // ESTIMATED_TX_PER_S),  # whole seconds, rounded up
        }
        return Advance("PLANNED_RECOVERY")

    def _pool(self) -> ThreadPoolExecutor:
        """The peers' threads, kept for the whole run: a pool a step would start new threads each batch,
        and with them new malloc arenas and database connections that RSS keeps."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                # Three a peer: a batch's requests beside the next batch's asked ahead, and the next
                # pages of the peer's two lanes asked ahead (with two, --n 20000 alternated x4: 1,518,
                # 1,518, 1,890, 1,787 tx/s against 1,890, 1,790, 1,715, 1,881 with three).
                max_workers=max(3, min(12, 3 * len(self.params.recovery_peers))),
                thread_name_prefix="ledger-recovery",
            )
            weakref.finalize(self, self._executor.shutdown, wait=False)
        return self._executor

    def _close_pool(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _plan(self) -> StepOutcome:
        window = self.params.time_window
        # Corda's ComparableRecoveryTimeWindow: from the second of fromTime to the end of untilTime's.
        start = from_epoch_ms(to_epoch_ms(window.from_time) // 1000 * 1000)
        until = from_epoch_ms((to_epoch_ms(window.until_time) // 1000 + 1) * 1000)
        whole = TimeWindow(start, until)
        role = self.params.transaction_role
        types = []
        if role.covers("PEER") or role.covers("OBSERVER"):
            types.append(SENDER)
        if role.covers("INITIATOR"):
            types.append(RECEIVER)
        lanes = (
            []
            if self.params.retry_only
            else [(peer, t) for peer in self.params.recovery_peers for t in types]
        )

        def windows_of(lane: tuple[X500Name, str]) -> list[TimeWindow]:
            if not self.params.use_time_window_narrowing:
                return [whole]
            return self._narrow(lane[0], lane[1], whole)

        planned = list(self._pool().map(windows_of, lanes))
        self.state["lanes"] = [
            {
                "peer": str(peer),
                "type": record_type,
                "windows": [window_to_obj(w) for w in windows],
                "at": 0,
                "after": self._cursor_obj(peer, record_type, windows[0]) if windows else None,
                "done": not windows,
            }
            for (peer, record_type), windows in zip(lanes, planned, strict=True)
        ]
        walked = sum(len(w) for w in planned)
        log.info(
            "LedgerRecoveryFlow: %s; %d lane(s), %d window(s) to walk",
            self.params.describe(),
            len(lanes),
            walked,
        )
        if self.params.dry_run:
            return Advance("PLANNED")
        # What no peer supplied last time is asked for again by every run with those peers.
        peers = [str(p) for p in self.params.recovery_peers]
        return Advance("PLANNED", effect=lambda: self.deps.log.requeue(peers))

    def _narrow(self, peer: X500Name, record_type: str, whole: TimeWindow) -> list[TimeWindow]:
        """The sub-windows where the peer's records and ours differ (by count and hash)."""
        reply = self.deps.peers.request(
            peer,
            TOPIC_WINDOW_HASHES,
            {"type": record_type, "window": window_to_obj(whole), "parts": NARROWING_PARTS},
        )
        theirs = reply.get("hashes", [])
        subs = split_window(whole, NARROWING_PARTS)
        differ = []
        for sub, their in zip(subs, theirs, strict=False):
            if int(their[0]) == 0:
                continue
            ours = self._our_keys(peer, record_type, sub)
            if list(keys_digest(ours)) != [int(their[0]), str(their[1])]:
                differ.append(sub)
        return differ

    def _our_keys(
        self, peer: X500Name, record_type: str, window: TimeWindow
    ) -> list[tuple[str, datetime, int]]:
        """Our records that pair with the peer's of record_type in window."""
        keys: list[tuple[str, datetime, int]] = []
        after: RecordCursor | None = None
        while True:
            if record_type == SENDER:  # its sender records naming us <-> our receiver records from it
                page: Any = self.deps.distribution.receiver_records_page(
                    peers=[peer], window=window, after=after
                )
            else:
                page = self.deps.distribution.sender_records_page(peers=[peer], window=window, after=after)
            keys.extend((str(r.tx_id), r.timestamp, r.timestamp_discriminator) for r in page.records)
            after = page.next
            if after is None:
                return keys

    def _cursor_obj(self, peer: X500Name, record_type: str, window: TimeWindow) -> Any:
        if self.params.dry_run:
            return None  # a dry run looks at everything, from the start, and moves no cursor
        return cursor_to_obj(self.deps.log.cursor(_lane_key(str(peer), record_type, window)))

    # -- identifying ---------------------------------------------------------------------------------

    def _page_of(self, lane: dict[str, Any]) -> tuple[list[WireRecord], Any]:
        """A lane's next page of the peer's records, and the cursor after it."""
        window = window_from_obj(lane["windows"][lane["at"]])
        reply = self.deps.peers.request(
            X500Name.parse(lane["peer"]),
            TOPIC_RECORDS,
            {
                "type": lane["type"],
                "window": window_to_obj(window),
                "after": lane["after"],
                "limit": self.params.recovery_batch_size,
            },
        )
        return [WireRecord.from_obj(r) for r in reply.get("records", [])], reply.get("next")

    def _ask_pages_ahead(self) -> None:
        """Ask now for the pages the next step walks (this one recovers the horizon's last rows), so that
        the peers serve them while this step is recorded. Only a cache, as the transactions asked ahead
        are: _identify takes a page asked from the lane's same place, and asks the others."""
        self._pages_ahead = {
            _page_key(lane): self._pool().submit(self._page_of, dict(lane))
            for lane in self.state["lanes"]
            if not lane["done"]
        }

    def _identify(self, flow_id: str) -> StepOutcome:
        active = [lane for lane in self.state["lanes"] if not lane["done"]]
        ahead, self._pages_ahead = self._pages_ahead, {}

        def page_of(lane: dict[str, Any]) -> tuple[list[WireRecord], Any]:
            early = ahead.get(_page_key(lane))
            if early is not None:
                try:
                    return early.result()
                except AgentError:
                    pass  # asked again: a failure is then this step's, and named as usual
            return self._page_of(lane)

        pages = list(self._pool().map(page_of, active))
        now = self.deps.clock.now()
        rows: list[MissingTransaction] = []
        cursors: list[tuple[LaneKey, RecordCursor]] = []
        for lane, (records, following) in zip(active, pages, strict=True):
            peer = X500Name.parse(lane["peer"])
            ours_type = RECEIVER if lane["type"] == SENDER else SENDER
            have = self.deps.distribution.record_keys(ours_type, peer, [r.tx_id for r in records])
            for record in records:
                role = role_of(lane["type"], record.receiver_states_to_record)
                if record.key in have or not self.params.transaction_role.covers(role):
                    continue
                rows.append(
                    MissingTransaction(
                        tx_id=record.tx_id,
                        peer=lane["peer"],
                        record_type=lane["type"],
                        role=role,
                        timestamp=record.timestamp,
                        timestamp_discriminator=record.timestamp_discriminator,
                        states_to_record=(record.receiver_states_to_record if lane["type"] == SENDER else -1),
                        distribution_list=record.distribution_list,
                        flow_id=flow_id,
                        updated_at=now,
                    )
                )
            window = window_from_obj(lane["windows"][lane["at"]])
            if records and following is not None:
                lane["after"] = following
                cursors.append((_lane_key(lane["peer"], lane["type"], window), cursor_from_obj(following)))  # type: ignore[arg-type]
            else:
                if records:  # the window's last page: its cursor is its last record
                    last = records[-1]
                    end = RecordCursor(last.timestamp, last.timestamp_discriminator, last.tx_id, peer.peer_id)
                    cursors.append((_lane_key(lane["peer"], lane["type"], window), end))
                lane["at"] += 1
                if lane["at"] >= len(lane["windows"]):
                    lane["done"] = True
                    lane["after"] = None
                else:
                    nxt = window_from_obj(lane["windows"][lane["at"]])
                    lane["after"] = self._cursor_obj(peer, lane["type"], nxt)
        self.state["identified"] += 1
        self.state["horizon"] = self._reached()
        step = f"IDENTIFIED_{self.state['identified']}"
        if self.params.verbose_logging:
            log.info("LedgerRecoveryFlow: %s: %d missing", step, len(rows))
        if self.params.dry_run:
            self.state["dryResults"].extend([r.tx_id, r.peer, r.role, False, False, None] for r in rows)
            return Advance(step)

        # The rows the next step will take (pending's order), asked for while these are written: this
        # page's, and those of earlier pages that the new horizon lets through (a lane ahead in time left
        # them pending; they come first). Without the latter, a third of the transactions at 100,000
        # were asked only when their step needed them (bench/recover.py).
        horizon = self._horizon()
        upcoming = self._read_pending(ledgersync=False)
        for row in rows:
            if horizon is None or (row.timestamp, row.timestamp_discriminator) <= horizon:
                upcoming.setdefault(row.peer, []).append(row)
        batch = self.params.recovery_batch_size
        self._ask_ahead(
            {peer: sorted(peer_rows, key=_pending_order)[:batch] for peer, peer_rows in upcoming.items()},
            set(),
        )

        def effect() -> None:
            self.deps.log.add_missing(rows)
            for key, cursor in cursors:
                self.deps.log.save_cursor(key, cursor, now)

        return Advance(step, effect=effect)

    # -- recovering ----------------------------------------------------------------------------------

    def _pending(self, *, ledgersync: bool) -> dict[str, list[MissingTransaction]]:
        cached, self._next_pending = self._next_pending, None
        if cached is not None and cached[:2] == (self.state["recovered"], ledgersync) and cached[2]:
            # Read while the last batch was fetched, and only that batch's rows have changed since
            # (an empty one is read again: rows a requeue put back must not be missed at the end).
            return cached[2]
        return {peer: rows for peer, rows in self._read_pending(ledgersync=ledgersync).items() if rows}

    def _read_pending(self, *, ledgersync: bool) -> dict[str, list[MissingTransaction]]:
        """Each peer's first batch of PENDING rows up to the horizon, as the log holds them now."""
        batch = self.params.recovery_batch_size
        horizon = self._horizon()
        return {
            str(peer): self.deps.log.pending(
                peer=str(peer), limit=batch, ledgersync=ledgersync, until=horizon
            )
            for peer in self.params.recovery_peers
        }

    def _horizon(self) -> tuple[datetime, int] | None:
        """The latest (timestamp, discriminator) every lane still walking has reached: the rows up to it
        are recovered before the next page is walked. A lane with few records covers more time a page,
        and its rows ahead of the others' would need parents no page has named yet: each such parent
        was fetched as back-chain, one more round trip (27 % of the transactions at 100,000 in
        bench/recover.py, the peer walking back-chains). None once every lane is walked."""
        horizon = self.state.get("horizon")
        return None if horizon is None else (from_epoch_ms(horizon[0]), int(horizon[1]))

    def _reached(self) -> list[int] | None:
        """_horizon's value after this step's pages: the earliest place a lane may still hold a record
        (its cursor, or the start of its next window)."""
        reached: list[int] | None = None
        for lane in self.state["lanes"]:
            if lane["done"]:
                continue
            cursor = cursor_from_obj(lane["after"])
            if cursor is not None:
                at = [to_epoch_ms(cursor.timestamp), cursor.timestamp_discriminator]
            else:
                start = window_from_obj(lane["windows"][lane["at"]]).from_time
                at = [to_epoch_ms(start) if start is not None else 0, -1]
            if reached is None or at < reached:
                reached = at
        return reached

    def _ask_ahead(self, upcoming: dict[str, list[MissingTransaction]], coming: set[SecureHash]) -> None:
        """Ask now for the next batch's transactions (upcoming: its rows by peer), so that the peers
        serve them while this step is recorded. The next step asks for whatever this guessed wrong
        (rows this step's commit changes); coming: what this step records itself."""
        first: dict[str, str] = {}
        for peer in self.params.recovery_peers:
            for row in upcoming.get(str(peer), ()):
                first.setdefault(row.tx_id, str(peer))
        if not first:
            return
        held = self.deps.transactions.transaction_statuses([SecureHash.parse(t) for t in first])
        asks: dict[X500Name, list[str]] = {}
        for tx_id, name in first.items():
            h = SecureHash.parse(tx_id)
            if h not in coming and held.get(h) is not TransactionStatus.VERIFIED:
                asks.setdefault(X500Name.parse(name), []).append(tx_id)
        self._ahead = self.deps.fetcher.ask_ahead(asks, self._pool().submit)

    def _pending_after(
        self, current: dict[str, list[MissingTransaction]], *, ledgersync: bool
    ) -> dict[str, list[MissingTransaction]]:
        """The batch _pending will give once this one's rows are marked."""
        batch = self.params.recovery_batch_size
        after: dict[str, list[MissingTransaction]] = {}
        for peer in self.params.recovery_peers:
            now = {r.tx_id for r in current.get(str(peer), ())}
            rows = self.deps.log.pending(
                peer=str(peer), limit=batch + len(now), ledgersync=ledgersync, until=self._horizon()
            )
            after[str(peer)] = [r for r in rows if r.tx_id not in now][:batch]
        return after

    def _recover(
        self, pending: dict[str, list[MissingTransaction]], flow_id: str, *, ledgersync: bool = False
    ) -> StepOutcome:
        # The last batch's replies (about 1 MB a request) are freed by now: give their pages back to
        # the OS, or glibc keeps them and RSS grows a batch at a time.
        release_freed_memory()
        # A transaction several peers' records name (one we initiated and sent to both, say) is
        # fetched and verified once, from the first of them; the others are asked only if it fails.
        first: dict[str, str] = {}
        for peer, rows in pending.items():
            for row in rows:
                first.setdefault(row.tx_id, peer)
        held = self.deps.transactions.transaction_statuses([SecureHash.parse(t) for t in first])
        needed = {t for t in first if held.get(SecureHash.parse(t)) is not TransactionStatus.VERIFIED}

        asks = {
            X500Name.parse(peer): [r.tx_id for r in rows if r.tx_id in needed and first[r.tx_id] == peer]
            for peer, rows in pending.items()
        }
        pool = self._pool()
        ahead, self._ahead = self._ahead, {}
        # The next batch asked for now, so that the peers serve it, and it is decoded and its signatures
        # checked, while this one is verified and recorded.
        after = self._pending_after(pending, ledgersync=ledgersync)
        self._next_pending = (self.state["recovered"] + 1, ledgersync, {p: r for p, r in after.items() if r})
        self._ask_ahead(after, {SecureHash.parse(t) for t in needed})
        if not any(after.values()) and not ledgersync:
            self._ask_pages_ahead()  # the next step walks the lanes' next pages
        by_peer = self.deps.fetcher.fetch_many(
            asks, run=lambda f, items: list(pool.map(f, items)), ahead=ahead
        )
        fetched = {str(peer): f for peer, f in by_peer.items()}
        got = {str(stx.id) for f in fetched.values() for stx, _ in f.verified}
        for peer, rows in pending.items():
            again = [
                r.tx_id for r in rows if r.tx_id in needed and first[r.tx_id] != peer and r.tx_id not in got
            ]
            if again:
                fetched[peer].merge(self.deps.fetcher.fetch(X500Name.parse(peer), again))
                got |= {str(stx.id) for stx, _ in fetched[peer].verified}
        now = self.deps.clock.now()
        plan = _RecordingPlan(self.deps, now, flow_id, fetched.values())
        for peer, rows in pending.items():
            plan.add(peer, rows, fetched[peer])
        totals = self.state["totals"]
        totals["records"] += plan.records
        totals["transactions"] += plan.transactions
        totals["inFlight"] += len(plan.in_flight)
        totals["errors"] += plan.errors
        if self.params.optimistic_initiator_recovery:
            self.state["push"].extend(plan.to_push)
        self.state["inFlight"].extend(plan.in_flight)
        self.state["recovered"] += 1
        if self.params.verbose_logging:
            log.info(
                "LedgerRecoveryFlow: RECOVERED_%d: %d transaction(s), %d record(s), %d error(s)",
                self.state["recovered"],
                plan.transactions,
                plan.records,
                plan.errors,
            )
        return Advance(f"RECOVERED_{self.state['recovered']}", effect=plan.commit)

    # -- after -----------------------------------------------------------------------------------------

    def _push(self, flow_id: str) -> StepOutcome:
        """Push what we initiated to the other peers of its list (optimisticInitiatorRecovery)."""
        pushed: list[RecoveryResultRow] = []
        now = self.deps.clock.now()
        for tx_id, targets, from_peer in self.state["push"]:
            stored = self.deps.transactions.get_stored(SecureHash.parse(tx_id))
            if stored is None:
                continue
            ok = True
            causes = []
            for target in targets:
                try:
                    self.deps.push(X500Name.parse(target), stored.stx)
                except AgentError as exc:
                    ok = False
                    causes.append(f"push to {target}: {type(exc).__name__}: {exc}")
            pushed.append(
                RecoveryResultRow(
                    flow_id, tx_id, from_peer, "INITIATOR", True, ok, "; ".join(causes) or None, now
                )
            )
        self.state["push"] = []
        return Advance("PUSHED", effect=lambda: self.deps.log.add_results(pushed))

    def _finalize(self) -> StepOutcome:
        done = 0
        for tx_id in self.state["inFlight"]:
            try:
                if self.deps.finalize(SecureHash.parse(tx_id), frozenset(self.params.force_recover_flow_ids)):
                    done += 1
            except AgentError as exc:
                log.warning("LedgerRecoveryFlow: alsoFinalize could not recover %s: %s", tx_id, exc)
        log.info(
            "LedgerRecoveryFlow: alsoFinalize recovered %d of %d IN_FLIGHT", done, len(self.state["inFlight"])
        )
        self.state["inFlight"] = []
        return Advance("FINALISED")

    def summary(self, flow_id: str) -> dict[str, Any]:
        totals = self.state["totals"]
        if self.params.dry_run:
            results = [
                {
                    "transactionId": r[0],
                    "recoveryPeer": r[1],
                    "transactionRole": r[2],
                    "synchronised": False,
                    "synchronisedInitiated": False,
                    "failureCause": None,
                }
                for r in self.state["dryResults"]
            ]
        else:
            results = [result_json(r) for r in self.deps.log.results(flow_id, limit=MAX_RESULTS_RETURNED + 1)]
        truncated = len(results) > MAX_RESULTS_RETURNED
        return {
            "flowId": flow_id,
            "dryRun": self.params.dry_run,
            "totalRecoveredRecords": totals["records"],
            "totalRecoveredTransactions": totals["transactions"],
            "totalRecoveredInFlightTransactions": totals["inFlight"],
            "totalErrors": totals["errors"],
            "missing": len(self.state["dryResults"]) if self.params.dry_run else None,
            "plan": self.state.get("plan"),
            "ledgerSync": self.state.get("reconcile", {}).get("outcomes"),
            "results": results[:MAX_RESULTS_RETURNED],
            "resultsTruncated": truncated,
        }


def result_json(row: RecoveryResultRow) -> dict[str, Any]:
    return {
        "transactionId": row.tx_id,
        "recoveryPeer": row.peer,
        "transactionRole": row.role,
        "synchronised": row.synchronised,
        "synchronisedInitiated": row.synchronised_initiated,
        "failureCause": row.failure_cause,
    }


def _pending_order(row: MissingTransaction) -> tuple[datetime, int, str]:
    """A peer's PENDING rows in the order RecoveryLog.pending gives them."""
    return (row.timestamp, row.timestamp_discriminator, row.tx_id)


def _page_key(lane: dict[str, Any]) -> str:
    """Where a lane's next page starts: its peer, record type, window and cursor."""
    return json.dumps([lane["peer"], lane["type"], lane["at"], lane["after"]])


def _lane_key(peer: str, record_type: str, window: TimeWindow) -> LaneKey:
    frm, until = window_to_obj(window)
    return LaneKey(peer, record_type, frm, until)


class _RecordingPlan:
    """One batch's writes, worked out before the commit: what to record, with which records."""

    def __init__(self, deps: RecoveryDeps, now: datetime, flow_id: str, fetched: Iterable[Fetched]) -> None:
        self.deps = deps
        # Whichever peer brought a transaction, every row naming it is recovered with it.
        self.verified = {stx.id: (stx, status) for f in fetched for stx, status in f.verified}
        self.now = now
        self.flow_id = flow_id
        self.writes: list[
            tuple[
                SignedTransaction,
                TransactionStatus,
                StatesToRecord,
                list[SenderDistribution],
                ReceiverDistribution | None,
            ]
        ] = []
        # The records of transactions we hold, written without reading the transactions back.
        self.sender_records: list[SenderDistribution] = []
        self.receiver_records: list[ReceiverDistribution] = []
        self.back_chain: list[SignedTransaction] = []
        self.back_chain_states: dict[SecureHash, StatesToRecord] = {}
        self.marks: list[tuple[MissingTransaction, str, str | None]] = []
        self.results: list[RecoveryResultRow] = []
        self.records = 0
        self.transactions = 0
        self.errors = 0
        self.in_flight: list[str] = []
        self.to_push: list[list[Any]] = []
        self._seen: set[SecureHash] = set()

    def add(self, peer: str, rows: Sequence[MissingTransaction], fetched: Fetched) -> None:
        verified = self.verified
        asked = {SecureHash.parse(r.tx_id) for r in rows}
        statuses = self.deps.transactions.transaction_statuses(asked)
        copies = [
            stx
            for stx, _ in fetched.verified
            if stx.id in fetched.back_chain and stx.id not in asked and stx.id not in self._seen
        ]
        # A back-chain copy that is also missing in its own right (a row still PENDING, from any peer)
        # is recorded as that row would: an observer's copy keeps every output. (A row in a page not
        # walked yet is not known: such an observer's copy keeps only our outputs; docs/ledger-recovery.md.)
        pending_states = self.deps.log.pending_states_to_record([str(stx.id) for stx in copies])
        for copy_id, ordinals in pending_states.items():
            given = [StatesToRecord(o) for o in ordinals if o >= 0]
            if given:
                h = SecureHash.parse(copy_id)
                known = self.back_chain_states.get(h)
                widest = min(given, key=_WIDTH.__getitem__)
                if known is None or _WIDTH[widest] < _WIDTH[known]:
                    self.back_chain_states[h] = widest
        for stx in copies:
            self._count(stx.id)
            self.back_chain.append(stx)
        for row in rows:
            tx_id = SecureHash.parse(row.tx_id)
            try:
                sender_records, receiver_record, states = self._records_of(row, tx_id)
            except (DistributionListError, AgentError) as exc:
                self._fail(row, f"{type(exc).__name__}: {exc}")
                continue
            found = verified.get(tx_id)
            held = statuses.get(tx_id)
            if (
                found is None
                and held is not TransactionStatus.VERIFIED
                and held is not TransactionStatus.IN_FLIGHT
            ):
                self._fail(row, fetched.failed.get(row.tx_id) or _chain_cause(row.tx_id, fetched))
                continue
            if found is not None:
                stx, status = found
                self.writes.append((stx, status, states, sender_records, receiver_record))
                if self._count(tx_id) and status is TransactionStatus.IN_FLIGHT:
                    self.in_flight.append(row.tx_id)
            elif row.record_type == LEDGERSYNC:  # its records already brought it back
                self.marks.append((row, RECOVERED, None))
                continue
            else:  # we hold it (another peer's row brought it in an earlier batch): only records lost
                self.sender_records.extend(sender_records)
                if receiver_record is not None:
                    self.receiver_records.append(receiver_record)
            self.records += len(sender_records) + (receiver_record is not None)
            self.marks.append((row, RECOVERED, None))
            self.results.append(
                RecoveryResultRow(self.flow_id, row.tx_id, peer, row.role, True, False, None, self.now)
            )
            if row.record_type == RECEIVER and sender_records:
                targets = sorted({str(r.peer) for r in sender_records} - {peer, str(self.deps.me)})
                if targets:
                    self.to_push.append([row.tx_id, targets, peer])

    def _count(self, tx_id: SecureHash) -> bool:
        """Count a transaction recovered once, whichever peer or back-chain brought it."""
        if tx_id in self._seen:
            return False
        self._seen.add(tx_id)
        self.transactions += 1
        return True

    def _fail(self, row: MissingTransaction, cause: str) -> None:
        self.errors += 1
        self.marks.append((row, UNRECOVERABLE, cause))
        self.results.append(
            RecoveryResultRow(self.flow_id, row.tx_id, row.peer, row.role, False, False, cause, self.now)
        )
        log.warning("LedgerRecoveryFlow: %s from %s not recovered: %s", row.tx_id, row.peer, cause)

    def _records_of(
        self, row: MissingTransaction, tx_id: SecureHash
    ) -> tuple[list[SenderDistribution], ReceiverDistribution | None, StatesToRecord]:
        peer = X500Name.parse(row.peer)
        if row.record_type == LEDGERSYNC:  # no record to rebuild: it never had one with that peer
            return [], None, StatesToRecord(row.states_to_record)
        if row.record_type == SENDER:
            how = StatesToRecord(row.states_to_record)
            return (
                [],
                ReceiverDistribution(
                    tx_id, peer, row.timestamp, row.timestamp_discriminator, row.distribution_list, how
                ),
                how,
            )
        # Our own list, kept by the peer: only we can open it, and a changed byte is refused.
        listed, header = decrypt(row.distribution_list, self.deps.aes_keys.keys())
        if (header.sender_recorded_timestamp, header.time_discriminator) != (
            row.timestamp,
            row.timestamp_discriminator,
        ):
            raise DistributionListError("its header does not match the record's key: tampered with")
        records = []
        for peer_id, how in sorted(listed.peers.items()):
            name = self.deps.network_map.by_peer_id(peer_id).name
            records.append(
                SenderDistribution(
                    tx_id,
                    name,
                    row.timestamp,
                    row.timestamp_discriminator,
                    listed.sender_states_to_record,
                    how,
                )
            )
        return records, None, listed.sender_states_to_record

    def commit(self) -> None:
        """Everything in one call to the store, in one dependency order, back-chain copies included (a
        parent recorded after its child would put back, unconsumed, the state the child spent; a
        back-chain from one peer may spend what another peer's batch brings). A transaction written
        more than once (several peers' records) is recorded with the widest StatesToRecord any gives.
        Then the rows marked and the results written."""
        written = {w[0].id for w in self.writes}
        recordings = [
            Recording(stx, states_to_record=self.back_chain_states.get(stx.id, StatesToRecord.ONLY_RELEVANT))
            for stx in self.back_chain
            if stx.id not in written
        ] + [
            Recording(stx, status, states, sender_records, receiver_record)
            for stx, status, states, sender_records, receiver_record in self.writes
        ]
        widest: dict[SecureHash, StatesToRecord] = {}
        for r in recordings:
            known = widest.get(r.stx.id)
            if known is None or _WIDTH[r.states_to_record] < _WIDTH[known]:
                widest[r.stx.id] = r.states_to_record
        unique = {r.stx.id: r.stx for r in recordings}
        order = {stx.id: i for i, stx in enumerate(dependency_order(list(unique.values())))}
        self.deps.transactions.record_transactions(
            [
                replace(r, states_to_record=widest[r.stx.id])
                for r in sorted(recordings, key=lambda r: order[r.stx.id])
            ]
        )
        self.deps.transactions.record_distribution(self.sender_records, self.receiver_records)
        self.deps.log.mark_many(
            [(row.tx_id, row.peer, row.record_type, outcome, cause) for row, outcome, cause in self.marks],
            self.now,
        )
        self.deps.log.add_results(self.results)


# The observer's ALL_VISIBLE keeps more of a transaction's outputs than ONLY_RELEVANT, which keeps more than NONE.
_WIDTH = {StatesToRecord.ALL_VISIBLE: 0, StatesToRecord.ONLY_RELEVANT: 1, StatesToRecord.NONE: 2}


def _chain_cause(tx_id: str, fetched: Fetched) -> str:
    if fetched.failed:
        first = sorted(fetched.failed.items())[0]
        return f"its back-chain did not come: {first[0]}: {first[1]}"
    return "the peer did not supply it"

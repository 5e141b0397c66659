"""A simulated network of real node runtimes: in-process transport, network faults, crashes, restarts, time.

Each node runs as in production (agent.node.open_node + agent.runtime.build_runtime) on a SQLite file
or, with backend "postgresql", a PostgreSQL database of its own (made per seed from a migrated template
database: CREATE DATABASE ... TEMPLATE), over a transport stack of three layers:

    NodeLink        the caller's side: a dead incarnation sends nothing (its thread unwinds)
    FaultyTransport drop, delay, duplicate, reorder (agent/p2p/faulty.py), seeded per incarnation
    CalleeGuard     the callee's side: counts calls into an incarnation; a reply from one that died
                    meanwhile is lost (a dead process sends no reply)

A crash (a FaultPlan whose crash action is ours, or `kill` between operations) marks the incarnation
dead, fences its store (every write raises SimulatedCrash: a dead process writes nothing) and detaches
its address. The restarter thread then stops its engine abruptly, waits for calls into it to drain,
closes the store and boots a new incarnation over the same database file at the same address; its
engine resumes the RUNNABLE flows from their checkpoints.

Time is one ManualClock shared by every node (the clocks move together, as messages carry timestamps
checked against the 2-minute skew). It moves when PeerClient's back-off sleeps, when the workload
says so, and when the network is idle: the ticker moves it one second whenever a tick of real time
passed without a message, so a handler that waits (real time) for a flow parked on a timer is not
stuck. `settle` heals the network and moves time until no flow is RUNNABLE.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import sys
import threading
import time
import traceback
from collections import deque
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import psycopg2

from agent.clock import ManualClock
from agent.errors import SimulatedCrash, TransientTransportError
from agent.flows.checkpoints import FlowStatus
from agent.flows.faults import FaultAction, FaultPlan
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.network.bootstrap import (
    CERTIFICATES_DIR,
    DATABASE_FILE,
    DEFAULT_NOTARY,
    NETWORK_MAP_FILE,
    NetworkLayout,
    default_node_names,
    init_network,
    node_config,
)
from agent.node import open_node
from agent.p2p.faulty import FaultyTransport, HeldMessages, NetworkFaults
from agent.p2p.inprocess import InProcessNetwork, InProcessTransport
from agent.p2p.retry import RetryPolicy
from agent.recovery.aes_keys import NodeAesKeys
from agent.runtime import AgentRuntime, build_runtime
from agent.store.database import backup_sqlite
from agent.store.ledger_store import LedgerStore

log = logging.getLogger("ledger_agent.simulation")

NODES = tuple(default_node_names(3))
NOTARY = DEFAULT_NOTARY

# Every (flow, step) where the engine can crash a node: the 17 points of tests/test_processes.py.
CRASH_POINTS = (
    *(
        ("FinalityFlow", step)
        for step in (
            "VERIFIED",
            "AFTER_RECORD",
            "AFTER_BROADCAST",
            "AFTER_NOTARISE",
            "BEFORE_SEND_SIGNATURE",
            "AFTER_SEND_SIGNATURE",
            "FINALISED",
            "ABORTED",
        )
    ),
    *(
        ("ReceiveFinalityFlow", step)
        for step in ("RECEIVED", "BACKCHAIN_RESOLVED", "RECORDED", "BEFORE_FINALISE", "FINALISED", "ABORTED")
    ),
)

# Real-time bounds: waits on conditions end by these, and a seed that needs longer fails, named.
DRAIN_S = 1.0  # calls into a dead incarnation finish (they can write nothing more anyway)
RESTART_WAIT_S = 20.0
SETTLE_REAL_S = 60.0
TICK_REAL_S = 0.01  # the ticker looks this often whether anything moved
TICK = timedelta(seconds=1)  # and moves the clock this far when nothing did
SETTLE_STEP = timedelta(seconds=10)
SETTLE_SIM = timedelta(hours=6)  # simulated time bound on reaching quiescence

# A dead incarnation's store refuses every write a node's services make: by the store's attribute it
# goes through (a repository, the unit of work), and the store's own bulk_record.
_STORE_WRITES = {
    "unit": ("unit_of_work",),
    "transactions": ("record_transaction", "remove_in_flight"),
    "checkpoints": ("save_checkpoint", "update_checkpoint"),
    "keys": ("add_aes_keys", "add_aes_keys_if_none"),
}


class SimulationStuckError(AssertionError):
    """The harness could not bring the network to quiescence within its bounds."""


PG_ADMIN_URL = os.environ.get("LEDGER_AGENT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def _pg_admin(sql: str) -> None:
    conn = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def _pg_url(database: str) -> str:
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"


@dataclass(frozen=True)
class Template:
    """Certificates, keys, the signed network map and a first-start database per node, made once per
    process (init_network and the migrations take longer than a seed's whole workload). With backend
    "postgresql", each node's first-start database is a PostgreSQL template database."""

    layout: NetworkLayout
    backend: str = "sqlite"
    pg_templates: dict[str, str] = field(default_factory=dict)  # node folder name -> template database

    @classmethod
    def create(cls, directory: Path, backend: str = "sqlite") -> Template:
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: allowed {', '.join(BACKENDS)}")
        # Valid from the real now: every simulation's clock starts at the real now too.
        layout = init_network(directory, list(NODES), NOTARY)
        templates: dict[str, str] = {}
        for i, entry in enumerate(layout.nodes):
            url = f"sqlite:///{entry.folder / DATABASE_FILE}"
            if backend == "postgresql":
                database = f"ledger_sim_tmpl_{os.getpid()}_{i}"
                _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                _pg_admin(f'CREATE DATABASE "{database}"')
                templates[entry.folder.name] = database
                url = _pg_url(database)
            store = LedgerStore(url)  # migrated here
            NodeAesKeys(store.keys, entry.name).keys()  # the ten keys of a first start
            store.close()  # the last connection: SQLite folds the WAL back; a template has no user
        return cls(layout, backend, templates)

    def drop(self) -> None:
        """Drop the PostgreSQL template databases (nothing to do for SQLite)."""
        for database in self.pg_templates.values():
            _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _fence(store: LedgerStore) -> None:
    """Make every write to store raise SimulatedCrash: what a dead process leaves is all there is."""

    def refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
        raise SimulatedCrash("a write by a dead node")

    setattr(store, "bulk_record", refuse)  # noqa: B010
    for attribute, names in _STORE_WRITES.items():
        target = getattr(store, attribute)
        for name in names:
            setattr(target, name, refuse)


@dataclass(eq=False)
class Incarnation:
    """One life of a node, from boot to crash."""

    number: int
    dead: threading.Event = field(default_factory=threading.Event)
    store: LedgerStore | None = None
    runtime: AgentRuntime | None = None
    faulty: FaultyTransport | None = None
    calls_in: int = 0  # calls into its handlers under way
    changed: threading.Condition = field(default_factory=threading.Condition)

    def enter(self) -> None:
        with self.changed:
            self.calls_in += 1

    def leave(self) -> None:
        with self.changed:
            self.calls_in -= 1
            self.changed.notify_all()


@dataclass(eq=False)
class NodeSlot:
    name: X500Name
    config: Path
    address: str
    current: Incarnation
    crashes: int = 0


class Simulation:
    """A notary and three nodes; `seed` fixes the workload's draws and every fault decision."""

    def __init__(
        self,
        seed: int,
        template: Template,
        workdir: Path,
        *,
        faults: NetworkFaults,
        crash_chance: float,
        max_crashes: int = 3,
    ) -> None:
        self.seed = seed
        self.workdir = workdir
        self.net_faults = faults
        self.crash_chance = crash_chance
        self.max_crashes = max_crashes
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        self.network = InProcessNetwork()
        self.inprocess = InProcessTransport(self.network)
        self.held = HeldMessages()
        self.healed = False
        self.events: list[str] = []
        self.messages = 0
        self._lock = threading.Condition(threading.RLock())
        self._to_restart: deque[NodeSlot] = deque()
        self._restarting = 0
        self._stopping = threading.Event()
        self._crash_rng = random.Random(f"{seed}:crashes")
        self._pg_databases: list[str] = []
        self.slots: dict[X500Name, NodeSlot] = {}
        for entry in template.layout.nodes:
            config = self._node_folder(template, entry.name, entry.config, entry.p2p_address)
            self.slots[entry.name] = NodeSlot(entry.name, config, entry.p2p_address, Incarnation(0))
        self._by_address = {slot.address: slot for slot in self.slots.values()}
        self._ticking = threading.Event()
        self._threads: list[threading.Thread] = []
        # Pairs of addresses that cannot reach each other (a partition) until heal() or settle().
        self.cuts: set[frozenset[str]] = set()
        self.backend = template.backend
        self.backups: dict[X500Name, Path] = {}  # a node's last backup (SQLite's online backup)
        self._restore_from: dict[X500Name, Path] = {}  # applied by the restart that follows the kill
        self.restored: set[X500Name] = set()  # nodes restored from a backup: they recover at the end
        # What restores took from each node: the transactions its database held when it died to be
        # restored and the backup put in its place did not (the invariants' one exemption).
        self.lost: dict[X500Name, set[SecureHash]] = {}

    def _database_url(self, template: Template, folder: Path, config: Path) -> str:
        """A fresh database for one node of this seed: a copy of the template's first-start one."""
        if template.backend == "postgresql":
            source = template.pg_templates[config.parent.name]
            database = f"ledger_sim_{os.getpid()}_{self.seed}_{len(self._pg_databases)}"
            _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            _pg_admin(f'CREATE DATABASE "{database}" TEMPLATE "{source}"')
            self._pg_databases.append(database)
            return _pg_url(database)
        shutil.copyfile(config.parent / DATABASE_FILE, folder / DATABASE_FILE)
        return f"sqlite:///{folder / DATABASE_FILE}"

    def _node_folder(self, template: Template, name: X500Name, config: Path, address: str) -> Path:
        """A node.conf of our own (a fresh database) beside links to the template's certificates."""
        folder = self.workdir / config.parent.name
        folder.mkdir(parents=True)
        (folder / CERTIFICATES_DIR).symlink_to(config.parent / CERTIFICATES_DIR)
        map_link = self.workdir / NETWORK_MAP_FILE
        if not map_link.exists():
            map_link.symlink_to(template.layout.network_map)
        url = self._database_url(template, folder, config)
        text = node_config(name, address, "127.0.0.1:1", url, notary=name == NOTARY)
        (folder / "node.conf").write_text(text)
        return folder / "node.conf"

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        for slot in self.slots.values():
            self._boot(slot)
        threads = (
            (self._restarter, "sim-restarter"),
            (self._ticker, "sim-ticker"),
            (lambda: self.held.courier(self._stopping), "sim-courier"),
        )
        for target, name in threads:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._ticking.set()

    def close(self) -> None:
        self.held.stop(self._stopping)
        with self._lock:
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(RESTART_WAIT_S)
        for slot in self.slots.values():
            # Dead or alive: no engine of this seed may outlive it (their pools would pile up).
            slot.current.dead.set()
            runtime = slot.current.runtime
            if runtime is not None:
                runtime.engine.shutdown(DRAIN_S)
                runtime.node.close()
        shutil.rmtree(self.workdir, ignore_errors=True)
        for database in self._pg_databases:
            _pg_admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def runtime(self, name: X500Name) -> AgentRuntime:
        """The node's current runtime (it may die under the caller: SimulatedCrash then).

        SimulatedCrash at once if the node is down or still starting (a workload thread may call while
        the restarter boots it): to a caller, a node that is not running.
        """
        incarnation = self.slots[name].current
        runtime = incarnation.runtime
        if runtime is None or incarnation.dead.is_set():
            raise SimulatedCrash(f"{name} is down")
        return runtime

    def _crash_plan(self, slot: NodeSlot, incarnation: Incarnation) -> FaultPlan:
        faults: dict[tuple[str, str], FaultAction] = {}
        if slot.name != NOTARY and slot.crashes < self.max_crashes:
            chance = self.crash_chance if incarnation.number == 1 else self.crash_chance / 2
            if self._crash_rng.random() < chance:
                point = self._crash_rng.choice(CRASH_POINTS)
                # A third of the crashes strike between a step's sends and its commit (the replayed
                # step sends again). Its own generator, so every seed keeps the rest of its schedule.
                mode = random.Random(f"{self.seed}:crash-mode:{slot.name}:{incarnation.number}")
                faults[point] = FaultAction.CRASH_BEFORE if mode.random() < 1 / 3 else FaultAction.CRASH

        def crash(flow_name: str, step: str) -> NoReturn:
            self.kill(slot.name, f"crash at {flow_name}.{step}", incarnation)
            raise SimulatedCrash(f"{slot.name} at {flow_name}.{step}")

        return FaultPlan(faults, crash)

    def _boot(self, slot: NodeSlot) -> None:
        incarnation = Incarnation(slot.current.number + 1)
        rng = random.Random(f"{self.seed}:{slot.name}:{incarnation.number}")
        faulty = FaultyTransport(CalleeGuard(self), self.net_faults, rng, self.held)
        faulty.enabled = not self.healed
        incarnation.faulty = faulty
        plan = self._crash_plan(slot, incarnation)
        with self._lock:
            slot.current = incarnation
        node = open_node(slot.config, clock=self.clock)
        incarnation.store = node.store
        retry = RetryPolicy(sleep=self.clock.sleep, rng=random.Random(rng.random()))
        link = NodeLink(self, incarnation, faulty, slot.address)
        runtime = build_runtime(node, link, retry=retry, faults=plan)
        with self._lock:
            incarnation.runtime = runtime
            if incarnation.dead.is_set():  # it crashed while resuming its flows: the restarter sees to it
                _fence(node.store)
                return
            self.network.attach(slot.address, runtime.peer_service)
        for (flow_name, step), action in plan.faults.items():
            when = " (before its commit)" if action is FaultAction.CRASH_BEFORE else ""
            self.events.append(f"{slot.name} #{incarnation.number} will crash at {flow_name}.{step}{when}")

    def kill(self, name: X500Name, why: str, incarnation: Incarnation | None = None) -> bool:
        """The node's process dies now (if it is that incarnation and alive); the restarter reboots it."""
        slot = self.slots[name]
        with self._lock:
            incarnation = incarnation or slot.current
            if incarnation is not slot.current or incarnation.dead.is_set():
                return False
            incarnation.dead.set()
            slot.crashes += 1
            if incarnation.store is not None:
                _fence(incarnation.store)
            if incarnation.runtime is not None and self.network.service_at(slot.address) is (
                incarnation.runtime.peer_service
            ):
                self.network.detach(slot.address)
            self.events.append(f"{name} #{incarnation.number} died: {why}")
            self._to_restart.append(slot)
            self._lock.notify_all()
        return True

    def _restarter(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: bool(self._to_restart) or self._stopping.is_set())
                if self._stopping.is_set():
                    return
                slot = self._to_restart.popleft()
                self._restarting += 1
            try:
                self._restart(slot)
            except Exception:
                log.exception("could not restart %s", slot.name)
                self.events.append(f"{slot.name}: restart failed")
            finally:
                with self._lock:
                    self._restarting -= 1
                    self._lock.notify_all()

    def _restart(self, slot: NodeSlot) -> None:
        old = slot.current
        if old.runtime is not None:
            # Abrupt: the timer and the pool stop, waiters wake; steps under way can write nothing more.
            old.runtime.engine.shutdown(DRAIN_S)
        with old.changed:
            old.changed.wait_for(lambda: old.calls_in == 0, DRAIN_S)
        if old.store is not None:
            old.store.close()
        with self._lock:
            backup = self._restore_from.pop(slot.name, None)
        if backup is not None:  # the operator puts last night's backup in place of the database
            # Through SQLite (pages written over the file and its WAL): a dead incarnation's threads may
            # still hold connections, for which a file copied over and its journals deleted are an I/O error.
            database = slot.config.parent / DATABASE_FILE
            lost = _transaction_ids(database) - _transaction_ids(backup)
            backup_sqlite(backup, database)
            with self._lock:
                self.lost.setdefault(slot.name, set()).update(lost)
            self.events.append(f"{slot.name} restored from its backup ({len(lost)} transaction(s) lost)")
        self._boot(slot)
        self.events.append(f"{slot.name} #{slot.current.number} started")

    # -- backups and restores ------------------------------------------------------------------------

    def backup(self, name: X500Name) -> bool:
        """A backup of the node's live database (SQLite only); SimulatedCrash if the node is down."""
        if self.backend != "sqlite" or name == NOTARY:
            return False
        self.runtime(name)  # up, or SimulatedCrash
        target = self.workdir / f"{self.slots[name].config.parent.name}-backup.db"
        backup_sqlite(self.slots[name].config.parent / DATABASE_FILE, target)
        with self._lock:
            self.backups[name] = target
        return True

    def restore(self, name: X500Name) -> bool:
        """The node dies and comes back on its last backup (which is then used up)."""
        with self._lock:
            backup = self.backups.pop(name, None)
            if backup is None:
                return False
            self._restore_from[name] = backup
            self.restored.add(name)
        if not self.kill(name, "to be restored from its backup"):
            with self._lock:  # already dead: the restart under way may have missed it, so make one
                if not any(s is self.slots[name] for s in self._to_restart) and not self._restarting:
                    self._to_restart.append(self.slots[name])
                    self._lock.notify_all()
        return True

    def recover_restored(self, timeout: float = 60.0) -> list[str]:
        """Each restored node runs LedgerRecoveryFlow from the other two, once the network is healed;
        what went wrong, in words.

        The restore took the node's unfinished finality flows with it, so its operator also asks for
        what they would have done: alsoFinalize finishes (or undoes) what comes back IN_FLIGHT, which
        receivers parked at RECORDED wait for (seed 3303), and optimisticInitiatorRecovery gives what
        it initiated to the peers that never got it (seed 2203): a peer's own recovery cannot, as
        only the initiator can read whom a transaction went to."""
        problems = []
        for name in sorted(self.restored):
            peers = [str(n) for n in NODES if n != name]
            try:
                result = self.runtime(name).ledger_recovery.recover(
                    {
                        "recoveryPeers": peers,
                        "timeWindow": {"fromTime": "2000-01-01T00:00:00Z"},
                        "alsoFinalize": True,
                        "optimisticInitiatorRecovery": True,
                    },
                    timeout=timeout,
                )
            except Exception as exc:
                problems.append(f"{name.organisation}'s recovery failed: {type(exc).__name__}: {exc}")
                continue
            self.events.append(
                f"{name} recovered {result['totalRecoveredTransactions']} transaction(s), "
                f"{result['totalErrors']} error(s)"
            )
        return problems

    def wait_restarts(self, timeout: float = RESTART_WAIT_S) -> None:
        """Wait until every dead node is running again."""
        with self._lock:
            if not self._lock.wait_for(lambda: not self._to_restart and not self._restarting, timeout):
                raise SimulationStuckError(f"seed {self.seed}: a node did not restart in {timeout} s")

    # -- time ----------------------------------------------------------------------------------------

    def advance(self, delta: timedelta) -> None:
        """Every clock moves on (one shared clock); every engine wakes the flows now due."""
        self.clock.advance(delta)
        for slot in self.slots.values():
            runtime = slot.current.runtime
            if runtime is not None and not slot.current.dead.is_set():
                runtime.engine.fire_due()

    def _ticker(self) -> None:
        seen = -1
        while not self._stopping.wait(TICK_REAL_S):
            if self._ticking.is_set() and self.messages == seen:
                self.advance(TICK)
            seen = self.messages

    # -- quiescence ----------------------------------------------------------------------------------

    def runnable(self) -> dict[X500Name, list[str]]:
        """Per node, the flows still RUNNABLE (parked or running): quiescence is none anywhere."""
        found: dict[X500Name, list[str]] = {}
        for slot in self.slots.values():
            runtime = slot.current.runtime
            if runtime is None or slot.current.dead.is_set():
                found[slot.name] = ["(the node is down or starting)"]
                continue
            flows = [
                f"{cp.flow_name} {cp.flow_id[:8]} at {cp.progress_step} "
                f"waiting for {runtime.engine.waiting_for(cp.flow_id)}"
                for cp in runtime.node.store.checkpoints.iter_checkpoints(FlowStatus.RUNNABLE)
            ]
            if flows:
                found[slot.name] = flows
        return found

    def cut(self, a: X500Name, b: X500Name) -> None:
        """a and b can no longer reach each other (either way) until heal()."""
        with self._lock:
            self.cuts.add(frozenset((self.slots[a].address, self.slots[b].address)))

    def heal(self) -> None:
        with self._lock:
            self.cuts.clear()

    def reachable(self, source: str, target: str) -> bool:
        return frozenset((source, target)) not in self.cuts

    def settle(self, *, give_up_after: timedelta | None = None) -> bool:
        """Heal the network, deliver what it held, and move time until no flow is RUNNABLE anywhere.

        With give_up_after, flows still parked after that much simulated time are left waiting and
        False is returned, where otherwise the seed fails as stuck: before a restored node's recovery,
        its receivers may rightly wait for what only that recovery can finish.
        """
        # The ticker goes on: a flow running a peer's handler may wait for a flow parked on a timer.
        self.healed = True
        self.heal()
        deadline = time.monotonic() + SETTLE_REAL_S
        start = self.clock.now()
        while True:
            # Again each round: an incarnation booted as the network healed may have held messages.
            for slot in self.slots.values():
                if slot.current.faulty is not None:
                    slot.current.faulty.enabled = False
            self.held.release_all()
            if not self.held.wait_delivered(max(0.0, deadline - time.monotonic())):
                raise SimulationStuckError(f"seed {self.seed}: the late messages were not all delivered")
            self.wait_restarts(max(0.0, deadline - time.monotonic()))
            for slot in self.slots.values():
                runtime = slot.current.runtime
                if runtime is not None and not runtime.engine.wait_idle(
                    max(0.0, deadline - time.monotonic())
                ):
                    raise SimulationStuckError(
                        f"seed {self.seed}: {slot.name.organisation}'s flows did not park: "
                        f"{self.runnable().get(slot.name)}\n{stacks()}"
                    )
            with self._lock:
                restarting = bool(self._to_restart) or bool(self._restarting)
            left = self.runnable()
            if not left and not restarting and not len(self.held):
                return True
            if give_up_after is not None and self.clock.now() - start > give_up_after:
                return False
            if self.clock.now() - start > SETTLE_SIM or time.monotonic() > deadline:
                waiting = {name.organisation: flows for name, flows in left.items()}
                raise SimulationStuckError(
                    f"seed {self.seed}: no quiescence after {self.clock.now() - start} simulated: "
                    f"{waiting}, {len(self.held)} messages held, restarting: {restarting}"
                )
            self.advance(SETTLE_STEP)


def _transaction_ids(database: Path) -> set[SecureHash]:
    """The ids of every transaction a node's SQLite database holds, whatever their status."""
    with closing(sqlite3.connect(database)) as conn:
        return {SecureHash.parse(row[0]) for row in conn.execute("SELECT tx_id FROM node_transactions")}


def stacks() -> str:
    """Every thread's stack, for a seed that got stuck."""
    frames = sys._current_frames()
    return "\n".join(
        f"--- {thread.name}\n{''.join(traceback.format_stack(frames[thread.ident]))}"
        for thread in threading.enumerate()
        if thread.ident in frames
    )


class CalleeGuard:
    """The network's far end: counts calls into an incarnation; a dead one's reply never arrives."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        slot = self.sim._by_address.get(address)
        callee = None if slot is None else slot.current
        if callee is not None:
            callee.enter()
        try:
            reply = self.sim.inprocess.post(address, body, timeout)
        finally:
            if callee is not None:
                callee.leave()
        if callee is not None and callee.dead.is_set():
            raise TransientTransportError(address, "connection reset (the peer died)")
        return reply


class NodeLink:
    """The caller's end: a dead incarnation's thread unwinds instead of sending or taking a reply; a
    partition between the caller and the callee refuses the connection."""

    def __init__(
        self, sim: Simulation, incarnation: Incarnation, inner: FaultyTransport, address: str
    ) -> None:
        self.sim = sim
        self.incarnation = incarnation
        self.inner = inner
        self.address = address

    def _check_alive(self) -> None:
        if self.incarnation.dead.is_set():
            raise SimulatedCrash("a send by a dead node")

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        self._check_alive()
        # The ticker moves time only when nothing moves (a change detector: a lost increment is harmless).
        self.sim.messages += 1
        if not self.sim.reachable(self.address, address):
            raise TransientTransportError(address, "connection refused (a network partition)")
        try:
            reply = self.inner.post(address, body, timeout)
        except Exception:
            self._check_alive()  # whatever came back, a dead caller does not see it
            raise
        self._check_alive()
        return reply

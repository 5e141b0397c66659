"""One seed's workload: issuances, payments (some with an observer), a deliberate double spend, kills, time.

Every choice is drawn from the seed's Random before looking at the ledger, so the seed fixes the
workload; only the double spend reads the payer's vault (to pick a state to spend twice). A call that
returns its transaction is *acknowledged*: at quiescence every party of it must hold it VERIFIED.
"""

from __future__ import annotations

import random
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from agent.errors import AgentError, NotaryConflictError, SimulatedCrash
from agent.flows.engine import FlowHandle, FlowTimeoutError
from agent.ledger import token
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction, StateAndRef
from agent.tokens.service import InsufficientFundsError
from tests.simulation.network import NODES, NOTARY, Simulation

CURRENCY = "GBP"
OP_WAIT_S = 5.0  # real time a call waits for its flow; a slower one goes on and is judged at quiescence
THREAD_WAIT_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class Acknowledged:
    what: str
    stx: SignedTransaction
    parties: frozenset[X500Name]  # who must end holding it VERIFIED


@dataclass
class Record:
    acknowledged: list[Acknowledged] = field(default_factory=list)
    double_spends: list[tuple[SecureHash, SecureHash]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # errors outside AgentError: bugs


def _call(record: Record, what: str, fn: Callable[[], T]) -> T | None:
    """fn's result, or None with the reason logged: not acknowledged, judged at quiescence."""
    try:
        return fn()
    except SimulatedCrash as exc:  # the node we called died under us
        record.log.append(f"{what}: its node died ({exc})")
    except InsufficientFundsError as exc:
        record.log.append(f"{what}: skipped ({exc})")
    except FlowTimeoutError as exc:
        record.log.append(f"{what}: still running ({exc})")
    except AgentError as exc:
        record.log.append(f"{what}: {type(exc).__name__}: {exc}")
    except Exception as exc:  # not the agent's error tree: a bug, reported as a violation
        record.unexpected.append(f"{what}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    return None


def _others(name: X500Name) -> list[X500Name]:
    return [n for n in NODES if n != name]


def issue(sim: Simulation, rng: random.Random, record: Record) -> None:
    issuer = rng.choice(NODES)
    holders = rng.sample(NODES, rng.randint(1, 3))
    amounts = [(h, rng.randint(20, 100)) for h in holders]
    observers = [o for o in _others(issuer) if o not in holders and rng.random() < 0.5]
    what = f"{issuer.organisation} issues {[(h.organisation, a) for h, a in amounts]}"
    what += f" observed by {[o.organisation for o in observers]}"
    stx = _call(
        record,
        what,
        lambda: sim.runtime(issuer).tokens.issue(amounts, CURRENCY, observers, timeout=OP_WAIT_S),
    )
    if stx is not None:
        record.log.append(f"{what}: {stx.id}")
        record.acknowledged.append(Acknowledged(what, stx, frozenset([issuer, *holders, *observers])))


def pay(sim: Simulation, rng: random.Random, record: Record) -> None:
    payer, payee = rng.sample(NODES, 2)
    issuer = rng.choice(NODES)
    amount = rng.randint(1, 40)
    observers = [o for o in NODES if o not in (payer, payee) and rng.random() < 0.3]
    what = f"{payer.organisation} pays {payee.organisation} {amount} of {issuer.organisation}'s"
    what += f" observed by {[o.organisation for o in observers]}" if observers else ""
    stx = _call(
        record,
        what,
        lambda: sim.runtime(payer).tokens.pay(payee, amount, CURRENCY, issuer, observers, timeout=OP_WAIT_S),
    )
    if stx is not None:
        record.log.append(f"{what}: {stx.id}")
        record.acknowledged.append(Acknowledged(what, stx, frozenset([payer, payee, *observers])))


def concurrent_payments(sim: Simulation, rng: random.Random, record: Record) -> None:
    """Two or three payments at once, each on its own thread (coin selection, soft locks, finality race)."""
    draws = [random.Random(rng.random()) for _ in range(rng.randint(2, 3))]
    threads = [threading.Thread(target=pay, args=(sim, draw, record)) for draw in draws]
    for thread in threads:
        thread.start()
    for thread in threads:
        # pay waits OP_WAIT_S for its flow once it parks; running it until then has its own bounds.
        thread.join(THREAD_WAIT_S)
        if thread.is_alive():  # it would go on beside the checks at quiescence
            record.unexpected.append(f"a payment thread did not return in {THREAD_WAIT_S} s")


def double_spend(sim: Simulation, rng: random.Random, record: Record) -> None:
    """Two payments of one state, racing to the notary: exactly one may win."""
    payer = rng.choice(NODES)
    first_to, second_to = _others(payer)
    pick = rng.random()
    what = f"{payer.organisation} spends one state twice"

    def start() -> list[tuple[X500Name, SignedTransaction, FlowHandle]] | None:
        runtime = sim.runtime(payer)
        store = runtime.node.store
        locked = store.transactions.in_flight_inputs()
        mine = [
            v
            for v in store.vault.iter_vault_states(contract=token.TOKEN_CONTRACT)
            if v.ref not in locked and token.Token.from_state(v.state).owner.name == payer
        ]
        if not mine:
            record.log.append(f"{what}: skipped (no free state)")
            return None
        chosen = mine[int(pick * len(mine))]
        notary = runtime.node.network_map.notaries[0].party
        held = StateAndRef(chosen.state, chosen.ref, notary)
        amount = token.Token.from_state(chosen.state).amount
        started = []
        for to in (first_to, second_to):
            party = runtime.node.network_map.node(to).party
            stx = token.move([held], [(party, amount)], runtime.node.identity, notary)
            signed = stx.sign([runtime.node.key])
            started.append((to, signed, runtime.finality.start(signed)))
        record.double_spends.append((started[0][1].id, started[1][1].id))
        return started

    started = _call(record, what, start)
    for to, stx, handle in started or ():
        spend = f"{what}: to {to.organisation} {stx.id}"
        try:
            handle.result(OP_WAIT_S)
        except NotaryConflictError:
            record.log.append(f"{spend}: lost to the other (notary conflict)")
            continue
        except (AgentError, SimulatedCrash) as exc:
            record.log.append(f"{spend}: {type(exc).__name__}: {exc}")
            continue
        record.log.append(f"{spend}: won")
        record.acknowledged.append(Acknowledged(spend, stx, frozenset([payer, to])))


def kill(sim: Simulation, rng: random.Random, record: Record) -> None:
    victim = rng.choice((*NODES, NOTARY))
    if sim.slots[victim].crashes < sim.max_crashes and sim.kill(victim, "killed between operations"):
        record.log.append(f"{victim.organisation} killed")


def tick(sim: Simulation, rng: random.Random, record: Record) -> None:
    # Some strides pass a receiver's 60 s outcome timeout, some the 2-minute clock skew.
    seconds = rng.choice((1, 5, 20, 61, 130))
    sim.advance(timedelta(seconds=seconds))
    record.log.append(f"time +{seconds} s")


def partition(sim: Simulation, rng: random.Random, record: Record) -> None:
    """Two of the four (the notary too) lose each other until a heal or the end of the workload."""
    a, b = rng.sample((*NODES, NOTARY), 2)
    sim.cut(a, b)
    record.log.append(f"partition between {a.organisation} and {b.organisation}")


def heal(sim: Simulation, rng: random.Random, record: Record) -> None:
    if sim.cuts:
        sim.heal()
        record.log.append("the partitions heal")


def attack(sim: Simulation, rng: random.Random, record: Record) -> None:
    """A member turns hostile against another, with its own key (it passes the envelope's checks): it
    tries to withdraw a transaction it did not initiate (finality.abort, issue 16 item 2), to take
    transactions it is not entitled to (recovery.transactions), and replays its own message. Each must
    be refused by name; whatever got through shows at quiescence as a lost transaction or a vault
    that does not match."""
    attacker, victim = rng.sample(NODES, 2)
    pick = rng.random()
    what = f"{attacker.organisation} attacks {victim.organisation}"

    def run() -> None:
        hostile = sim.runtime(attacker)
        held = list(sim.runtime(victim).node.store.transactions.iter_transaction_ids())
        if not held:
            record.log.append(f"{what}: nothing to attack")
            return
        target = sorted(held)[int(pick * len(held))]
        refused = []
        for topic, payload in (
            ("finality.abort", {"tx_id": str(target), "reason": "withdrawn by an attacker"}),
            ("recovery.transactions", {"ids": [str(h) for h in sorted(held)][:50], "roots": []}),
        ):
            try:
                reply = hostile.peers.request(victim, topic, payload, timeout=OP_WAIT_S)
            except AgentError as exc:
                refused.append(f"{topic}: {type(exc).__name__}")
                continue
            refused.append(f"{topic}: answered {sorted(reply) if isinstance(reply, dict) else reply!r}")
        sealed = hostile.peers.authenticator.seal(victim, "finality.outcome", {"tx_id": str(target)})
        address = sim.slots[victim].address
        for _ in range(2):  # the same bytes twice: the second is a replay
            try:
                status, _ = hostile.peers.transport.post(address, sealed, OP_WAIT_S)
                refused.append(f"replay: HTTP {status}")
            except AgentError as exc:
                refused.append(f"replay: {type(exc).__name__}")
        record.log.append(f"{what} on {target}: {'; '.join(refused)}")

    _call(record, what, run)


def backup(sim: Simulation, rng: random.Random, record: Record) -> None:
    name = rng.choice(NODES)
    if _call(record, f"{name.organisation} backed up", lambda: sim.backup(name)):
        record.log.append(f"{name.organisation} backed up")


def restore(sim: Simulation, rng: random.Random, record: Record) -> None:
    """A node loses everything since its last backup; it recovers from its peers at the end."""
    name = rng.choice(NODES)
    if sim.restore(name):
        record.log.append(f"{name.organisation} restored from its backup")


OPERATIONS: tuple[tuple[Callable[[Simulation, random.Random, Record], None], int], ...] = (
    (issue, 2),
    (pay, 8),
    (concurrent_payments, 2),
    (double_spend, 1),
    (kill, 1),
    (tick, 3),
    (partition, 1),
    (heal, 1),
    (attack, 1),
    (backup, 2),
    (restore, 2),
)


def run_workload(sim: Simulation, rng: random.Random) -> Record:
    """Two issuances, then 4 to 12 operations drawn by weight; each starts once crashed nodes are back."""
    record = Record()
    steps = [issue, issue]
    functions, weights = zip(*OPERATIONS, strict=True)
    steps += rng.choices(functions, weights, k=rng.randint(4, 12))
    for operation in steps:
        sim.wait_restarts()
        operation(sim, rng, record)
    return record

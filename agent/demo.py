"""`ledger-agent demo`: a local network in one process, trading tokens on real SQLite stores.

It bootstraps a network folder (CA, certificates, signed map, node configs), opens every node from its
node.conf, then issues, moves and exits tokens among three parties through the notary, each receiver
resolving the back-chain from the sender and verifying before it records. At the end it prints each
vault and checks that the nodes agree with each other and with what the workload did.
(Separate processes talking over HTTP come with the peer protocol.)
"""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import NotaryConflictError
from agent.ledger import token
from agent.ledger.identity import Party
from agent.ledger.transactions import SignedTransaction, StateAndRef
from agent.ledger.vault import RelevancyStatus, StatesToRecord, TransactionStatus
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.node import Node, open_node
from agent.store.ledger_store import LedgerStore

Group = tuple[str, str]  # (currency, issuer name)
Out = Callable[[str], None]


@dataclass
class DemoResult:
    ok: bool
    transactions: int
    problems: list[str] = field(default_factory=list)


def fetch_backchain(
    source: LedgerStore, target: LedgerStore, stx: SignedTransaction
) -> list[SignedTransaction]:
    """What target lacks of stx's back-chain, read from source (what a receiver asks a sender for)."""
    needed: list[SignedTransaction] = []
    seen = set()
    stack = [r.txhash for r in (*stx.tx.inputs, *stx.tx.references)]
    while stack:
        txhash = stack.pop()
        if txhash in seen or target.transaction_status(txhash) is TransactionStatus.VERIFIED:
            continue
        seen.add(txhash)
        dep = source.require_transaction(txhash)
        needed.append(dep)
        stack.extend(r.txhash for r in (*dep.tx.inputs, *dep.tx.references))
    return needed


class Workload:
    def __init__(self, nodes: Sequence[Node], notary: Node, seed: int, out: Out) -> None:
        self.nodes = {n.identity.name: n for n in nodes}
        self.parties = [n.identity for n in nodes]
        self.notary = notary
        self.rng = random.Random(seed)
        self.out = out
        self.expected: dict[str, dict[Group, int]] = defaultdict(lambda: defaultdict(int))
        self.count = 0

    def node(self, party: Party) -> Node:
        return self.nodes[party.name]

    def finalise(self, sender: Party, stx: SignedTransaction, observers: Sequence[Party] = ()) -> None:
        """Notarise when needed, record at the sender, then at every other participant and observer."""
        if stx.tx.needs_notarisation:
            assert self.notary.notary is not None
            stx = stx.with_signatures(self.notary.notary.notarise(stx, requester=sender.name))
        source = self.node(sender)
        source.ledger.record(stx)
        receivers = {p for out in stx.tx.outputs for p in out.participants} - {sender}
        for party, how in [(p, StatesToRecord.ONLY_RELEVANT) for p in receivers] + [
            (p, StatesToRecord.ALL_VISIBLE) for p in observers if p not in receivers and p != sender
        ]:
            target = self.node(party)
            target.ledger.record_chain(fetch_backchain(source.store, target.store, stx))
            target.ledger.record(stx, states_to_record=how)
        self.count += 1

    def issue(
        self,
        issuer: Party,
        holdings: Sequence[tuple[Party, int]],
        currency: str,
        observers: Sequence[Party] = (),
    ) -> None:
        stx = token.issue(issuer, self.notary.identity, holdings, currency).sign([self.node(issuer).key])
        self.finalise(issuer, stx, observers)
        for owner, amount in holdings:
            self.expected[str(owner.name)][(currency, str(issuer.name))] += amount
        self.out(f"  issue  {currency} {sum(a for _, a in holdings):>6} by {issuer.name.organisation}")

    def holdings(self, party: Party) -> list[StateAndRef]:
        return [
            StateAndRef(rec.state, rec.ref, self.notary.identity)
            for rec in self.node(party).store.iter_vault_states(contract=token.TOKEN_CONTRACT)
        ]

    def random_move(self) -> SignedTransaction | None:
        sender = self.rng.choice(self.parties)
        mine = self.holdings(sender)
        if not mine:
            return None
        state = self.rng.choice(mine)
        held = token.Token.from_state(state.state)
        receiver = self.rng.choice([p for p in self.parties if p != sender])
        amount = self.rng.randint(1, held.amount)
        stx = token.move([state], [(receiver, amount)], sender, self.notary.identity).sign(
            [self.node(sender).key]
        )
        observers = (
            [p for p in self.parties if p not in (sender, receiver)] if self.rng.random() < 0.25 else []
        )
        self.finalise(sender, stx, observers)
        group = (held.currency, str(held.issuer.name))
        self.expected[str(sender.name)][group] -= amount
        self.expected[str(receiver.name)][group] += amount
        return stx

    def exit_some(self, holder: Party) -> None:
        for state in self.holdings(holder):
            held = token.Token.from_state(state.state)
            amount = max(1, held.amount // 2)
            builder = token.exit_tokens([state], amount, holder, self.notary.identity)
            keys = [self.node(holder).key] + ([self.node(held.issuer).key] if held.issuer != holder else [])
            self.finalise(holder, builder.sign(keys))
            self.expected[str(holder.name)][(held.currency, str(held.issuer.name))] -= amount
            self.out(f"  exit   {held.currency} {amount:>6} by {holder.name.organisation}")
            return

    def double_spend(self, spent: SignedTransaction) -> str:
        """Spend an input of an earlier move again; the notary must refuse it."""
        sender_party = next(p for p in self.parties if p.owning_key in spent.tx.commands[0].signers)
        producer = self.node(sender_party).store.require_transaction(spent.tx.inputs[0].txhash)
        state = producer.tx.out_ref(spent.tx.inputs[0].index)
        other = next(p for p in self.parties if p != sender_party)
        stx = token.move([state], [(other, 1)], sender_party, self.notary.identity).sign(
            [self.node(sender_party).key]
        )
        try:
            self.finalise(sender_party, stx)
        except NotaryConflictError as exc:
            if any(n.store.transaction_status(stx.id) is not None for n in self.nodes.values()):
                return "a refused double spend was recorded somewhere"
            self.out(f"  double spend refused: {exc}")
            return ""
        return "the notary accepted a double spend"


def _vault_totals(node: Node) -> dict[Group, tuple[int, int]]:
    totals: dict[Group, tuple[int, int]] = {}
    for rec in node.store.iter_vault_states(contract=token.TOKEN_CONTRACT):
        held = token.Token.from_state(rec.state)
        count, amount = totals.get((held.currency, str(held.issuer.name)), (0, 0))
        totals[(held.currency, str(held.issuer.name))] = (count + 1, amount + held.amount)
    return totals


def print_vault(node: Node, out: Out) -> None:
    store = node.store
    observed = store.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT)
    out(
        f"\n{node.identity.name}  ({store.count_transactions(TransactionStatus.VERIFIED)} transactions, "
        f"{store.count_vault_states(relevancy=RelevancyStatus.RELEVANT)} own unconsumed states, "
        f"{observed} observed)"
    )
    totals = _vault_totals(node)
    if not totals:
        out("    (empty)")
    for (currency, issuer), (count, amount) in sorted(totals.items()):
        out(f"    {currency} {amount:>8}  in {count:>3} states, issued by {issuer}")


def check_agreement(workload: Workload) -> list[str]:
    problems = []
    for name, node in workload.nodes.items():
        got = {g: amount for g, (_, amount) in _vault_totals(node).items()}
        want = {g: a for g, a in workload.expected[str(name)].items() if a}
        if got != want:
            problems.append(f"{name}: vault holds {got}, the workload expects {want}")
    # Every transaction a node holds must be final there (no half-recorded finality).
    for node in workload.nodes.values():
        for stored in node.store.iter_transactions():
            if stored.status is not TransactionStatus.VERIFIED:
                problems.append(f"{node.identity.name}: {stored.stx.id} is {stored.status.name}")
    return problems


def run_demo(
    directory: Path | None = None, *, moves: int = 40, seed: int = 7, out: Out = print
) -> DemoResult:
    with tempfile.TemporaryDirectory(prefix="ledger-agent-demo-") as scratch:
        folder = directory or Path(scratch) / "network"
        layout = init_network(folder, default_node_names(3), DEFAULT_NOTARY)
        out(f"network created in {folder}: notary + {len(layout.nodes) - 1} nodes, SQLite stores")
        nodes = [open_node(n.config) for n in layout.nodes]
        try:
            notary = next(n for n in nodes if n.notary is not None)
            parties = [n for n in nodes if n.notary is None]
            work = Workload(parties, notary, seed, out)
            a, b, c = (n.identity for n in parties)
            out("workload:")
            work.issue(a, [(a, 1000), (b, 500)], "GBP")
            work.issue(b, [(b, 800), (c, 400)], "USD")
            work.issue(c, [(c, 250)], "EUR", observers=[a])
            first = None
            for _ in range(moves):
                moved = work.random_move()
                first = first or moved
            out(f"  moves  {moves} random payments (some with an observer)")
            work.exit_some(b)
            problems = [work.double_spend(first)] if first else []
            for node in parties:
                print_vault(node, out)
            problems = [p for p in problems if p] + check_agreement(work)
            if problems:
                out("\nDISAGREEMENT:")
                for p in problems:
                    out(f"  - {p}")
            else:
                committed = notary.store.schema.notary_committed_txs.select().count()
                out(
                    f"\nOK: {len(parties)} nodes agree with each other and with the workload "
                    f"({work.count} transactions, {committed} notarised)"
                )
            return DemoResult(ok=not problems, transactions=work.count, problems=problems)
        finally:
            for node in nodes:
                node.close()

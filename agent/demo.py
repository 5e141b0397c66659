"""`ledger-agent demo`: a local network of agent processes on loopback, doing real work on SQLite.

It bootstraps a network folder (CA, certificates, signed map, node configs, operator passwords),
starts the notary and three nodes as separate `ledger-agent run` processes, drives a workload
through their management endpoints (issuances, payments, some with an observer, an exit), then prints
what each vault holds and checks that the nodes agree with each other and with the workload: every
transaction VERIFIED everywhere it went, nothing left IN_FLIGHT. It stops every process it started,
unless --keep-running.
"""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.network.bootstrap import DEFAULT_NOTARY, OPERATOR_USER, default_node_names, init_network
from agent.node import Node

Out = Callable[[str], None]
Group = tuple[str, str]  # (currency, issuer)


@dataclass
class DemoResult:
    ok: bool
    transactions: int
    problems: list[str] = field(default_factory=list)
    processes: list[AgentProcess] = field(default_factory=list)


def print_vault(node: Node, out: Out) -> None:
    """A node's vault read straight from its store (used by `ledger-agent vault`)."""
    from agent.ledger import token
    from agent.ledger.vault import RelevancyStatus, TransactionStatus

    store = node.store
    out(
        f"\n{node.identity.name}  ({store.count_transactions(TransactionStatus.VERIFIED)} transactions, "
        f"{store.count_vault_states(relevancy=RelevancyStatus.RELEVANT)} own unconsumed states, "
        f"{store.count_vault_states(relevancy=RelevancyStatus.NOT_RELEVANT)} observed)"
    )
    totals: dict[Group, tuple[int, int]] = {}
    for rec in store.iter_vault_states(contract=token.TOKEN_CONTRACT):
        held = token.Token.from_state(rec.state)
        key = (held.currency, str(held.issuer.name))
        amount, count = totals.get(key, (0, 0))
        totals[key] = (amount + held.amount, count + 1)
    if not totals:
        out("    (empty)")
    for (currency, issuer), (amount, count) in sorted(totals.items()):
        out(f"    {currency} {amount:>8}  in {count:>3} states, issued by {issuer}")


class Workload:
    def __init__(self, clients: dict[str, ManagementClient], seed: int, out: Out) -> None:
        self.clients = clients
        self.names = sorted(clients)
        self.rng = random.Random(seed)
        self.out = out
        self.expected: dict[str, dict[Group, int]] = defaultdict(lambda: defaultdict(int))
        self.tx_ids: list[str] = []

    def issue(
        self, issuer: str, holdings: list[tuple[str, int]], currency: str, observers: list[str] | None = None
    ) -> None:
        self.tx_ids.append(self.clients[issuer].issue(holdings, currency, observers))
        for owner, amount in holdings:
            self.expected[owner][(currency, issuer)] += amount
        seen = f" (observer {', '.join(observers)})" if observers else ""
        self.out(f"  issue  {currency} {sum(a for _, a in holdings):>6} by {issuer}{seen}")

    def random_payment(self) -> None:
        sender = self.rng.choice(self.names)
        groups = [(g, a) for g, a in sorted(self.expected[sender].items()) if a > 0]
        if not groups:
            return
        (currency, issuer), held = self.rng.choice(groups)
        receiver = self.rng.choice([n for n in self.names if n != sender])
        amount = self.rng.randint(1, min(held, 200))
        observers = [n for n in self.names if n not in (sender, receiver)] if self.rng.random() < 0.25 else []
        self.tx_ids.append(self.clients[sender].pay(receiver, amount, currency, issuer, observers))
        self.expected[sender][(currency, issuer)] -= amount
        self.expected[receiver][(currency, issuer)] += amount

    def exit(self, holder: str, amount: int, currency: str) -> None:
        self.tx_ids.append(
            str(
                self.clients[holder].call(
                    "POST", "/api/flows/exit", {"amount": amount, "currency": currency}
                )["txId"]
            )
        )
        self.expected[holder][(currency, holder)] -= amount
        self.out(f"  exit   {currency} {amount:>6} by {holder}")


def check(work: Workload, out: Out) -> list[str]:
    problems = []
    for name, client in sorted(work.clients.items()):
        vault = client.vault()
        out(
            f"\n{name}  ({vault['transactions']['VERIFIED']} transactions, {vault['transactions']['IN_FLIGHT']} in flight)"
        )
        got = {}
        for h in vault["holdings"]:
            got[(h["currency"], h["issuer"])] = h["amount"]
            out(f"    {h['currency']} {h['amount']:>8}  in {h['states']:>3} states, issued by {h['issuer']}")
        want = {g: a for g, a in work.expected[name].items() if a}
        if got != want:
            problems.append(f"{name}: vault holds {got}, the workload expects {want}")
        if vault["transactions"]["IN_FLIGHT"] or vault["transactions"]["UNVERIFIED"]:
            problems.append(f"{name}: transactions left unfinished: {vault['transactions']}")
    return problems


def run_demo(
    directory: Path | None = None,
    *,
    moves: int = 30,
    seed: int = 7,
    keep_running: bool = False,
    out: Out = print,
) -> DemoResult:
    folder = directory or Path(tempfile.mkdtemp(prefix="ledger-agent-demo-")) / "network"
    base = free_port_range(8)
    layout = init_network(folder, default_node_names(3), DEFAULT_NOTARY, base_port=base)
    out(f"network created in {folder}: a notary and {len(layout.nodes) - 1} nodes, SQLite stores")
    processes = []
    for node in layout.nodes:
        client = ManagementClient(node.management_address, OPERATOR_USER, read_password(node.folder))
        processes.append(AgentProcess(node.config, node.folder / "agent.log", client))
    result = DemoResult(ok=False, transactions=0, processes=processes)
    try:
        for proc in processes:
            proc.start()
        for proc, node in zip(processes, layout.nodes, strict=True):
            proc.wait_ready()
            out(
                f"  started {node.role:<6} {node.name}  pid {proc.pid}  p2p {node.p2p_address}  management {node.management_address}"
            )
        parties = {
            str(n.name): p.management
            for n, p in zip(layout.nodes, processes, strict=True)
            if n.role == "node"
        }
        a, b, c = sorted(parties)
        work = Workload(parties, seed, out)
        out("workload:")
        work.issue(a, [(a, 1000), (b, 500)], "GBP")
        work.issue(b, [(b, 800), (c, 400)], "USD")
        work.issue(c, [(c, 250)], "EUR", observers=[a])
        for _ in range(moves):
            work.random_payment()
        out(f"  pay    {moves} random payments, some with an observer")
        if work.expected[a][("GBP", a)] >= 10:
            work.exit(a, 10, "GBP")
        problems = check(work, out)
        result = DemoResult(
            ok=not problems, transactions=len(work.tx_ids), problems=problems, processes=processes
        )
        if problems:
            out("\nDISAGREEMENT:")
            for p in problems:
                out(f"  - {p}")
        else:
            out(
                f"\nOK: {len(parties)} nodes agree with each other and with the workload ({len(work.tx_ids)} transactions)"
            )
        return result
    finally:
        if keep_running and result.ok:
            out("\nthe network keeps running; stop it with: kill " + " ".join(str(p.pid) for p in processes))
            for node in layout.nodes:
                out(
                    f"  {node.name}: p2p {node.p2p_address}, management http://{node.management_address} "
                    f"(user {OPERATOR_USER}, password in {node.folder / 'management-password'})"
                )
        else:
            for proc in reversed(processes):
                proc.stop()
            out("stopped every agent process")

"""`ledger-agent demo`: a local network of agent processes on loopback, doing real work on SQLite.

It bootstraps a network folder (CA, certificates, signed map, node configs, operator passwords),
starts the notary and three nodes as separate `ledger-agent run` processes, drives a workload
through their management endpoints (issuances, payments, some with an observer, an exit), then prints
what each vault holds and checks that the nodes agree with each other and with the workload: every
transaction VERIFIED everywhere it went, nothing left IN_FLIGHT.

Then a disaster: PartyA, backed up half way through the workload, is stopped, restored from that
backup and started again; it reconciles with its peers (LedgerSync), and the demo prints what each
reconciliation found and checks it against what PartyA really lost. Then PartyA recovers (`ledger-agent
recover`: a dry run's plan, then --apply): its store and vault must equal what they were before the
disaster, but for what no peer holds (its exit), which the demo names; and PartyA pays again. It stops
every process it started, unless --keep-running.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cbor2
import yaml

from agent.client.launcher import (
    AgentProcess,
    AgentProcessError,
    ManagementClient,
    free_port_range,
    read_password,
)
from agent.client.nodeconf import read_node_conf
from agent.client.progress import Progress
from agent.client.server import NodeEntry, init_network
from agent.ledger.identity import X500Name
from agent.operator_api.layout import MONITOR_PASSWORD_FILE, MONITOR_USER, OPERATOR_USER

Out = Callable[[str], None]
Group = tuple[str, str]  # (currency, issuer)


@dataclass
class Disaster:
    """What the restored node lost, and what each peer's reconciliation found (upper-case hex ids)."""

    node: str
    lost: set[str]
    expected: dict[str, set[str]]  # peer -> the lost transactions it holds for the pair
    found: dict[str, set[str]]  # peer -> lastSuccessfulReconciliationResult
    statuses: dict[str, str | None]  # peer -> lastReconciliationStatus
    unheld: set[str]  # lost, but no peer has them: no reconciliation can find them
    problems: list[str] = field(default_factory=list)
    before: StoreImage | None = None  # the store when the disaster struck
    recovered: int = 0  # transactions LedgerRecoveryFlow brought back


@dataclass
class DemoResult:
    ok: bool
    transactions: int
    problems: list[str] = field(default_factory=list)
    processes: list[AgentProcess] = field(default_factory=list)
    disaster: Disaster | None = None


@dataclass(frozen=True)
class TxParties:
    """Who a workload transaction went between, as the workload knows it (not read from any store)."""

    initiator: str
    named: frozenset[str]  # owners of its outputs and signers of its commands
    recipients: frozenset[str]  # whom the initiator's finality sent it to, observers included

    def holders(self) -> frozenset[str]:
        return self.named | self.recipients | {self.initiator}

    def seen_by(self, party: str) -> frozenset[str]:
        """The parties that party's own store ties this transaction to.

        A store knows the names in the transaction and the peers of its own distribution records:
        the initiator's name every recipient, a recipient's name only the initiator. So an observer
        of someone else's payment is tied to it by the payer's store, not by the payee's.
        """
        seen = set(self.named)
        if party == self.initiator:
            seen |= self.recipients
        if party in self.recipients:
            seen.add(self.initiator)
        return frozenset(seen)


class Workload:
    def __init__(self, clients: dict[str, ManagementClient], seed: int, out: Out) -> None:
        self.clients = clients
        self.names = sorted(clients)
        self.rng = random.Random(seed)
        self.out = out
        self.expected: dict[str, dict[Group, int]] = defaultdict(lambda: defaultdict(int))
        self.tx_ids: list[str] = []
        self.parties: dict[str, TxParties] = {}

    def _record(self, tx_id: str, initiator: str, named: Iterable[str], recipients: Iterable[str]) -> None:
        self.tx_ids.append(tx_id)
        self.parties[tx_id.upper()] = TxParties(
            initiator, frozenset(named), frozenset(recipients) - {initiator}
        )

    def issue(
        self, issuer: str, holdings: list[tuple[str, int]], currency: str, observers: list[str] | None = None
    ) -> None:
        tx_id = self.clients[issuer].issue(holdings, currency, observers)
        owners = [o for o, _ in holdings]
        self._record(tx_id, issuer, [issuer, *owners], [*owners, *(observers or [])])
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
        tx_id = self.clients[sender].pay(receiver, amount, currency, issuer, observers)
        self._record(tx_id, sender, [sender, receiver], [receiver, *observers])
        self.expected[sender][(currency, issuer)] -= amount
        self.expected[receiver][(currency, issuer)] += amount

    def exit(self, holder: str, amount: int, currency: str) -> None:
        reply = self.clients[holder].call("POST", "/api/flows/exit", {"amount": amount, "currency": currency})
        self._record(str(reply["txId"]), holder, [holder], [])
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


RECONCILE_DEADLINE_S = 60.0
RECOVERY_DEADLINE_S = 120.0
UNCONSUMED = 0  # vault_states.state_status


def short(name: str) -> str:
    """PartyA for "O=PartyA, L=London, C=GB"."""
    return X500Name.parse(name).organisation


class NodeFolder(Protocol):
    """A node `network init` made: the client's NodeEntry, or the agent's own NodeLayout in tests."""

    @property
    def name(self) -> object: ...  # printed: a str here, an X500Name in the agent's layout

    @property
    def folder(self) -> Path: ...

    @property
    def config(self) -> Path: ...

    @property
    def management_address(self) -> str: ...


class NetworkFolder(Protocol):
    @property
    def nodes(self) -> Sequence[NodeFolder]: ...


def sqlite_file(node: NodeFolder) -> Path:
    url = read_node_conf(node.config).database_url
    if not url.startswith("sqlite:///"):
        raise AgentProcessError(f"{node.name}: the demo backs up SQLite stores only, not {url.split(':')[0]}")
    return Path(url.removeprefix("sqlite:///"))


@dataclass(frozen=True)
class StoreImage:
    """What a node's store holds that recovery must give back: transaction ids by status, vault rows
    (consumed ones too), and the distribution records' keys."""

    transactions: dict[str, str]  # id -> status as stored (V, F, U)
    vault: frozenset[tuple[str, int, int, str | None]]
    sent: frozenset[tuple[str, str, str, int]]
    received: frozenset[tuple[str, str, str, int]]

    def without(self, lost: set[str]) -> StoreImage:
        """The image had these transactions never been recorded: a state they consumed is unconsumed."""
        return StoreImage(
            {t: s for t, s in self.transactions.items() if t not in lost},
            frozenset(
                (t, i, UNCONSUMED, None) if consumer in lost else (t, i, status, consumer)
                for t, i, status, consumer in self.vault
                if t not in lost
            ),
            frozenset(r for r in self.sent if r[0] not in lost),
            frozenset(r for r in self.received if r[0] not in lost),
        )


def read_image(db: Path) -> StoreImage:
    """A store's image, read with sqlite3 (the tables and columns of README's store section)."""
    with sqlite3.connect(db.as_uri() + "?mode=ro", uri=True) as connection:
        txs = dict(connection.execute("SELECT tx_id, status FROM node_transactions").fetchall())
        vault = connection.execute(
            "SELECT transaction_id, output_index, state_status, consuming_tx_id FROM vault_states"
        ).fetchall()
        sent = connection.execute(
            "SELECT transaction_id, peer_party_id, timestamp, timestamp_discriminator FROM node_sender_distr_recs"
        ).fetchall()
        received = connection.execute(
            "SELECT transaction_id, peer_party_id, timestamp, timestamp_discriminator FROM node_receiver_distr_recs"
        ).fetchall()
    connection.close()
    return StoreImage(
        {str(t): str(s) for t, s in txs.items()},
        frozenset((str(t), int(i), int(st), None if c is None else str(c)) for t, i, st, c in vault),
        frozenset((str(t), str(p), str(ts), int(d)) for t, p, ts, d in sent),
        frozenset((str(t), str(p), str(ts), int(d)) for t, p, ts, d in received),
    )


def read_store(db: Path) -> tuple[set[str], dict[str, set[str]]]:
    """The ids in a stopped node's SQLite store, and each transaction's parents (inputs and references).

    Read with sqlite3, not the agent's store: the demo is a client. It relies on two things the
    README's store section states: node_transactions holds the id in upper-case hex and the
    transaction's canonical CBOR, [version, inputs, references, ...] with each ref [txhash, index].
    """
    with sqlite3.connect(db.as_uri() + "?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT tx_id, transaction_value FROM node_transactions").fetchall()
    connection.close()  # the context manager ends the transaction only
    parents = {}
    for tx_id, value in rows:
        _, inputs, references, *_ = cbor2.loads(value)
        parents[str(tx_id)] = {bytes(txhash).hex().upper() for txhash, _ in (*inputs, *references)}
    return set(parents), parents


def backup_sqlite(source: Path, target: Path) -> None:
    """The whole SQLite database at source into target, through SQLite's online backup API.

    As agent.store.database.backup_sqlite does (the tools do not import the store): consistent while
    the source's agent writes, and into the target through a connection, which reads any WAL left
    beside the file before writing every page, so old frames cannot be checkpointed over them later.
    A new target is made 0600 first (SQLite gives its journals the same mode): a backup holds all the
    store holds, the node's wrapped AES keys included (docs/security.md).
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def expected_finds(
    node: str, peers: list[str], lost: set[str], work: Workload, parents: dict[str, set[str]]
) -> dict[str, set[str]]:
    """What each peer's reconciliation should report: the lost transactions its store ties to node,
    with their lost ancestors (the peer holds the back-chain of everything it holds).

    Only lost ancestors: an ancestor of anything the restored store kept was recorded before it, so
    the backup has it too.
    """
    expected = {}
    for peer in peers:
        shared = [
            t for t in lost if peer in work.parties[t].holders() and node in work.parties[t].seen_by(peer)
        ]
        found: set[str] = set()
        while shared:
            t = shared.pop()
            if t not in found:
                found.add(t)
                shared.extend(p for p in parents[t] if p in lost)
        expected[peer] = found
    return expected


def wait_until_reconciled(client: ManagementClient, peers: list[str]) -> list[str]:
    """Wait until no outgoing reconciliation with the peers is scheduled; the peers still scheduled."""
    deadline = time.monotonic() + RECONCILE_DEADLINE_S
    pause = threading.Event()
    waiting = list(peers)
    while waiting and time.monotonic() < deadline:
        waiting = [
            p
            for p in waiting
            if client.start_flow("IsReconciliationScheduledForPartyFlow", party=p)["result"]
        ]
        if waiting:
            pause.wait(0.05)
    return waiting


def run_disaster(
    node: str,
    peers: list[str],
    nodes: dict[str, tuple[NodeEntry, AgentProcess]],
    backup: Path,
    work: Workload,
    out: Out,
) -> Disaster:
    """Restore node from backup, reconcile with every peer, and check what was found against what was lost."""
    entry, proc = nodes[node]
    client = proc.management
    db = sqlite_file(entry)
    out(f"\ndisaster: {node} loses its store and is restored from {backup.name}")
    old_pid = proc.pid
    code = proc.stop()
    before, parents = read_store(db)
    image = read_image(db)
    out(f"  stopped {short(node)}  pid {old_pid} (exit code {code}), {len(before)} transactions in its store")
    backup_sqlite(backup, db)
    after, _ = read_store(db)
    lost = before - after
    out(f"  restored {db} from {backup}: {len(after)} transactions, {len(lost)} lost")
    proc.start()
    proc.wait_ready()
    state = client.wait_ledgersync_ready()
    consistent = "self-consistent" if state["ledgerGraphIsSelfConsistent"] else "NOT self-consistent"
    out(f"  started {short(node)}  pid {proc.pid}, ledger graph of {len(after)} transactions {consistent}")

    problems = (
        []
        if state["ledgerGraphIsSelfConsistent"]
        else [f"restored ledger graph: {state['ledgerGraphErrors']}"]
    )
    problems += [
        f"{t}: lost, but not a transaction of the workload" for t in sorted(lost - set(work.parties))
    ]
    lost &= set(work.parties)
    expected = expected_finds(node, peers, lost, work, parents)
    unheld = {t for t in lost if not work.parties[t].holders() & set(peers)}
    for peer in peers:
        held = {t for t in lost if nodes[peer][1].management.transaction(t) is not None}
        if not expected[peer] <= held:
            problems.append(
                f"{short(peer)} does not hold {sorted(expected[peer] - held)}, lost by {short(node)}"
            )
        if held & unheld:
            problems.append(f"{short(peer)} holds {sorted(held & unheld)}, which the workload never sent it")

    out(f"\nflow start ScheduleReconciliationFlow parties: {json.dumps(peers)}")
    out(client.start_flow("ScheduleReconciliationFlow", parties=peers)["text"])
    for peer in wait_until_reconciled(client, peers):
        problems.append(
            f"the reconciliation with {short(peer)} was still scheduled after {RECONCILE_DEADLINE_S:.0f} s"
        )

    found: dict[str, set[str]] = {}
    statuses: dict[str, str | None] = {}
    for peer in peers:
        out(f'\nflow start GetReconciliationStatusForPartyFlow party: "{peer}", isRequester: true')
        reply = client.start_flow("GetReconciliationStatusForPartyFlow", party=peer, isRequester=True)
        out(reply["text"])
        status = reply["result"] or {}
        statuses[peer] = status.get("lastReconciliationStatus")
        found[peer] = {str(i).upper() for i in status.get("lastSuccessfulReconciliationResult") or []}
        want = "DIFFERENCES_FOUND" if expected[peer] else "DIFFERENCES_NOT_FOUND"
        if statuses[peer] != want:
            error = status.get("lastReconciliationError")
            problems.append(
                f"{short(peer)}: lastReconciliationStatus {statuses[peer]}, expected {want} ({error})"
            )
        if extra := sorted(found[peer] - expected[peer]):
            problems.append(f"{short(peer)} reported {extra}, which it should not have")
        if missed := sorted(expected[peer] - found[peer]):
            problems.append(f"{short(peer)} did not report {missed}")

    out(f"\nthe peers' side (GetReconciliationStatusesFlow party: {short(node)}, isRequester: false):")
    for peer in peers:
        answered = nodes[peer][1].management.start_flow(
            "GetReconciliationStatusesFlow", party=node, isRequester=False
        )["result"]
        for st in answered:
            out(
                f"  {short(peer)} answered {short(st['partyName'])}: {st['lastReconciliationStatus']}, "
                f"{len(st['lastSuccessfulReconciliationResult'])} missing on {short(peer)}, "
                f"run {st['stateMachineRunId']}"
            )
        # One direction (bothDirections false): the requester tells the responder nothing it lacks.
        if [st["lastReconciliationStatus"] for st in answered] != ["DIFFERENCES_NOT_FOUND"]:
            problems.append(f"{short(peer)}'s record of answering {short(node)}: {answered}")

    counts = client.ledgersync()
    with_differences = sorted(p for p in peers if expected[p])
    out(
        f"\n{short(node)} /api/ledgersync: numberOfReconciliationsWithDifferences "
        f"{counts['numberOfReconciliationsWithDifferences']}, partiesWithDifference {counts['partiesWithDifference']}"
    )
    if counts["numberOfReconciliationsWithDifferences"] != len(with_differences):
        problems.append(
            f"numberOfReconciliationsWithDifferences {counts['numberOfReconciliationsWithDifferences']}, "
            f"expected {len(with_differences)}"
        )
    if sorted(counts["partiesWithDifference"]) != with_differences:
        problems.append(
            f"partiesWithDifference {counts['partiesWithDifference']}, expected {with_differences}"
        )

    recoverable = lost - unheld
    union = set().union(*found.values()) if found else set()
    if union != recoverable:
        problems.append(
            f"together the reconciliations found {len(union)} transactions, {short(node)} lost {len(recoverable)} "
            f"that a peer holds: missed {sorted(recoverable - union)}, extra {sorted(union - recoverable)}"
        )
    return Disaster(node, lost, expected, found, statuses, unheld, problems, image)


def run_recovery(
    disaster: Disaster, peers: list[str], entry: NodeEntry, proc: AgentProcess, work: Workload, out: Out
) -> None:
    """`ledger-agent recover`: the plan (a dry run), then --apply; then the store against its image."""
    client = proc.management
    name = short(disaster.node)
    peer_args = " ".join(f'--peer "{p}"' for p in peers)
    out(f"\nledger-agent recover {peer_args}")
    plan = client.call(
        "POST", "/api/recovery/recover", {"recoveryPeers": peers, "timeout": RECOVERY_DEADLINE_S}
    )
    for peer, row in sorted((plan.get("plan") or {}).get("peers", {}).items()):
        refused = (
            f"{len(row['cannotRecover'])}, e.g. {row['cannotRecover'][0][0][:16]}...: {row['cannotRecover'][0][1]}"
            if row["cannotRecover"]
            else "none"
        )
        out(
            f"  {short(peer)}: {row['missing']} missing, {row['available']} available, {row['bytes']} bytes; cannot recover: {refused}"
        )
    out(f"  nothing changed (a dry run); to recover: ledger-agent recover {peer_args} --apply")
    out(f"\nledger-agent recover {peer_args} --apply")
    done = client.call(
        "POST",
        "/api/recovery/recover",
        {"recoveryPeers": peers, "dryRun": False, "timeout": RECOVERY_DEADLINE_S},
    )
    disaster.recovered = int(done["totalRecoveredTransactions"])
    out(
        f"  LedgerRecoveryFlow {done['flowId']}: {done['totalRecoveredTransactions']} transactions "
        f"({done['totalRecoveredInFlightTransactions']} IN_FLIGHT), {done['totalRecoveredRecords']} "
        f"distribution records, {done['totalErrors']} errors"
    )
    for failed in (r for r in done["results"] if not r["synchronised"]):
        disaster.problems.append(
            f"{failed['transactionId']} from {short(failed['recoveryPeer'])}: {failed['failureCause']}"
        )
    assert disaster.before is not None
    expected = disaster.before.without(disaster.unheld)
    now = read_image(sqlite_file(entry))
    for part in ("transactions", "vault", "sent", "received"):
        missing = (
            getattr(expected, part).keys() - getattr(now, part).keys()
            if part == "transactions"
            else getattr(expected, part) - getattr(now, part)
        )
        extra = (
            getattr(now, part).keys() - getattr(expected, part).keys()
            if part == "transactions"
            else getattr(now, part) - getattr(expected, part)
        )
        if missing or extra:
            disaster.problems.append(
                f"{name}'s {part} after recovery: {len(missing)} missing, {len(extra)} not there before"
            )
    if now.transactions != expected.transactions and not disaster.problems:
        disaster.problems.append(f"{name}'s transactions are not in the statuses they had before")
    # It pays again, from tokens no lost transaction touched: the exit no peer holds consumed a state
    # of its own issue that its vault, without the exit, still offers (a notary conflict would say so).
    payee = peers[-1]
    groups = [
        g
        for g, amount in sorted(work.expected[disaster.node].items())
        if amount >= 1 and g[1] != disaster.node
    ]
    if not groups:
        out(f"  {name} holds nothing but its own issue: no payment to show")
        return
    currency, issuer = groups[0]
    try:
        paid = client.pay(payee, 1, currency, issuer)
        out(f"  {name} pays {short(payee)} 1 {currency} again: {paid[:16]}... VERIFIED")
    except AgentProcessError as exc:
        disaster.problems.append(f"{name} cannot pay after its recovery: {exc}")


def disaster_verdict(disaster: Disaster, out: Out) -> None:
    name = short(disaster.node)
    if disaster.problems:
        out(f"\nDISAGREEMENT: {name}'s reconciliations or recovery are not what it lost:")
        for p in disaster.problems:
            out(f"  - {p}")
        return
    recoverable = len(disaster.lost - disaster.unheld)
    out(
        f"\nOK: {name}'s reconciliations found exactly the {recoverable} transactions it lost that a peer "
        f"holds, and {name} is recovered: {disaster.recovered} transactions came back, and its store and "
        "vault equal what they were before the disaster"
        + (
            f", but for {len(disaster.unheld)} that involved only {name} (its exit), which no peer holds "
            f"and nothing can recover: {', '.join(sorted(disaster.unheld))}"
            if disaster.unheld
            else ""
        )
    )


def prometheus_scrape_configs(layout: NetworkFolder) -> list[dict[str, Any]]:
    """A Prometheus scrape job per agent: /metrics as the read-only monitor user (each has its own
    password), over HTTPS checked against the node's network root when its node.conf says so."""
    jobs = []
    for node in layout.nodes:
        job: dict[str, Any] = {
            "job_name": f"ledger-agent-{node.folder.name}",
            # Set here, not left to Prometheus' default of 1m: the alert rules' `for` and the
            # dashboards' rate() windows assume a scrape at least every 15 s.
            "scrape_interval": "15s",
            "scrape_timeout": "10s",
            "basic_auth": {
                "username": MONITOR_USER,
                "password_file": str(node.folder / MONITOR_PASSWORD_FILE),
            },
        }
        ca_file = read_node_conf(node.config).ca_file
        if ca_file is not None:
            job["scheme"] = "https"
            job["tls_config"] = {"ca_file": str(ca_file)}
        job["static_configs"] = [{"targets": [node.management_address]}]
        jobs.append(job)
    return jobs


def run_demo(
    directory: Path | None = None,
    *,
    moves: int = 30,
    seed: int = 7,
    keep_running: bool = False,
    out: Out = print,
    progress: Progress | None = None,
) -> DemoResult:
    """The demo; progress, when given, counts its steps: each agent started, each transaction, the
    backup, the check, the disaster and the recovery."""
    progress = progress or Progress("demo", None, enabled=False)
    out = progress.printer(out)
    folder = directory or Path(tempfile.mkdtemp(prefix="ledger-agent-demo-")) / "network"
    base = free_port_range(8)
    progress.advance(0, "creating the network")
    layout = init_network(folder, 3, base)
    # started agents, 3 issues, the payments, backup, exit, check, disaster, recovery
    progress.set(0, len(layout.nodes) + 3 + moves + 5, "starting the agents")
    out(f"network created in {folder}: a notary and {len(layout.nodes) - 1} nodes, SQLite stores")
    processes = []
    for node in layout.nodes:
        client = ManagementClient.for_node(node.config, OPERATOR_USER, read_password(node.folder))
        processes.append(AgentProcess(node.config, node.folder / "agent.log", client))
    result = DemoResult(ok=False, transactions=0, processes=processes)
    try:
        for proc in processes:
            proc.start()
        for proc, node in zip(processes, layout.nodes, strict=True):
            proc.wait_ready()
            progress.advance(1)
            out(
                f"  started {node.role:<6} {node.name}  pid {proc.pid}  p2p {node.p2p_address}  management {node.management_address}"
            )
        parties = {
            str(n.name): p.management
            for n, p in zip(layout.nodes, processes, strict=True)
            if n.role == "node"
        }
        a, b, c = sorted(parties)
        nodes = {
            str(n.name): (n, p) for n, p in zip(layout.nodes, processes, strict=True) if n.role == "node"
        }
        work = Workload(parties, seed, out)
        out("workload:")
        progress.advance(0, "issuing")
        work.issue(a, [(a, 1000), (b, 500)], "GBP")
        progress.advance(1)
        work.issue(b, [(b, 800), (c, 400)], "USD")
        progress.advance(1)
        work.issue(c, [(c, 250)], "EUR", observers=[a])
        progress.advance(1, "paying")
        for _ in range(moves // 2):
            work.random_payment()
            progress.advance(1)
        out(f"  pay    {moves // 2} random payments, some with an observer")
        backup = folder / "backup" / f"{short(a)}.db"
        backup.parent.mkdir(mode=0o700, exist_ok=True)  # only its owner may read a backup
        backup_sqlite(sqlite_file(nodes[a][0]), backup)
        out(f"  backup {short(a)}'s store while it runs (SQLite online backup) to {backup}")
        progress.advance(1, "paying")
        for _ in range(moves - moves // 2):
            work.random_payment()
            progress.advance(1)
        out(f"  pay    {moves - moves // 2} more random payments")
        if work.expected[a][("GBP", a)] >= 10:
            work.exit(a, 10, "GBP")
        progress.advance(1, "checking that the nodes agree")
        problems = check(work, out)
        progress.advance(1, "the disaster: a node loses its store")
        result = DemoResult(
            ok=not problems, transactions=len(work.tx_ids), problems=problems, processes=processes
        )
        if problems:
            out("\nDISAGREEMENT:")
            for p in problems:
                out(f"  - {p}")
            return result
        out(
            f"\nOK: {len(parties)} nodes agree with each other and with the workload ({len(work.tx_ids)} transactions)"
        )
        disaster = run_disaster(a, [b, c], nodes, backup, work, out)
        progress.advance(1, "recovering it from its peers")
        if not disaster.problems:
            run_recovery(disaster, [b, c], nodes[a][0], nodes[a][1], work, out)
        progress.advance(1, "done")
        disaster_verdict(disaster, out)
        result = DemoResult(
            ok=not disaster.problems,
            transactions=len(work.tx_ids),
            problems=disaster.problems,
            processes=processes,
            disaster=disaster,
        )
        return result
    finally:
        if keep_running and result.ok:
            out("\nthe network keeps running; stop it with: kill " + " ".join(str(p.pid) for p in processes))
            for node in layout.nodes:
                conf = read_node_conf(node.config)
                url = conf.management_url
                out(
                    f"  {node.name}: p2p {node.p2p_address}, management {url} "
                    f"(user {OPERATOR_USER}, password in {node.folder / 'management-password'})"
                )
                out(
                    f"    metrics {url}/metrics, Jolokia {url}/jolokia, JSON-RPC {url}/rpc "
                    f"(read-only user {MONITOR_USER}, password in {node.folder / MONITOR_PASSWORD_FILE})"
                )
                if conf.ca_file is not None:
                    out(f"    CA certificate (curl --cacert, Prometheus tls_config.ca_file): {conf.ca_file}")
                out(f"    shell: ledger-agent shell --config {node.config}")
            out(
                "\nPrometheus scrape config (prometheus.yml; dashboards in grafana/dashboards/, rules in alerts/):"
            )
            out(
                yaml.safe_dump(
                    {"scrape_configs": prometheus_scrape_configs(layout)}, sort_keys=False
                ).rstrip()
            )
        else:
            for proc in reversed(processes):
                proc.stop()
            out("stopped every agent process")

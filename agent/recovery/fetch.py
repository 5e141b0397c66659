"""Fetching transactions from a recovery peer, with the back-chains we lack, and verifying them.

The peer answers each id with the transaction (VERIFIED or IN_FLIGHT), a refusal naming why, or
unknown. Then the inputs and references of what came back that we do not hold VERIFIED are asked for
in turn, as the back-chain of what we asked first, until nothing is missing or the peer cannot supply
it. Verification is per transaction, parents first, each against our ledger overlaid with the
verified ones of the batch: one bad transaction (or one whose back-chain did not come) fails alone,
with its descendants, and the rest go on.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agent.errors import AgentError
from agent.ledger import serialization as ser
from agent.ledger.contracts import ContractRegistry
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import TransactionStatus
from agent.ledger.verification import ChainResolver, bad_signatures, dependency_order, verify
from agent.p2p.client import PeerClient
from agent.ports.transactions import TransactionReader
from agent.recovery.protocol import MAX_IDS, TOPIC_TRANSACTIONS

MAX_ROOTS = MAX_IDS  # the roots a back-chain request names, at most
VERIFIED = TransactionStatus.VERIFIED
SIGNATURE_THREADS = 2  # the machines we measure on have 2 cores (BENCHMARKS.md)
REQUEST_IDS = 500  # a reply of 500 transactions stays far below the network's maxMessageSize


Mapper = Callable[[Callable[[Any], Any], list[Any]], list[Any]]
_UNCHECKED: Any = object()  # a transaction whose signatures no ask ahead checked


@dataclass
class Fetched:
    """What one peer gave for the ids asked: verified, parents first, and why the others failed."""

    verified: list[tuple[SignedTransaction, TransactionStatus]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # asked id (or back-chain id) -> cause
    back_chain: set[SecureHash] = field(default_factory=set)  # fetched only as back-chain
    transactions_fetched: int = 0

    def merge(self, other: Fetched) -> None:
        """Add what a second fetch from the same peer gave."""
        self.verified.extend(other.verified)
        self.failed.update(other.failed)
        self.back_chain |= other.back_chain
        self.transactions_fetched += other.transactions_fetched


@dataclass(frozen=True)
class Ahead:
    """A first request asked before its step needs it: the next batch's, while this one is verified and
    recorded (the peers' work then overlaps ours). The thread that gets the reply also decodes its
    transactions and checks their signatures (a reply's checks release the GIL once, so they run
    beside the step's commit). Only a cache: the step uses what it asks of it and asks the rest; a
    failed one is asked again, and fails there as usual."""

    ids: frozenset[str]
    reply: Future[Prepared]


@dataclass
class Prepared:
    """A reply, with its transactions decoded and their signatures checked, by id (None: all verify)."""

    reply: dict[str, Any]
    decoded: dict[str, tuple[SignedTransaction, AgentError | None]] = field(default_factory=dict)


class TransactionFetcher:
    def __init__(
        self, peers: PeerClient, transactions: TransactionReader, contracts: ContractRegistry
    ) -> None:
        self.peers = peers
        self.transactions = transactions
        self.contracts = contracts
        self._signers: ThreadPoolExecutor | None = None

    def sizes(self, peer: X500Name, ids: Sequence[str]) -> dict[str, Any]:
        """A dry run's question: how many of ids the peer would give us, their bytes, and the others
        with why (refused, or not held); nothing is fetched. What is refused alone is asked again as
        the back-chain of what was given, as the real run would fetch it."""
        reply = self._ask(peer, ids, (), sizes_only=True)
        denied = [str(d[0]) for d in reply["denied"]]
        if denied and reply["txs"]:
            roots = [str(t[0]) for t in reply["txs"]][:MAX_ROOTS]
            again = self._ask(peer, denied, roots, sizes_only=True)
            reply = {
                "txs": reply["txs"] + again["txs"],
                "denied": again["denied"],
                "unknown": reply["unknown"] + again["unknown"],
            }
        failed = [[str(d[0]), f"refused by the peer: {d[1]}"] for d in reply["denied"]]
        failed += [[str(u), "the peer does not hold it"] for u in reply["unknown"]]
        return {
            "available": len(reply["txs"]),
            "bytes": sum(int(t[2]) for t in reply["txs"]),
            "failed": failed,
        }

    def _ask(
        self, peer: X500Name, ids: Sequence[str], roots: Sequence[str], *, sizes_only: bool = False
    ) -> dict[str, Any]:
        txs: list[Any] = []
        denied: list[Any] = []
        unknown: list[Any] = []
        for i in range(0, len(ids), REQUEST_IDS):
            ask: dict[str, Any] = {"ids": list(ids[i : i + REQUEST_IDS]), "roots": list(roots)}
            if sizes_only:
                ask["sizesOnly"] = True
            reply = self.peers.request(peer, TOPIC_TRANSACTIONS, ask)
            txs.extend(ser.expect_list(reply.get("txs"), "txs"))
            denied.extend(ser.expect_list(reply.get("denied", []), "denied"))
            unknown.extend(ser.expect_list(reply.get("unknown", []), "unknown"))
        return {"txs": txs, "denied": denied, "unknown": unknown}

    def fetch(self, peer: X500Name, ids: Sequence[str]) -> Fetched:
        """Ask peer for ids and their missing back-chains; PeerError when the peer cannot be asked."""
        return self.fetch_many({peer: ids})[peer]

    def ask_ahead(
        self, asks: Mapping[X500Name, Sequence[str]], submit: Callable[..., Future[Prepared]]
    ) -> dict[X500Name, Ahead]:
        """Start the first requests of a later fetch_many (submit: a pool's submit)."""
        return {
            peer: Ahead(frozenset(ids), submit(self._ask_prepared, peer, list(ids)))
            for peer, ids in asks.items()
            if ids
        }

    def _ask_prepared(self, peer: X500Name, ids: Sequence[str]) -> Prepared:
        prepared = Prepared(self._ask(peer, ids, ()))
        decoded: dict[str, SignedTransaction] = {}
        for item in prepared.reply["txs"]:
            try:
                tx_id, _, raw = ser.expect_list(item, "txs[]")
                decoded[str(tx_id)] = SignedTransaction.deserialize(ser.expect(raw, bytes, "txs[].tx"))
            except AgentError:
                continue  # left for _absorb, which refuses it by name
        bad = bad_signatures(list(decoded.values()))
        prepared.decoded = {tx_id: (stx, bad.get(stx.id)) for tx_id, stx in decoded.items()}
        return prepared

    def _first(self, peer: X500Name, ids: Sequence[str], ahead: Ahead | None) -> Prepared:
        if ahead is None:
            return Prepared(self._ask(peer, ids, ()))
        try:
            early = ahead.reply.result()
        except AgentError:
            return Prepared(self._ask(peer, ids, ()))
        wanted = set(ids)
        reply = {
            key: [i for i in early.reply[key] if _asked(i, wanted)] for key in ("txs", "denied", "unknown")
        }
        rest = [i for i in ids if i not in ahead.ids]
        if rest:
            more = self._ask(peer, rest, ())
            for key in ("txs", "denied", "unknown"):
                reply[key] += more[key]
        return Prepared(reply, early.decoded)

    def fetch_many(
        self,
        asks: Mapping[X500Name, Sequence[str]],
        run: Mapper | None = None,
        ahead: Mapping[X500Name, Ahead] | None = None,
    ) -> dict[X500Name, Fetched]:
        """Ask each peer for its ids, then for the back-chains none of the replies brought (each from the
        peer whose transaction needs it), and verify everything once, parents first: a transaction
        one peer sends is back-chain for another's. run maps a function over the peers (a pool's map
        asks them in parallel); ahead holds first requests already under way (ask_ahead). PeerError
        when a peer cannot be asked."""
        mapper: Mapper = run or (lambda f, items: [f(i) for i in items])
        early = dict(ahead or {})
        results = {peer: Fetched() for peer in asks}
        got: dict[SecureHash, tuple[SignedTransaction, TransactionStatus]] = {}
        checked: dict[SecureHash, AgentError | None] = {}  # signatures the ask ahead checked already
        source: dict[SecureHash, X500Name] = {}
        # The first-round transaction each one descends from: a back-chain request names, as its roots,
        # only those of the ids it asks (the peer walks back from each root until it finds them; from
        # every first-round id, the walk cost the peer a decode of thousands of transactions a batch).
        root_of: dict[SecureHash, SecureHash] = {}
        roots: dict[X500Name, list[str]] = {peer: [] for peer in asks}
        asked: set[tuple[X500Name, SecureHash]] = set()
        requests = {peer: list(dict.fromkeys(ids)) for peer, ids in asks.items() if ids}
        first = True
        while requests:
            items = list(requests.items())
            if first:
                replies = mapper(lambda item: self._first(item[0], item[1], early.get(item[0])), items)
            else:
                replies = mapper(lambda item: Prepared(self._ask(item[0], item[1], roots[item[0]])), items)
            for (peer, _), reply in zip(items, replies, strict=True):
                brought = self._absorb(reply, got, results[peer], checked)
                source.update(dict.fromkeys(brought, peer))
                if first:
                    root_of.update((h, h) for h in brought)
                else:
                    results[peer].back_chain |= set(brought)
            first = False
            lacking: dict[X500Name, dict[SecureHash, SecureHash]] = {}  # peer -> wanted id -> its root
            for h, (stx, _) in got.items():
                peer = source[h]
                for ref in (*stx.tx.inputs, *stx.tx.references):
                    have = got.get(ref.txhash)
                    if (peer, ref.txhash) not in asked and (have is None or have[1] is not VERIFIED):
                        lacking.setdefault(peer, {}).setdefault(ref.txhash, root_of.get(h, h))
            held = (
                self.transactions.transaction_statuses({d for deps in lacking.values() for d in deps})
                if lacking
                else {}
            )
            requests = {}
            for peer, deps in lacking.items():
                asked.update((peer, d) for d in deps)
                need = {d: root for d, root in deps.items() if held.get(d) is not VERIFIED}
                if need:
                    for d, root in need.items():
                        root_of.setdefault(d, root)
                    requests[peer] = sorted(str(d) for d in need)
                    roots[peer] = sorted({str(root) for root in need.values()})[:MAX_ROOTS]
        for peer in source.values():
            results[peer].transactions_fetched += 1
        self._verify(got, source, results, checked)
        return results

    def _absorb(
        self,
        prepared: Prepared,
        got: dict[SecureHash, tuple[SignedTransaction, TransactionStatus]],
        result: Fetched,
        checked: dict[SecureHash, AgentError | None],
    ) -> list[SecureHash]:
        """Take a reply's transactions into got (a VERIFIED copy over an IN_FLIGHT one, else the first
        kept), their signatures' verdicts (if the ask ahead checked them) into checked, and its
        refusals into result; the ids taken."""
        brought: list[SecureHash] = []
        reply = prepared.reply
        for item in reply["txs"]:
            tx_id, status_name, raw = ser.expect_list(item, "txs[]")
            stx, verdict = prepared.decoded.get(str(tx_id)) or (
                SignedTransaction.deserialize(ser.expect(raw, bytes, "txs[].tx")),
                _UNCHECKED,
            )
            if str(stx.id) != tx_id:
                result.failed[str(tx_id)] = f"the peer sent transaction {stx.id} for {tx_id}"
                continue
            status = TransactionStatus[ser.expect(status_name, str, "txs[].status")]
            have = got.get(stx.id)
            if have is None or (have[1] is not VERIFIED and status is VERIFIED):
                got[stx.id] = (stx, status)
                brought.append(stx.id)
                if verdict is _UNCHECKED:  # this copy's signatures (not another copy's) are checked later
                    checked.pop(stx.id, None)
                else:
                    checked[stx.id] = verdict
        for item in reply["denied"]:
            tx_id, reason = ser.expect_list(item, "denied[]")
            result.failed[str(tx_id)] = f"refused by the peer: {reason}"
        for tx_id in reply["unknown"]:
            result.failed[str(tx_id)] = "the peer does not hold it"
        return brought

    def _bad_signatures(self, stxs: Sequence[SignedTransaction]) -> dict[SecureHash, AgentError]:
        """The batch's signatures checked on SIGNATURE_THREADS threads, a part each (a part's checks
        release the GIL once): the transactions with one that does not verify."""
        if self._signers is None:
            self._signers = ThreadPoolExecutor(SIGNATURE_THREADS, thread_name_prefix="signature-check")
            weakref.finalize(self, self._signers.shutdown, wait=False)
        parts = [stxs[i::SIGNATURE_THREADS] for i in range(SIGNATURE_THREADS)]
        found: dict[SecureHash, AgentError] = {}
        for part in self._signers.map(bad_signatures, parts):
            found.update(part)
        return found

    def _verify(
        self,
        got: dict[SecureHash, tuple[SignedTransaction, TransactionStatus]],
        source: Mapping[SecureHash, X500Name],
        results: Mapping[X500Name, Fetched],
        checked: Mapping[SecureHash, AgentError | None],
    ) -> None:
        chain = ChainResolver(self.transactions)
        # What the batch spends of our ledger, read in a few queries instead of one per input.
        outside = {
            ref.txhash
            for stx, _ in got.values()
            for ref in (*stx.tx.inputs, *stx.tx.references)
            if ref.txhash not in got
        }
        chain.verified.update(self.transactions.producing_transactions(outside))
        bad = self._bad_signatures([stx for stx, _ in got.values() if stx.id not in checked])
        bad.update((h, error) for h, error in checked.items() if error is not None)
        for stx in dependency_order([stx for stx, _ in got.values()]):
            status = got[stx.id][1]
            result = results[source[stx.id]]
            try:
                if stx.id in bad:
                    raise bad[stx.id]
                verify(
                    stx,
                    chain,
                    self.contracts,
                    check_notary_signature=status is VERIFIED,
                    signatures_checked=True,
                )
            except AgentError as exc:
                result.failed[str(stx.id)] = f"{type(exc).__name__}: {exc}"
                continue
            if status is VERIFIED:  # only a VERIFIED transaction is back-chain
                chain.verified[stx.id] = stx.tx
            result.verified.append((stx, status))


def _asked(item: Any, wanted: set[str]) -> bool:
    """Whether a reply's item (an id, or a list led by one) is for one of wanted; a malformed one is
    kept, for _absorb to refuse by name."""
    key = item[0] if isinstance(item, list) and item else item
    return not isinstance(key, str) or key in wanted

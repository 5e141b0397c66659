"""The ledger graph: every VERIFIED transaction's id, back-chain edges and parties, in compact arrays.

A Python object per transaction would cost some 1 KB each; here a transaction costs about 80 bytes:
its 32-byte id in one numpy array, and its state refs, outputs and parties in CSR form (offsets into
flat int arrays). A transaction's index is the order in which it joined the graph and never changes;
lookup by id goes through `_order`, the permutation that sorts the ids (searchsorted with a sorter).

Built from the store in two passes: the ids first (cheap, one indexed range query a page), then the
transactions a page at a time, parsed by a pool of readers, each page's refs resolved against the ids
at once. A ref to an id that is not in the graph is kept as -(1 + k), k indexing `_missing`: the
consistency check reports it, nothing here fails on it. After `attach(store)`, transactions that
become VERIFIED are buffered and merged in batches before the next read.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Literal

import cbor2
import numpy as np
import numpy.typing as npt

from agent.errors import StoreError
from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import TransactionStatus
from agent.store.ledger_store import LedgerStore, check_page_size

ID = np.dtype("S32")
I32 = npt.NDArray[np.int32]
MAX_OUTPUTS = 65_535  # output indexes are kept as uint16
FLUSH_AT = 4096  # buffered incremental adds merged at once, or before the next read
Readers = Literal["thread", "process"]


@dataclass(frozen=True)
class Page:
    """One page of parsed transactions, in compact arrays; party and key ids are local to the page."""

    ref_counts: array[int]  # inputs + references per transaction
    input_counts: array[int]  # the first input_counts[i] refs of transaction i are inputs
    ref_hashes: bytes  # 32 bytes per ref
    ref_outs: array[int]
    output_counts: array[int]
    relevant_counts: array[int]
    relevant_outs: array[int]  # indexes of the outputs one of our keys participates in
    party_counts: array[int]
    parties: array[int]  # >= 0: an index into names; < 0: -(1 + k), k a signer key in keys
    names: list[str]
    keys: list[bytes]
    key_names: list[tuple[int, int]]  # (key, name) pairs seen as participants or notary


def parse_page(blobs: Sequence[bytes], our_keys: frozenset[bytes]) -> Page:
    """Parse node_transactions.transaction_value blobs (already verified, so no canonical re-check)."""
    names: dict[str, int] = {}
    keys: dict[bytes, int] = {}
    key_names: dict[int, int] = {}
    ref_counts, input_counts = array("I"), array("H")
    ref_hashes = bytearray()
    ref_outs, output_counts = array("H"), array("H")
    relevant_counts, relevant_outs = array("H"), array("H")
    party_counts, parties = array("I"), array("i")
    for blob in blobs:
        _, inputs, references, outputs, commands, notary, _, _ = cbor2.loads(blob)
        for txhash, index in (*inputs, *references):
            ref_hashes += txhash
            ref_outs.append(index)
        ref_counts.append(len(inputs) + len(references))
        input_counts.append(len(inputs))
        if len(outputs) > MAX_OUTPUTS:
            raise StoreError(
                f"a transaction has {len(outputs)} outputs; the graph keeps at most {MAX_OUTPUTS}"
            )
        output_counts.append(len(outputs))
        seen: set[int] = set()
        relevant = 0
        for j, (_, _, participants) in enumerate(outputs):
            ours = False
            for name, key in participants:
                name_id = names.setdefault(name, len(names))
                key_names[keys.setdefault(key, len(keys))] = name_id
                seen.add(name_id)
                ours = ours or key in our_keys
            if ours:
                relevant_outs.append(j)
                relevant += 1
        relevant_counts.append(relevant)
        if notary is not None:
            key_names[keys.setdefault(notary[1], len(keys))] = names.setdefault(notary[0], len(names))
        for _, _, signers, _ in commands:
            for key in signers:
                key_id = keys.setdefault(key, len(keys))
                known = key_names.get(key_id)
                seen.add(-1 - key_id if known is None else known)
        parties.extend(seen)
        party_counts.append(len(seen))
    return Page(
        ref_counts, input_counts, bytes(ref_hashes), ref_outs, output_counts, relevant_counts,
        relevant_outs, party_counts, parties, list(names), list(keys), list(key_names.items()),
    )  # fmt: skip


def release_freed_memory() -> None:
    """Give the pages' freed buffers back to the OS (glibc keeps ~100 MB of them at 1M transactions)."""
    # Not glibc: nothing to trim, or the allocator returns memory by itself.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def raw_cursor(store: LedgerStore, query: Any) -> Any:
    """The driver's cursor for a peewee query (no row objects: millions of rows pass through)."""
    return store.database.execute(query)  # type: ignore[no-untyped-call]


def _offsets(counts: npt.ArrayLike) -> npt.NDArray[np.int64]:
    out = np.zeros(len(np.asarray(counts)) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def as_hash(tx_id: SecureHash | bytes | str) -> bytes:
    return bytes.fromhex(tx_id) if isinstance(tx_id, str) else bytes(tx_id)


class LedgerGraph:
    """The VERIFIED transactions of one store, as a graph. Build with `LedgerGraph.build`."""

    def __init__(self, our_keys: Iterable[bytes] = ()) -> None:
        self.our_keys = frozenset(our_keys)
        self.is_initialized = False
        self._lock = threading.RLock()
        self._ids = np.empty(0, dtype=ID)
        self._order = np.empty(0, dtype=np.int32)
        self._ref_off = np.zeros(1, dtype=np.int64)
        self._ref_tx = np.empty(0, dtype=np.int32)  # >= 0 a transaction; < 0 -(1 + k) into _missing
        self._ref_out = np.empty(0, dtype=np.uint16)
        self._inputs = np.empty(0, dtype=np.uint16)
        self._outputs = np.empty(0, dtype=np.uint16)
        self._rel_off = np.zeros(1, dtype=np.int64)
        self._rel_out = np.empty(0, dtype=np.uint16)
        self._party_off = np.zeros(1, dtype=np.int64)
        self._party = np.empty(0, dtype=np.int32)
        self._missing: list[bytes] = []
        self._missing_ids: dict[bytes, int] = {}
        self._names: list[str] = []
        self._name_ids: dict[str, int] = {}
        self._key_ids: dict[bytes, int] = {}
        self._key_name = array("i")  # name id of each key id, -1 while unknown
        self._pending: list[tuple[bytes, Page, list[str]]] = []
        self._store: LedgerStore | None = None

    # -- building ------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls, store: LedgerStore, *, page_size: int, pool_size: int, readers: Readers = "process"
    ) -> LedgerGraph:
        """Read every VERIFIED transaction in pages of page_size, parsed by pool_size readers."""
        check_page_size(page_size, "transactionReaderPageSize")
        graph = cls(key.raw for key in store.our_keys)
        ids = bytearray()
        for page in store.transaction_id_pages(status=TransactionStatus.VERIFIED, page_size=page_size):
            ids += bytes.fromhex("".join(page))
        graph._ids = np.frombuffer(ids, dtype=ID)  # in id order: the order is the identity (no copy)
        graph._order = np.arange(len(graph._ids), dtype=np.int32)
        builder = _Builder(graph, len(graph._ids))
        for parsed in _parsed_pages(store, graph, page_size, pool_size, readers):
            builder.add(parsed)
        extra = graph._distribution_pairs(store, page_size)
        builder.finish(extra)
        graph.is_initialized = True
        release_freed_memory()
        return graph

    def _intern_page(self, page: Page) -> tuple[I32, I32]:
        """Global ids for the page's names and keys; records which name each key belongs to."""
        names = np.array([self._name(n) for n in page.names], dtype=np.int32)
        keys = np.array([self._key(k) for k in page.keys], dtype=np.int32)
        for key, name in page.key_names:
            self._key_name[keys[key]] = int(names[name])
        return names, keys

    def _name(self, name: str) -> int:
        found = self._name_ids.get(name)
        if found is None:
            found = self._name_ids[name] = len(self._names)
            self._names.append(name)
        return found

    def _key(self, key: bytes) -> int:
        found = self._key_ids.get(key)
        if found is None:
            found = self._key_ids[key] = len(self._key_name)
            self._key_name.append(-1)
        return found

    def lookup(self, hashes: bytes) -> npt.NDArray[np.int64]:
        """Indexes of these 32-byte ids, -1 where not in the graph."""
        wanted = np.frombuffer(hashes, dtype=ID)
        if not len(self._ids):
            return np.full(len(wanted), -1, dtype=np.int64)
        at = np.searchsorted(self._ids, wanted, sorter=self._order)
        idx = self._order[np.minimum(at, len(self._ids) - 1)].astype(np.int64)
        return np.where(self._ids[idx] == wanted, idx, -1)

    def _resolve(self, hashes: bytes) -> I32:
        """Indexes of these 32-byte ids, or -(1 + k) for the k-th id not in the graph."""
        found = self.lookup(hashes)
        out = found.astype(np.int32)
        for i in np.flatnonzero(found < 0):
            raw = hashes[32 * i : 32 * i + 32]
            k = self._missing_ids.setdefault(raw, len(self._missing))
            if k == len(self._missing):
                self._missing.append(raw)
            out[i] = -1 - k
        return out

    def _party_pairs(self, page: Page, names: I32, keys: I32, first: int) -> tuple[I32, I32]:
        """(transaction, entry) pairs of a page, entries in global ids: a name, or -(1 + key)."""
        entries = np.array(page.parties, dtype=np.int32)
        tx = np.repeat(np.arange(first, first + len(page.party_counts), dtype=np.int32), page.party_counts)
        out = np.empty(len(entries), dtype=np.int32)
        named = entries >= 0
        if named.any():
            out[named] = names[entries[named]]
        if (~named).any():
            out[~named] = -1 - keys[-1 - entries[~named]]
        return tx, out

    def _signer_names(self, entries: I32) -> I32:
        """Signer keys (-(1 + key)) to the names their keys were seen with, -1 where never seen."""
        key_name = np.array(self._key_name, dtype=np.int32)
        signers = entries < 0
        out = entries.copy()
        out[signers] = key_name[-1 - entries[signers]] if len(key_name) else -1
        return out

    def _distribution_pairs(self, store: LedgerStore, page_size: int) -> tuple[I32, I32]:
        """(transaction, name) pairs for the peers named in the distribution records."""
        schema = store.schema
        info = schema.recovery_party_info
        peer_names = {
            r[0]: self._name(r[1]) for r in raw_cursor(store, info.select(info.party_id, info.party_name))
        }
        txs, names = array("i"), array("i")
        for model in (schema.sender_distr_recs, schema.receiver_distr_recs):
            cursor = raw_cursor(store, model.select(model.transaction_id, model.peer_party_id))
            while rows := cursor.fetchmany(page_size):
                found = self.lookup(bytes.fromhex("".join(r[0] for r in rows)))
                for index, row in zip(found.tolist(), rows, strict=True):
                    if index >= 0 and row[1] in peer_names:
                        txs.append(index)
                        names.append(peer_names[row[1]])
        return np.frombuffer(txs, dtype=np.int32).copy(), np.frombuffer(names, dtype=np.int32).copy()

    # -- keeping up to date ----------------------------------------------------------------------------

    def attach(self, store: LedgerStore) -> None:
        """Add each transaction as it becomes VERIFIED, and any recorded since the build."""
        self._store = store
        store.add_listener(self._on_recorded)
        with self._lock:
            for page in store.transaction_id_pages(status=TransactionStatus.VERIFIED):
                found = self.lookup(bytes.fromhex("".join(page)))
                for hex_id in (h for h, i in zip(page, found.tolist(), strict=True) if i < 0):
                    stx = store.get_transaction(SecureHash(bytes.fromhex(hex_id)))
                    if stx is not None:
                        self.add(stx)

    def _on_recorded(self, stx: SignedTransaction, status: TransactionStatus) -> None:
        if status is TransactionStatus.VERIFIED:
            self.add(stx)

    def add(self, stx: SignedTransaction) -> None:
        """Add one VERIFIED transaction (buffered; a no-op when it is already in the graph)."""
        tx_id = bytes(stx.id)
        peers: list[str] = []
        if self._store is not None:
            peers = [str(r.peer) for r in self._store.sender_records(stx.id)]
            peers += [str(r.sender) for r in self._store.receiver_records(stx.id)]
        with self._lock:
            if self._index(tx_id) >= 0 or any(p[0] == tx_id for p in self._pending):
                return
            self._pending.append((tx_id, parse_page([stx.tx.serialized], self.our_keys), peers))
            if len(self._pending) >= FLUSH_AT:
                self._flush()

    def _flush(self) -> None:
        """Merge the buffered transactions into the arrays."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            first = len(self._ids)
            new_ids = np.frombuffer(b"".join(p[0] for p in pending), dtype=ID)
            at = np.searchsorted(self._ids, new_ids, sorter=self._order)
            by_id = np.argsort(new_ids, kind="stable")
            self._order = np.insert(self._order, at[by_id], (first + by_id).astype(np.int32))
            self._ids = np.concatenate([self._ids, new_ids])
            self._repair_missing(new_ids, first)
            builder = _Builder(self, len(pending), first=first, extend=True)
            extra_tx, extra_name = array("i"), array("i")
            for offset, (_, page, peers) in enumerate(pending):
                builder.add(page)
                for peer in peers:
                    extra_tx.append(first + offset)
                    extra_name.append(self._name(peer))
            builder.finish((np.array(extra_tx, dtype=np.int32), np.array(extra_name, dtype=np.int32)))

    def _repair_missing(self, new_ids: npt.NDArray[Any], first: int) -> None:
        """Refs to a transaction that was missing now point at it."""
        for offset, raw in enumerate(new_ids.view(np.uint8).reshape(-1, 32)):
            k = self._missing_ids.get(raw.tobytes())
            if k is not None:
                self._ref_tx[self._ref_tx == -1 - k] = first + offset

    # -- reading -------------------------------------------------------------------------------------

    @property
    def size(self) -> int:
        with self._lock:
            return len(self._ids) + len(self._pending)

    def _index(self, tx_id: SecureHash | bytes | str) -> int:
        if not len(self._ids):
            return -1
        wanted = np.array([as_hash(tx_id)], dtype=ID)
        at = int(np.searchsorted(self._ids, wanted, sorter=self._order)[0])
        if at == len(self._ids):
            return -1
        index = int(self._order[at])
        return index if self._ids[index] == wanted[0] else -1

    def index(self, tx_id: SecureHash | bytes | str) -> int:
        """The transaction's index in the arrays, or -1."""
        self._flush()
        return self._index(tx_id)

    def id_at(self, index: int) -> SecureHash:
        if index < 0:
            return SecureHash(self._missing[-1 - index])
        return SecureHash(self._ids[index : index + 1].tobytes())

    def ids(self, indexes: Iterable[int]) -> list[SecureHash]:
        return [self.id_at(int(i)) for i in indexes]

    def contains(self, tx_id: SecureHash | bytes | str) -> bool:
        return self.index(tx_id) >= 0

    def _require(self, tx_id: SecureHash | bytes | str) -> int:
        index = self.index(tx_id)
        if index < 0:
            raise KeyError(f"{SecureHash(as_hash(tx_id))} is not a VERIFIED transaction in the graph")
        return index

    def parents(self, tx_id: SecureHash | bytes | str) -> set[SecureHash]:
        """The transactions its inputs and references point at (recorded or not)."""
        i = self._require(tx_id)
        return set(self.ids(np.unique(self._ref_tx[self._ref_off[i] : self._ref_off[i + 1]])))

    def parties(self, tx_id: SecureHash | bytes | str) -> set[str]:
        """Output participants, command signers known by name, and distribution-record peers."""
        i = self._require(tx_id)
        return {self._names[n] for n in self._party[self._party_off[i] : self._party_off[i + 1]].tolist()}

    def involving(self, party_name: str) -> npt.NDArray[np.int32]:
        """Indexes (ascending) of the transactions that party is involved in; `ids()` turns them to ids."""
        self._flush()
        name = self._name_ids.get(party_name)
        if name is None:
            return np.empty(0, dtype=np.int32)
        at = np.flatnonzero(self._party == name)
        return (np.searchsorted(self._party_off, at, side="right") - 1).astype(np.int32)

    def backchain(self, tx_ids: Iterable[SecureHash | bytes | str]) -> set[SecureHash]:
        """Every ancestor of these transactions over input and reference edges (missing ones too)."""
        self._flush()
        seen = np.zeros(len(self._ids), dtype=bool)
        missing: set[int] = set()
        frontier = np.array([self._require(t) for t in tx_ids], dtype=np.int64)
        while len(frontier):
            starts, ends = self._ref_off[frontier], self._ref_off[frontier + 1]
            lengths = ends - starts
            gather = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            parents = np.unique(self._ref_tx[gather])
            missing.update(parents[parents < 0].tolist())
            parents = parents[parents >= 0]
            frontier = parents[~seen[parents]].astype(np.int64)
            seen[frontier] = True
        return set(self.ids(np.flatnonzero(seen))) | set(self.ids(missing))

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays themselves, read-only by convention (for the consistency check and benchmarks)."""
        self._flush()
        return {
            "ids": self._ids, "order": self._order, "ref_off": self._ref_off, "ref_tx": self._ref_tx,
            "ref_out": self._ref_out, "inputs": self._inputs, "outputs": self._outputs,
            "rel_off": self._rel_off, "rel_out": self._rel_out, "party_off": self._party_off,
            "party": self._party,
        }  # fmt: skip

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values())


class _Builder:
    """Accumulates pages into growable compact arrays, then installs them in the graph."""

    def __init__(self, graph: LedgerGraph, expected: int, *, first: int = 0, extend: bool = False) -> None:
        self.graph, self.expected, self.first, self.extend = graph, expected, first, extend
        self.count = 0
        self.ref_counts, self.ref_tx, self.ref_out = array("I"), array("i"), array("H")
        self.inputs, self.outputs = array("H"), array("H")
        self.rel_counts, self.rel_out = array("H"), array("H")
        self.party_tx, self.party = array("i"), array("i")

    def add(self, page: Page) -> None:
        graph = self.graph
        names, keys = graph._intern_page(page)
        self.ref_counts.extend(page.ref_counts)
        self.ref_tx.extend(graph._resolve(page.ref_hashes).tolist())
        self.ref_out.extend(page.ref_outs)
        self.inputs.extend(page.input_counts)
        self.outputs.extend(page.output_counts)
        self.rel_counts.extend(page.relevant_counts)
        self.rel_out.extend(page.relevant_outs)
        tx, named = graph._party_pairs(page, names, keys, self.first + self.count)
        self.party_tx.extend(tx.tolist())
        self.party.extend(named.tolist())
        self.count += len(page.ref_counts)

    def finish(self, extra: tuple[I32, I32]) -> None:
        graph = self.graph
        if self.count != self.expected:
            raise StoreError(f"read {self.count} VERIFIED transactions, expected {self.expected}")
        named = graph._signer_names(np.frombuffer(self.party, dtype=np.int32))
        keep = named >= 0
        party_off, party = _dedupe_pairs(
            np.concatenate([np.frombuffer(self.party_tx, dtype=np.int32)[keep], extra[0]]) - self.first,
            np.concatenate([named[keep], extra[1]]),
            self.count,
        )
        parts: dict[str, npt.NDArray[Any]] = {
            "_ref_off": _offsets(np.frombuffer(self.ref_counts, dtype=np.uint32)),
            "_ref_tx": np.frombuffer(self.ref_tx, dtype=np.int32),
            "_ref_out": np.frombuffer(self.ref_out, dtype=np.uint16),
            "_inputs": np.frombuffer(self.inputs, dtype=np.uint16),
            "_outputs": np.frombuffer(self.outputs, dtype=np.uint16),
            "_rel_off": _offsets(np.frombuffer(self.rel_counts, dtype=np.uint16)),
            "_rel_out": np.frombuffer(self.rel_out, dtype=np.uint16),
            "_party_off": party_off,
            "_party": party,
        }
        for attr, value in parts.items():
            if not self.extend:
                setattr(graph, attr, value)
            elif attr.endswith("_off"):
                old = getattr(graph, attr)
                setattr(graph, attr, np.concatenate([old, value[1:] + old[-1]]))
            else:
                setattr(graph, attr, np.concatenate([getattr(graph, attr), value]))


def _dedupe_pairs(tx: I32, names: I32, count: int) -> tuple[npt.NDArray[np.int64], I32]:
    """CSR of the distinct names of each transaction (tx are 0-based here), sorted by name."""
    keys = np.unique(tx.astype(np.int64) << 32 | names.astype(np.int64))
    return _offsets(np.bincount(keys >> 32, minlength=count)), (keys & 0xFFFFFFFF).astype(np.int32)


def _parsed_pages(
    store: LedgerStore, graph: LedgerGraph, page_size: int, pool_size: int, readers: Readers
) -> Iterator[Page]:
    """The graph's transactions parsed, a page at a time, in id order."""
    pages = _blob_pages(store, graph, page_size)
    if pool_size <= 1:
        yield from (parse_page(blobs, graph.our_keys) for blobs in pages)
        return
    pool: Executor = (
        ThreadPoolExecutor(pool_size)
        if readers == "thread"
        else ProcessPoolExecutor(pool_size, mp_context=get_context("spawn"))
    )
    with pool:
        queued: list[Future[Page]] = []
        for blobs in pages:
            queued.append(pool.submit(parse_page, blobs, graph.our_keys))
            if len(queued) > 2 * pool_size:
                yield queued.pop(0).result()
        for future in queued:
            yield future.result()


def _blob_pages(store: LedgerStore, graph: LedgerGraph, page_size: int) -> Iterator[list[bytes]]:
    """transaction_value of the ids read in the first pass (rows VERIFIED since then are left out)."""
    nt = store.schema.node_transactions
    last = ""
    while True:
        query = (
            nt.select(nt.tx_id, nt.transaction_value)
            .where((nt.tx_id > last) & (nt.status == TransactionStatus.VERIFIED.value))
            .order_by(nt.tx_id)
            .limit(page_size)
        )
        rows = raw_cursor(store, query).fetchall()
        if not rows:
            return
        last = rows[-1][0]
        wanted = graph.lookup(bytes.fromhex("".join(r[0] for r in rows))) >= 0
        yield [bytes(r[1]) for r, keep in zip(rows, wanted.tolist(), strict=True) if keep]
        if len(rows) < page_size:
            return

"""The ledger graph: every VERIFIED transaction's id, back-chain edges and parties, in compact arrays.

A Python object per transaction would cost some 1 KB each; here a transaction costs about 43 bytes:
its 32-byte id in one numpy array, its refs in CSR form (int32 offsets into a flat int32 array of
the transactions they point at), and the id of its set of parties (`partysets`: each distinct set
is kept once). What only the consistency check reads is not kept (`states`). A transaction's index
is the order in which it joined the graph and never changes; lookup by id goes through `_order`,
the permutation that sorts the ids (searchsorted with a sorter), None while it is the identity: as
built, index order is id order.

Built from the store (`graph_build`) in two passes: the ids first (cheap, one indexed range query a
page), then the transactions a page at a time, parsed by a pool of readers (`graph_pages`), each
page's refs resolved against the ids at once. A ref to an id that is not in the graph is kept as
-(1 + k), k indexing `_missing`: the consistency check reports it, nothing here fails on it. After
`attach(transactions, records)`, transactions that become VERIFIED are buffered and merged in
batches before the next read.

Parties are names: output participants, command signers known by name, distribution-record peers,
and US, this node itself, for every transaction we took part in (one of our keys participates or
signs, or we hold a distribution record for it), so that an observer counts itself involved.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.ledger.hashing import SecureHash
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import TransactionStatus
from agent.ledgersync.csr import segments
from agent.ledgersync.graph_build import Builder, distribution_pairs
from agent.ledgersync.graph_pages import (
    MAX_OUTPUTS,
    US,
    Page,
    Readers,
    parse_page,
    parsed_pages,
)
from agent.ledgersync.idset import IdSet, find_ids
from agent.ledgersync.memory import release_freed_memory
from agent.ledgersync.partysets import PartySets
from agent.ledgersync.states import StateArrays, read_states
from agent.ports.distribution import DistributionRecords
from agent.ports.graph_scans import GraphScans
from agent.ports.paging import check_page_size
from agent.ports.transactions import TransactionReader

__all__ = [
    "MAX_OUTPUTS",
    "US",
    "LedgerGraph",
    "Page",
    "Readers",
    "parse_page",
    "release_freed_memory",
]

ID = np.dtype("S32")
I32 = npt.NDArray[np.int32]
FLUSH_AT = 4096  # buffered incremental adds merged at once, or before the next read
ENTRY_CHUNK = 1 << 18  # transactions marked at a time
WALK_CHUNK = 1 << 16  # rows whose parents a back-chain walk gathers at a time
TRIM_EVERY = 32  # pages read between two returns of freed memory to the OS


def as_hash(tx_id: SecureHash | bytes | str) -> bytes:
    return bytes.fromhex(tx_id) if isinstance(tx_id, str) else bytes(tx_id)


class LedgerGraph:
    """The VERIFIED transactions of one store, as a graph. Build with `LedgerGraph.build`."""

    def __init__(self, our_keys: Iterable[bytes] = (), *, me: str | None = None) -> None:
        self.our_keys = frozenset(our_keys)
        self.me = me  # our name, when known; else our keys tell it once seen with a name
        self.is_initialized = False
        self._lock = threading.RLock()
        self._ids = np.empty(0, dtype=ID)
        self._id_buffer = self._ids  # _ids is always its first len(_ids) entries
        self._order: I32 | None = None  # None: the identity, index order is id order
        self._ref_off = np.zeros(1, dtype=np.int32)
        self._ref_tx = np.empty(0, dtype=np.int32)  # >= 0 a transaction; < 0 -(1 + k) into _missing
        # The build's inputs and outputs, kept for the check that follows it (see `states`), then dropped.
        self._states: StateArrays | None = None
        self._sets = PartySets()
        self._party_set: npt.NDArray[np.integer[Any]] = np.empty(0, dtype=np.uint16)  # int32 past 65,536 sets
        self._missing: list[bytes] = []
        self._missing_ids: dict[bytes, int] = {}
        self._names: list[str] = [US]  # US is name 0
        self._name_ids: dict[str, int] = {US: 0}
        self._key_ids: dict[bytes, int] = {}
        self._key_name = array("i")  # name id of each key id, -1 while unknown
        self._pending: list[tuple[bytes, Page, list[str]]] = []
        self._records: DistributionRecords | None = None

    # -- building ------------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        store: GraphScans,
        *,
        page_size: int,
        pool_size: int,
        readers: Readers = "process",
        me: str | None = None,
    ) -> LedgerGraph:
        """Read every VERIFIED transaction in pages of page_size, parsed by pool_size readers."""
        check_page_size(page_size, "transactionReaderPageSize")
        graph = cls((key.raw for key in store.our_keys), me=me)
        with store.scanning():
            graph._read(store, page_size=page_size, pool_size=pool_size, readers=readers)
        graph.is_initialized = True
        release_freed_memory()
        return graph

    def _read(self, store: GraphScans, *, page_size: int, pool_size: int, readers: Readers) -> None:
        """The ids first (sorted by the store), then the pages: the arrays, and the states for the first check."""
        # Sized from a count first: a bytearray grown page by page kept ~2 MB of slack at 1M ids and
        # copied itself as it grew. Transactions recorded since the count still find room.
        buffer = np.empty(store.count_transactions(TransactionStatus.VERIFIED), dtype=ID)
        count = 0
        for page in store.transaction_id_pages(status=TransactionStatus.VERIFIED, page_size=page_size):
            raw = np.frombuffer(bytes.fromhex("".join(page)), dtype=ID)
            if count + len(raw) > len(buffer):
                buffer = np.concatenate([buffer[:count], np.empty(len(raw) + len(buffer) // 8, ID)])
            buffer[count : count + len(raw)] = raw
            count += len(raw)
        self._ids = buffer[:count]  # in id order: the order is the identity
        self._id_buffer = buffer
        # Read first, so that each page merges its own share instead of all at the end.
        extra = distribution_pairs(self, store, page_size)
        builder = Builder(self, len(self._ids), extra, states=True)
        pages = parsed_pages(store, self.lookup, self.our_keys, page_size, pool_size, readers)
        for count, parsed in enumerate(pages, 1):
            builder.add(parsed)
            if count % TRIM_EVERY == 0:
                release_freed_memory()  # the freed pages, else the heap grows by ~25 MB at 1M
        builder.finish()

    def intern_page(self, page: Page) -> tuple[I32, I32]:
        """Global ids for the page's names and keys; records which name each key belongs to."""
        names = np.array([self.name_id(n) for n in page.names], dtype=np.int32)
        keys = np.array([self._key(k) for k in page.keys], dtype=np.int32)
        for key, name in page.key_names:
            self._key_name[keys[key]] = int(names[name])
        return names, keys

    def name_id(self, name: str) -> int:
        """The name's id, given it one if new."""
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

    def key_names(self) -> I32:
        """The name id of each key id, -1 where never seen with a name (a copy: _key_name grows)."""
        return np.array(self._key_name, dtype=np.int32)

    def lookup(self, hashes: bytes) -> npt.NDArray[np.int64]:
        """Indexes of these 32-byte ids, -1 where not in the graph."""
        return find_ids(self._ids, self._order, hashes)

    def resolve(self, hashes: bytes) -> I32:
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

    # -- keeping up to date ----------------------------------------------------------------------------

    def attach(self, transactions: TransactionReader, records: DistributionRecords) -> None:
        """Add each transaction as it becomes VERIFIED (its peers from its distribution records), and
        any recorded since the build."""
        self._records = records
        transactions.add_listener(self._on_recorded)
        with self._lock:
            for page in transactions.transaction_id_pages(status=TransactionStatus.VERIFIED):
                found = self.lookup(bytes.fromhex("".join(page)))
                for hex_id in (h for h, i in zip(page, found.tolist(), strict=True) if i < 0):
                    stx = transactions.get_transaction(SecureHash(bytes.fromhex(hex_id)))
                    if stx is not None:
                        self.add(stx)

    def _on_recorded(self, stx: SignedTransaction, status: TransactionStatus) -> None:
        if status is TransactionStatus.VERIFIED:
            self.add(stx)

    def add(self, stx: SignedTransaction) -> None:
        """Add one VERIFIED transaction (buffered; a no-op when it is already in the graph)."""
        tx_id = bytes(stx.id)
        peers: list[str] = []
        if self._records is not None:
            peers = [str(r.peer) for r in self._records.sender_records(stx.id)]
            peers += [str(r.sender) for r in self._records.receiver_records(stx.id)]
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
            appended = bool((at == first).all()) and bool((by_id == np.arange(len(by_id))).all())
            if self._order is not None or not appended:
                order = np.arange(first, dtype=np.int32) if self._order is None else self._order
                self._order = np.insert(order, at[by_id], (first + by_id).astype(np.int32))
            self._append_ids(new_ids)
            self._repair_missing(new_ids, first)
            extra_tx, extra_name = array("i"), array("i")
            for offset, (_, _, peers) in enumerate(pending):
                # A distribution record: a finality we took part in (see distribution_pairs).
                for name in [US, *peers] if peers else []:
                    extra_tx.append(first + offset)
                    extra_name.append(self.name_id(name))
            extra = (np.array(extra_tx, dtype=np.int32), np.array(extra_name, dtype=np.int32))
            builder = Builder(
                self, len(pending), extra, first=first, extend=True, states=self._states is not None
            )
            for _, page, _ in pending:
                builder.add(page)
            builder.finish()

    def _append_ids(self, new_ids: npt.NDArray[Any]) -> None:
        """Append to the ids in the spare room of their buffer, growing it by an eighth when full.

        Concatenating would copy all the ids (32 MB at 1M) on every merge. Writing past the end is
        safe for the views handed out before (the IdSet of a session): they never see past their length.
        """
        n, k = len(self._ids), len(new_ids)
        if len(self._id_buffer) < n + k:
            grown = np.empty(n + k + max(FLUSH_AT, (n + k) // 8), dtype=ID)
            grown[:n] = self._ids
            self._id_buffer = grown
        self._id_buffer[n : n + k] = new_ids
        self._ids = self._id_buffer[: n + k]

    def _repair_missing(self, new_ids: npt.NDArray[Any], first: int) -> None:
        """Refs to a transaction that was missing now point at it.

        In a copy, so that the ref_tx a consistency check read is reading stays as it was (the graph
        never writes its arrays in place: the check need not copy them, 4.7 MB at 1M).
        """
        found = [
            (first + offset, k)
            for offset, raw in enumerate(new_ids.view(np.uint8).reshape(-1, 32))
            if (k := self._missing_ids.get(raw.tobytes())) is not None
        ]
        if not found:
            return
        ref_tx = self._ref_tx.copy()
        for index, k in found:
            ref_tx[ref_tx == -1 - k] = index
        self._ref_tx = ref_tx

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
        index = at if self._order is None else int(self._order[at])
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

    def our_names(self) -> set[str]:
        """Our name, and the names our keys were seen with (US stands for them in `parties`)."""
        key_name = self.key_names()
        found = (self._key_ids.get(k) for k in self.our_keys)
        names = {self._names[key_name[k]] for k in found if k is not None and key_name[k] >= 0}
        return names | {self.me} if self.me is not None else names

    def parties(self, tx_id: SecureHash | bytes | str) -> set[str]:
        """Output participants, command signers known by name, distribution-record peers, and us."""
        i = self._require(tx_id)
        names = {self._names[n] for n in self._sets.members(int(self._party_set[i]))}
        if US in names:
            names.remove(US)
            names |= self.our_names()
        return names

    def involving(self, party_name: str) -> I32:
        """Indexes (ascending) of the transactions that party is involved in; `ids()` turns them to ids.

        One of our own names also finds the transactions we took part in without being named (US).
        """
        return np.flatnonzero(self.involving_mask(party_name)).astype(np.int32)

    def involving_us(self) -> I32:
        """Indexes (ascending) of the transactions we took part in: our keys, or a distribution record."""
        return np.flatnonzero(self.us_mask()).astype(np.int32)

    def involving_mask(self, party_name: str) -> npt.NDArray[np.bool_]:
        """`involving` as a mask over the graph (1 byte a transaction)."""
        self._flush()
        mask = np.zeros(len(self._ids), dtype=bool)
        name = self._name_ids.get(party_name)
        if name is not None:
            self._mark(mask, name)
        if party_name != US and party_name in self.our_names():
            self._mark(mask, self._name_ids[US])
        return mask

    def us_mask(self) -> npt.NDArray[np.bool_]:
        """`involving_us` as a mask over the graph."""
        self._flush()
        mask = np.zeros(len(self._ids), dtype=bool)
        self._mark(mask, self._name_ids[US])
        return mask

    def _mark(self, mask: npt.NDArray[np.bool_], name: int) -> None:
        # The sets that name it, then each transaction's set looked up in them, a chunk at a time.
        named = self._sets.containing(name)
        if not named.any():
            return
        for lo in range(0, len(mask), ENTRY_CHUNK):
            mask[lo : lo + ENTRY_CHUNK] |= named[self._party_set[lo : lo + ENTRY_CHUNK]]

    def with_backchains(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """mask (changed in place and returned) with every recorded ancestor of its transactions.

        The walk starts with them marked, so it never walks again what they already cover: when
        they are most of the ledger (a pair set), only the first round reads them all, a chunk of
        the mask at a time (their indexes at once would be 8 MB a million)."""
        self._flush()
        first = [
            self._unseen_parents(np.flatnonzero(mask[lo : lo + WALK_CHUNK]) + lo, mask)
            for lo in range(0, len(mask), WALK_CHUNK)
        ]
        frontier = np.unique(np.concatenate(first)) if first else np.zeros(0, dtype=np.int32)
        mask[frontier] = True
        self._walk(mask, frontier)
        return mask

    def _walk(self, seen: npt.NDArray[np.bool_], frontier: npt.NDArray[Any]) -> None:
        """Mark in seen every unseen recorded ancestor of frontier (already marked), round by round."""
        while len(frontier):
            # A chunk of rows at a time: segments() over a million rows made some 50 MB of int64
            # temporaries at once, the whole of a reconciliation's peak above the graph.
            found = [
                self._unseen_parents(frontier[lo : lo + WALK_CHUNK], seen)
                for lo in range(0, len(frontier), WALK_CHUNK)
            ]
            frontier = np.unique(np.concatenate(found))
            seen[frontier] = True

    def _unseen_parents(self, rows: npt.NDArray[Any], seen: npt.NDArray[np.bool_]) -> I32:
        """The distinct recorded parents of these rows that seen does not mark."""
        parents = self._ref_tx[segments(self._ref_off, rows)]
        parents = parents[parents >= 0]
        # Unseen first, then unique: a pair set's first round gathers a couple of million parents,
        # nearly all seen already; np.unique over all of them took most of a second.
        unseen: I32 = np.unique(parents[~seen[parents]])
        return unseen

    def backchain(self, tx_ids: Iterable[SecureHash | bytes | str]) -> set[SecureHash]:
        """Every ancestor of these transactions over input and reference edges (missing ones too)."""
        self._flush()
        seen = np.zeros(len(self._ids), dtype=bool)
        missing: set[int] = set()
        frontier = np.array([self._require(t) for t in tx_ids], dtype=np.int64)
        while len(frontier):
            parents = np.unique(self._ref_tx[segments(self._ref_off, frontier)])
            missing.update(parents[parents < 0].tolist())
            parents = parents[parents >= 0]
            frontier = parents[~seen[parents]].astype(np.int64)
            seen[frontier] = True
        return set(self.ids(np.flatnonzero(seen))) | set(self.ids(missing))

    def id_set(self, mask: npt.NDArray[np.bool_]) -> IdSet:
        """The ids where mask is True, as an IdSet over the graph's own ids (the mask, 1 byte an id).

        A set made before the next merge keeps the ids array of its time alive (merges replace it).
        """
        self._flush()
        if self._order is None and mask.all():
            return IdSet(self._ids)
        return IdSet.masked(self._ids, mask, self._order)

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays themselves, read-only by convention (for the consistency check and benchmarks)."""
        self._flush()
        return {
            "ids": self._ids, "order": self._order if self._order is not None else np.empty(0, np.int32),
            "ref_off": self._ref_off, "ref_tx": self._ref_tx, "party_set": self._party_set,
        }  # fmt: skip

    def take_states(self) -> StateArrays | None:
        """The states the build collected (and merges since extended), once; then None."""
        with self._lock:
            self._flush()
            states, self._states = self._states, None
            return states

    def read_states(self, store: GraphScans, *, page_size: int, pool_size: int = 1) -> StateArrays:
        """The states of the transactions in the graph now, read again from the store."""
        with self._lock:
            self._flush()
            # Merges replace the arrays (see _repair_missing) but append to _missing: a copy of it.
            graph = (self._ids, self._order, self._ref_off, self._ref_tx, list(self._missing))
        with store.scanning():
            return read_states(store, self.our_keys, *graph, page_size=page_size, pool_size=pool_size)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays().values()) + self._sets.nbytes

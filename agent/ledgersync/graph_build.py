"""Building the ledger graph's arrays a page at a time, with each page's parties de-duplicated as it comes.

Memory is the point: a million transactions hold some 3.5 million (transaction, party) entries.
De-duplicating them all at once, as 64-bit keys, took three copies of them (the 287 MB peak the
benchmark measured); per page the temporaries are a page's worth. Each transaction's entries are
then interned as a party set (`partysets`): the transaction keeps the set's id. Signers whose key
was not yet seen with a name stay as -(1 + key) in their sets until `finish`, which names them in
the table of sets, not per transaction. Arrays grow in `array.array`s (no Python int per entry)
and are handed to numpy without a copy.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent.errors import StoreError
from agent.ledgersync.csr import extend_offsets
from agent.ledgersync.graph_pages import US, Page
from agent.ledgersync.narrow import NarrowInts
from agent.ledgersync.states import StateCollector
from agent.ports.graph_scans import GraphScans

if TYPE_CHECKING:
    from agent.ledgersync.graph import LedgerGraph

I32 = npt.NDArray[np.int32]
_HALF = 2**31
REMAP_CHUNK = 1 << 16


def distribution_pairs(graph: LedgerGraph, store: GraphScans, page_size: int) -> tuple[I32, I32]:
    """(transaction, name) pairs sorted by transaction: the peers of our distribution records, and US.

    A distribution record means the transaction went through a finality we took part in, so we are
    one of its parties even when no state or signature names us.
    """
    peer_names = {party_id: graph.name_id(name) for party_id, name in store.party_names()}
    us = graph.name_id(US)
    txs, names = array("i"), array("i")
    for rows in store.distribution_peer_pages(page_size):
        found = graph.lookup(bytes.fromhex("".join(r[0] for r in rows)))
        for index, row in zip(found.tolist(), rows, strict=True):
            if index >= 0:
                txs.append(index)
                names.append(us)
                if row[1] in peer_names:
                    txs.append(index)
                    names.append(peer_names[row[1]])
    tx = np.frombuffer(txs, dtype=np.int32)
    by_tx = np.argsort(tx, kind="stable")
    return tx[by_tx], np.frombuffer(names, dtype=np.int32)[by_tx]


class Builder:
    """Accumulates pages into growable compact arrays, then installs them in the graph.

    extra: (transaction, name) pairs sorted by transaction (graph indexes), merged into the pages'.
    states: also collect the inputs and outputs the consistency check needs (`states`), into the
    graph's held states (extending them on a merge while they are held).
    """

    def __init__(
        self,
        graph: LedgerGraph,
        expected: int,
        extra: tuple[I32, I32],
        *,
        first: int = 0,
        extend: bool = False,
        states: bool = False,
    ) -> None:
        self.graph, self.expected, self.first, self.extend = graph, expected, first, extend
        self.extra_tx, self.extra_name = extra
        self.count = 0
        self.ref_off, self.ref_tx = array("i", [0]), array("i")
        self.states = StateCollector() if states else None
        self.party_set = NarrowInts(1)  # uint16 while there are at most 65,536 sets

    def add(self, page: Page) -> None:
        graph = self.graph
        names, keys = graph.intern_page(page)
        extend_offsets(self.ref_off, page.ref_counts)
        self.ref_tx.frombytes(graph.resolve(page.ref_hashes).tobytes())
        if self.states is not None:
            self.states.add(page)
        counts, entries = self._page_parties(page, names, keys)
        self.party_set.extend(graph._sets.intern_rows(counts, entries))
        self.count += len(page.ref_counts)

    def _page_parties(self, page: Page, names: I32, keys: I32) -> tuple[npt.NDArray[np.int64], I32]:
        """The page's party entries in global ids, with its extra pairs, distinct and sorted per transaction.

        Entries are a name, or -(1 + key) for a signer whose key has no name yet.
        """
        size = len(page.party_counts)
        local = np.frombuffer(page.parties, dtype=np.int32)
        entries = np.empty(len(local), dtype=np.int32)
        named = local >= 0
        entries[named] = names[local[named]]
        signer_keys = keys[-1 - local[~named]]
        key_name = self.graph.key_names()
        known = key_name[signer_keys] if len(key_name) else np.full(len(signer_keys), -1, dtype=np.int32)
        entries[~named] = np.where(known >= 0, known, -1 - signer_keys)
        tx = np.repeat(np.arange(size, dtype=np.int64), np.frombuffer(page.party_counts, dtype=np.uint32))
        start = self.first + self.count
        # In extra_tx's own type: searchsorted would cast all of extra_tx to a list's int64.
        lo, hi = np.searchsorted(self.extra_tx, np.array([start, start + size], dtype=self.extra_tx.dtype))
        tx = np.concatenate([tx, self.extra_tx[lo:hi].astype(np.int64) - start])
        entries = np.concatenate([entries, self.extra_name[lo:hi]])
        # Offset so that negative entries order before names within a transaction.
        pairs = np.unique(tx << 32 | (entries.astype(np.int64) + _HALF))
        counts = np.bincount(pairs >> 32, minlength=size)
        return counts, ((pairs & 0xFFFFFFFF) - _HALF).astype(np.int32)

    def _set_ids(self) -> npt.NDArray[Any]:
        """The party set of each transaction read, the late signers named now (or dropped)."""
        sets = self.graph._sets
        ids = self.party_set.numpy()
        remap = sets.resolve_late(self.graph.key_names())
        dtype = sets.set_dtype()
        if remap is None:
            return ids.astype(dtype, copy=False)
        named = np.empty(len(ids), dtype=dtype)
        for lo in range(0, len(ids), REMAP_CHUNK):  # remap[ids] whole would be int32: 4 MB at 1M
            named[lo : lo + REMAP_CHUNK] = remap[ids[lo : lo + REMAP_CHUNK]]
        return named

    def finish(self) -> None:
        graph = self.graph
        if self.count != self.expected:
            raise StoreError(f"read {self.count} VERIFIED transactions, expected {self.expected}")
        party_set = self._set_ids()
        parts: dict[str, npt.NDArray[Any]] = {
            "_ref_off": np.frombuffer(self.ref_off, dtype=np.int32),
            "_ref_tx": np.frombuffer(self.ref_tx, dtype=np.int32),
        }
        for attr, value in parts.items():
            if not self.extend:
                setattr(graph, attr, value)
            elif attr.endswith("_off"):
                old = getattr(graph, attr)
                setattr(graph, attr, np.concatenate([old, value[1:] + old[-1]]))
            else:
                setattr(graph, attr, np.concatenate([getattr(graph, attr), value]))
        # More sets than uint16 holds turn the old ids to int32 too (concatenate widens).
        graph._party_set = np.concatenate([graph._party_set, party_set]) if self.extend else party_set
        if self.states is not None:
            more = self.states.states(graph._ids, graph._order, graph._ref_off, graph._ref_tx, graph._missing)
            held = graph._states
            graph._states = held.extended(more) if self.extend and held is not None else more

"""Building the ledger graph's arrays a page at a time, with each page's parties de-duplicated as it comes.

Memory is the point: a million transactions hold some 3.5 million (transaction, party) entries.
De-duplicating them all at once, as 64-bit keys, took three copies of them (the 287 MB peak the
benchmark measured); per page the temporaries are a page's worth. Signers whose key was not yet
seen with a name stay as -(1 + key) until `finish`, which names them and re-sorts only their
transactions. Arrays grow in `array.array`s (no Python int per entry) and are handed to numpy
without a copy.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from agent.errors import StoreError
from agent.ledgersync.graph_pages import US, Page, raw_cursor
from agent.store.ledger_store import LedgerStore

if TYPE_CHECKING:
    from agent.ledgersync.graph import LedgerGraph

I32 = npt.NDArray[np.int32]
_MAX_I32 = 2**31 - 1
_HALF = 2**31


def offsets(counts: npt.ArrayLike) -> I32:
    """CSR offsets of these counts, as int32 (half the size of int64; checked to fit)."""
    counts = np.asarray(counts)
    total = int(counts.sum(dtype=np.int64))
    if total > _MAX_I32:
        raise StoreError(f"{total} entries: the graph keeps at most {_MAX_I32} of one kind")
    out = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=out[1:])
    return out


def segments(off: npt.NDArray[Any], rows: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Positions of every entry of these CSR rows, row after row."""
    starts = off[rows].astype(np.int64)
    lengths = off[rows + 1].astype(np.int64) - starts
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def distribution_pairs(graph: LedgerGraph, store: LedgerStore, page_size: int) -> tuple[I32, I32]:
    """(transaction, name) pairs sorted by transaction: the peers of our distribution records, and US.

    A distribution record means the transaction went through a finality we took part in, so we are
    one of its parties even when no state or signature names us.
    """
    schema = store.schema
    info = schema.recovery_party_info
    peer_names = {
        r[0]: graph.name_id(r[1]) for r in raw_cursor(store, info.select(info.party_id, info.party_name))
    }
    us = graph.name_id(US)
    txs, names = array("i"), array("i")
    for model in (schema.sender_distr_recs, schema.receiver_distr_recs):
        cursor = raw_cursor(store, model.select(model.transaction_id, model.peer_party_id))
        while rows := cursor.fetchmany(page_size):
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
    """

    def __init__(
        self,
        graph: LedgerGraph,
        expected: int,
        extra: tuple[I32, I32],
        *,
        first: int = 0,
        extend: bool = False,
    ) -> None:
        self.graph, self.expected, self.first, self.extend = graph, expected, first, extend
        self.extra_tx, self.extra_name = extra
        self.count = 0
        self.ref_counts, self.ref_tx, self.ref_out = array("I"), array("i"), array("H")
        self.inputs, self.outputs = array("H"), array("H")
        self.rel_counts, self.rel_out = array("H"), array("H")
        self.party_counts, self.party = array("I"), array("i")

    def add(self, page: Page) -> None:
        graph = self.graph
        names, keys = graph.intern_page(page)
        self.ref_counts.extend(page.ref_counts)
        self.ref_tx.frombytes(graph.resolve(page.ref_hashes).tobytes())
        self.ref_out.extend(page.ref_outs)
        self.inputs.extend(page.input_counts)
        self.outputs.extend(page.output_counts)
        self.rel_counts.extend(page.relevant_counts)
        self.rel_out.extend(page.relevant_outs)
        counts, entries = self._page_parties(page, names, keys)
        self.party_counts.frombytes(counts.astype(np.uint32).tobytes())
        self.party.frombytes(entries.tobytes())
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
        lo, hi = np.searchsorted(self.extra_tx, [start, start + size])
        tx = np.concatenate([tx, self.extra_tx[lo:hi].astype(np.int64) - start])
        entries = np.concatenate([entries, self.extra_name[lo:hi]])
        # Offset so that negative entries order before names within a transaction.
        pairs = np.unique(tx << 32 | (entries.astype(np.int64) + _HALF))
        counts = np.bincount(pairs >> 32, minlength=size)
        return counts, ((pairs & 0xFFFFFFFF) - _HALF).astype(np.int32)

    def _name_late_signers(self) -> tuple[I32, I32]:
        """Party offsets and entries, the signers left unnamed by the pages named now (or dropped)."""
        party = np.frombuffer(self.party, dtype=np.int32)  # writable, and no copy
        counts = np.frombuffer(self.party_counts, dtype=np.uint32)
        off = offsets(counts)
        late = np.flatnonzero(party < 0)
        if not len(late):
            return off, party
        key_name = self.graph.key_names()
        party[late] = key_name[-1 - party[late]]  # -1: a key never seen with a name
        txs = np.unique(np.searchsorted(off, late, side="right") - 1)
        at = segments(off, txs)
        tx_of = np.repeat(txs.astype(np.int64), np.diff(off)[txs])
        pairs = np.sort(tx_of << 32 | (party[at].astype(np.int64) + 1))
        # Sorted pairs land back in their own transaction's segment: segments are contiguous.
        party[at] = ((pairs & 0xFFFFFFFF) - 1).astype(np.int32)
        drop = (pairs & 0xFFFFFFFF) == 0
        drop[1:] |= pairs[1:] == pairs[:-1]
        keep = np.ones(len(party), dtype=bool)
        keep[at[drop]] = False
        fewer = np.bincount(tx_of[drop], minlength=len(counts))
        return offsets(counts.astype(np.int64) - fewer), party[keep]

    def _party_dtype(self) -> np.dtype[Any]:
        """uint16 while the names fit (a network has far fewer than 65,536 parties), else int32."""
        graph = self.graph
        fits = len(graph._names) <= np.iinfo(np.uint16).max + 1
        if fits and (not self.extend or graph._party.dtype == np.uint16):
            return np.dtype(np.uint16)
        return np.dtype(np.int32)

    def finish(self) -> None:
        graph = self.graph
        if self.count != self.expected:
            raise StoreError(f"read {self.count} VERIFIED transactions, expected {self.expected}")
        party_off, party = self._name_late_signers()
        parts: dict[str, npt.NDArray[Any]] = {
            "_ref_off": offsets(np.frombuffer(self.ref_counts, dtype=np.uint32)),
            "_ref_tx": np.frombuffer(self.ref_tx, dtype=np.int32),
            "_ref_out": np.frombuffer(self.ref_out, dtype=np.uint16),
            "_inputs": np.frombuffer(self.inputs, dtype=np.uint16),
            "_outputs": np.frombuffer(self.outputs, dtype=np.uint16),
            "_rel_off": offsets(np.frombuffer(self.rel_counts, dtype=np.uint16)),
            "_rel_out": np.frombuffer(self.rel_out, dtype=np.uint16),
            "_party_off": party_off,
            "_party": party.astype(self._party_dtype(), copy=False),
        }
        for attr, value in parts.items():
            if not self.extend:
                setattr(graph, attr, value)
            elif attr.endswith("_off"):
                old = getattr(graph, attr)
                setattr(graph, attr, np.concatenate([old, value[1:] + old[-1]]))
            else:
                setattr(graph, attr, np.concatenate([getattr(graph, attr), value]))

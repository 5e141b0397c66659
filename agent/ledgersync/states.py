"""What the self-consistency check needs beyond the graph: each transaction's inputs and outputs.

Reconciliation needs the graph's ids, back-chain edges and party sets; only the consistency check
needs which refs are inputs, which output each ref points at, how many outputs a transaction has
and which are relevant to us. At a million transactions those are 11 MB, so the graph does not keep
them: the build collects them for the check that follows it (`LedgerGraph.take_states`), and a
later check (the CheckConsistency operation) reads them again from the store, a page at a time,
for the transactions the graph holds at that moment.

`StateArrays` is a snapshot in the graph's index order: ids and refs as the graph had them, plus the
arrays above. Rows read in id order are put in index order when the graph's order is not the
identity (transactions merged after the build).

Their shapes are the check's: output offsets (a state is the slot out_off[tx] + index, so the
check allocates only a byte a state), and counts and indexes as narrow as their values
(`narrow`). These arrays sit on the agent's start-up peak, beside the whole graph.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import StoreError
from agent.ledger.hashing import SecureHash
from agent.ledgersync.csr import extend_offsets, offsets, segments
from agent.ledgersync.graph_pages import Page, Readers, parsed_pages
from agent.ledgersync.idset import find_ids
from agent.ledgersync.narrow import NarrowInts
from agent.ports.graph_scans import GraphScans

I32 = npt.NDArray[np.int32]
Narrow = npt.NDArray[np.unsignedinteger[Any]]  # uint8, uint16 or uint32: see `narrow`


@dataclass(frozen=True)
class StateArrays:
    """Refs, inputs, outputs and relevant outputs of the graph's first len(ids) transactions."""

    ids: npt.NDArray[Any]  # S32, in index order
    order: I32 | None  # the permutation that sorts ids; None: ids are sorted
    ref_off: I32
    ref_tx: I32  # >= 0 a transaction's index; < 0 -(1 + k) into missing
    missing: list[bytes]
    ref_out: Narrow
    inputs: Narrow  # the first inputs[t] refs of transaction t are inputs, the rest references
    out_off: I32  # transaction t has out_off[t + 1] - out_off[t] outputs
    rel_counts: Narrow
    rel_out: Narrow  # indexes of the outputs one of our keys participates in, rel_counts[t] for t

    @property
    def outputs(self) -> npt.NDArray[np.int32]:
        """Each transaction's number of outputs (a new array)."""
        return np.diff(self.out_off)

    def id_at(self, index: int) -> SecureHash:
        if index < 0:
            return SecureHash(self.missing[-1 - index])
        return SecureHash(self.ids[index : index + 1].tobytes())

    def lookup(self, hashes: bytes) -> npt.NDArray[np.int64]:
        """Indexes of these 32-byte ids, -1 where not in the snapshot."""
        return find_ids(self.ids, self.order, hashes)

    def extended(self, more: StateArrays) -> StateArrays:
        """These states followed by more's (transactions merged since: more has the graph's ids and refs now)."""
        return replace(
            more,
            ref_out=np.concatenate([self.ref_out, more.ref_out]),
            inputs=np.concatenate([self.inputs, more.inputs]),
            out_off=np.concatenate([self.out_off, more.out_off[1:] + self.out_off[-1]]),
            rel_counts=np.concatenate([self.rel_counts, more.rel_counts]),
            rel_out=np.concatenate([self.rel_out, more.rel_out]),
        )


class StateCollector:
    """Accumulates pages' inputs, outputs and relevant outputs in growable compact arrays."""

    def __init__(self) -> None:
        self.ref_out, self.inputs = NarrowInts(), NarrowInts()
        self.out_off = array("i", [0])
        self.rel_counts, self.rel_out = NarrowInts(), NarrowInts()

    def add(self, page: Page) -> None:
        self.ref_out.extend(page.ref_outs)
        self.inputs.extend(page.input_counts)
        extend_offsets(self.out_off, page.output_counts)
        self.rel_counts.extend(page.relevant_counts)
        self.rel_out.extend(page.relevant_outs)

    def __len__(self) -> int:
        return len(self.out_off) - 1

    def states(
        self, ids: npt.NDArray[Any], order: I32 | None, ref_off: I32, ref_tx: I32, missing: list[bytes]
    ) -> StateArrays:
        """The collected arrays, in the order read, over these ids and refs."""
        return StateArrays(
            ids=ids,
            order=order,
            ref_off=ref_off,
            ref_tx=ref_tx,
            missing=missing,
            ref_out=self.ref_out.numpy(),
            inputs=self.inputs.numpy(),
            out_off=np.frombuffer(self.out_off, dtype=np.int32),
            rel_counts=self.rel_counts.numpy(),
            rel_out=self.rel_out.numpy(),
        )


def read_states(
    store: GraphScans,
    our_keys: frozenset[bytes],
    ids: npt.NDArray[Any],
    order: I32 | None,
    ref_off: I32,
    ref_tx: I32,
    missing: list[bytes],
    *,
    page_size: int,
    pool_size: int,
    readers: Readers = "thread",
) -> StateArrays:
    """The states of the graph's transactions: its ids, order, refs and missing ids as given."""
    collector = StateCollector()
    for page in parsed_pages(
        store, lambda h: find_ids(ids, order, h), our_keys, page_size, pool_size, readers
    ):
        rows = np.arange(len(collector), len(collector) + len(page.ref_counts))
        if rows[-1:] >= len(ids):
            raise StoreError(f"read more VERIFIED transactions than the {len(ids)} expected")
        at = rows if order is None else order[rows]  # row r of the read is index order[r]
        if not np.array_equal(ref_off[at + 1] - ref_off[at], np.frombuffer(page.ref_counts, dtype=np.uint32)):
            raise StoreError("the ledger's transactions changed under the consistency check's read")
        collector.add(page)
    if len(collector) != len(ids):
        raise StoreError(f"read {len(collector)} VERIFIED transactions, expected {len(ids)}")
    read = collector.states(ids, order, ref_off, ref_tx, missing)
    return read if order is None else _in_index_order(read, order)


def _in_index_order(read: StateArrays, order: I32) -> StateArrays:
    """Rows read in id order (row r is index order[r]) put in index order."""
    ref_out = np.empty_like(read.ref_out)
    ref_out[segments(read.ref_off, order)] = read.ref_out
    inputs, rel_counts = np.empty_like(read.inputs), np.empty_like(read.rel_counts)
    inputs[order], rel_counts[order] = read.inputs, read.rel_counts
    outputs = np.empty(len(order), dtype=np.int64)
    outputs[order] = read.outputs
    rel_out = np.empty_like(read.rel_out)
    rel_out[segments(offsets(rel_counts), order)] = read.rel_out
    return replace(
        read, ref_out=ref_out, inputs=inputs, out_off=offsets(outputs), rel_counts=rel_counts, rel_out=rel_out
    )

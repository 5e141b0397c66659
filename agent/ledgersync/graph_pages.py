"""Reading the ledger for the graph: pages of transaction blobs, parsed into compact arrays by readers."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Literal

import cbor2
import numpy as np
import numpy.typing as npt

from agent.errors import StoreError
from agent.ports.graph_scans import GraphScans

__all__ = [
    "MAX_OUTPUTS",
    "US",
    "Page",
    "Readers",
    "blob_pages",
    "parse_page",
    "parsed_pages",
]

MAX_OUTPUTS = 65_535  # output indexes are kept as uint16
# The party entry for this node itself. Not a name anyone can have (an X500 name is never empty):
# it marks the transactions we are involved in even where our name appears nowhere in them.
US = ""
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
    """Parse node_transactions.transaction_value blobs (already verified, so no canonical re-check).

    A transaction one of our keys participates in or signs also gets the party US.
    """
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
        signed = False
        for _, _, signers, _ in commands:
            for key in signers:
                key_id = keys.setdefault(key, len(keys))
                known = key_names.get(key_id)
                seen.add(-1 - key_id if known is None else known)
                signed = signed or key in our_keys
        if relevant or signed:
            seen.add(names.setdefault(US, len(names)))
        parties.extend(seen)
        party_counts.append(len(seen))
    return Page(
        ref_counts, input_counts, bytes(ref_hashes), ref_outs, output_counts, relevant_counts,
        relevant_outs, party_counts, parties, list(names), list(keys), list(key_names.items()),
    )  # fmt: skip


Lookup = Callable[[bytes], npt.NDArray[np.int64]]


def parsed_pages(
    store: GraphScans,
    lookup: Lookup,
    our_keys: frozenset[bytes],
    page_size: int,
    pool_size: int,
    readers: Readers,
) -> Iterator[Page]:
    """The transactions whose ids lookup finds, parsed a page at a time, in id order."""
    pages = blob_pages(store, lookup, page_size)
    if pool_size <= 1:
        yield from (parse_page(blobs, our_keys) for blobs in pages)
        return
    pool: Executor = (
        ThreadPoolExecutor(pool_size)
        if readers == "thread"
        else ProcessPoolExecutor(pool_size, mp_context=get_context("spawn"))
    )
    # Processes parse in parallel: a page waiting beyond each keeps them all busy. Threads parse one
    # page at a time under the GIL, so two in flight keep reading and parsing overlapped; each page
    # more would only hold its blobs (~0.3 MB at 100 transactions a page) on the agent's peak.
    depth = pool_size if readers == "process" else min(pool_size, 2)
    with pool:
        queued: list[Future[Page]] = []
        for blobs in pages:
            queued.append(pool.submit(parse_page, blobs, our_keys))
            if len(queued) > depth:
                yield queued.pop(0).result()
        for future in queued:
            yield future.result()


def blob_pages(store: GraphScans, lookup: Lookup, page_size: int) -> Iterator[list[bytes]]:
    """transaction_value of the ids read in the first pass (rows VERIFIED since then are left out)."""
    for rows in store.verified_blob_pages(page_size):
        wanted = lookup(bytes.fromhex("".join(r[0] for r in rows))) >= 0
        yield [bytes(r[1]) for r, keep in zip(rows, wanted.tolist(), strict=True) if keep]

"""The set for a pair: what two parties reconcile (docs/ledgersync.md, "What is reconciled")."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from agent.ledgersync.graph import LedgerGraph, raw_cursor
from agent.store.ledger_store import LedgerStore


def pair_set(graph: LedgerGraph, me: str, other: str, delivered: Iterable[bytes] = ()) -> set[bytes]:
    """Ids (32 raw bytes) of the transactions both parties are involved in, plus their back-chains.

    `delivered`: ids we were a finality party to (`distributed_ids`). The graph names the peers of
    our distribution records but not us, so an observer would otherwise not count itself involved.
    Restricted to the ids in the graph: an ancestor we never recorded is not ours to offer.
    """
    involved = graph.involving(me)  # first: it merges the transactions buffered since the last read
    raw = b"".join(delivered)
    extra = graph.lookup(raw) if raw else np.empty(0, dtype=np.int64)
    mine = np.union1d(involved, extra[extra >= 0].astype(np.int32))
    both = np.intersect1d(mine, graph.involving(other))
    shared = graph.ids(both.tolist())
    ancestors = graph.backchain(shared)
    candidates = b"".join(bytes(a) for a in ancestors)
    present = graph.lookup(candidates) >= 0 if candidates else np.empty(0, dtype=bool)
    out = {bytes(tx_id) for tx_id in shared}
    out.update(candidates[32 * i : 32 * i + 32] for i in np.flatnonzero(present).tolist())
    return out


def distributed_ids(store: LedgerStore, page_size: int = 10_000) -> set[bytes]:
    """Ids of the transactions with a sender or receiver distribution record in our store."""
    out: set[bytes] = set()
    for model in (store.schema.sender_distr_recs, store.schema.receiver_distr_recs):
        cursor = raw_cursor(store, model.select(model.transaction_id).distinct())
        while rows := cursor.fetchmany(page_size):
            out.update(bytes.fromhex(r[0]) for r in rows)
    return out

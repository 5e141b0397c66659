"""The set for a pair: what two parties reconcile (docs/ledgersync.md, "What is reconciled")."""

from __future__ import annotations

import numpy as np

from agent.ledgersync.graph import LedgerGraph
from agent.ledgersync.idset import IdSet


def pair_set(graph: LedgerGraph, me: str, other: str) -> IdSet:
    """Ids of the transactions both parties are involved in, plus their back-chains, as an IdSet.

    We are involved in what names us and in what the graph marks as ours (our keys, or a
    distribution record: an observer is named nowhere in the transaction). Restricted to the ids in
    the graph: an ancestor we never recorded is not ours to offer. All in index space (a mask over
    the graph), so no Python object per id is made even when the set is the whole ledger.
    """
    mine = np.union1d(graph.involving(me), graph.involving_us())
    both = np.intersect1d(mine, graph.involving(other), assume_unique=True)
    del mine
    selected = graph.backchain_mask(both)
    selected[both] = True
    return IdSet(graph.sorted_ids(selected))

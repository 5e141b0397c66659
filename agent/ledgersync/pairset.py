"""The set for a pair: what two parties reconcile (docs/ledgersync.md, "What is reconciled")."""

from __future__ import annotations

from agent.ledgersync.graph import LedgerGraph, release_freed_memory
from agent.ledgersync.idset import IdSet


def pair_set(graph: LedgerGraph, me: str, other: str) -> IdSet:
    """Ids of the transactions both parties are involved in, plus their back-chains, as an IdSet.

    We are involved in what names us and in what the graph marks as ours (our keys, or a
    distribution record: an observer is named nowhere in the transaction). Restricted to the ids in
    the graph: an ancestor we never recorded is not ours to offer. Computed on masks over the graph
    (1 byte a transaction) and returned as positions in the graph's own ids (4 bytes an id), so a
    set of the whole ledger costs a few MB, not one Python object per id.
    """
    both = graph.involving_mask(me)
    both |= graph.us_mask()
    both &= graph.involving_mask(other)
    selected = graph.with_backchains(both)
    ids = graph.id_set(selected)
    del selected, both
    release_freed_memory()  # the masks and the walk's frontiers: glibc would keep them
    return ids

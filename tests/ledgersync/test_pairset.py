"""The set for a pair, as an IdSet, against its definition evaluated transaction by transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.ledger.hashing import SecureHash
from agent.ledgersync.graph import LedgerGraph
from agent.ledgersync.idset import IdSet
from agent.ledgersync.pairset import pair_set
from agent.store.ledger_store import LedgerStore
from bench.fixture import NOTARY_NAME, fixture_store_keys, generate_ledger, load, party_name

PARTIES = [party_name(i) for i in range(5)] + [NOTARY_NAME, "O=Nobody, L=Oslo, C=NO"]


def by_definition(graph: LedgerGraph, me: str, other: str) -> set[bytes]:
    """Both involved (us by name, or as the graph's US), plus every recorded ancestor."""
    every = graph.ids(range(graph.size))
    ours = set(graph.ids(graph.involving_us()))
    both = [t for t in every if (me in graph.parties(t) or t in ours) and other in graph.parties(t)]
    chain = {t for t in graph.backchain(both) if graph.contains(t)}
    return {bytes(t) for t in (*both, *chain)}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerGraph]:
    path = tmp_path_factory.mktemp("pairset") / "ledger.db"
    store = LedgerStore(f"sqlite:///{path}", our_keys=fixture_store_keys(parties=5))
    load(store, 400, parties=5)
    yield LedgerGraph.build(store.graph_scans, page_size=50, pool_size=1, readers="thread")
    store.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(me=st.sampled_from(PARTIES), other=st.sampled_from(PARTIES))
def test_the_pair_set_is_its_definition(graph: LedgerGraph, me: str, other: str) -> None:
    got = pair_set(graph, me, other)
    assert isinstance(got, IdSet)
    assert list(got) == sorted(by_definition(graph, me, other))


def test_a_party_in_every_transaction_shares_the_graphs_ids(graph: LedgerGraph) -> None:
    # party 0 is us (our key): its set with itself is every transaction it is in, and their chains.
    whole = pair_set(graph, party_name(0), party_name(0))
    assert len(whole) == len(by_definition(graph, party_name(0), party_name(0)))


def test_sorted_after_transactions_added_out_of_id_order(tmp_path: Path) -> None:
    store = LedgerStore(f"sqlite:///{tmp_path / 'late.db'}", our_keys=fixture_store_keys(parties=3))
    txs = list(generate_ledger(60, parties=3))
    for stx in txs[:30]:
        store.transactions.record_transaction(stx)
    graph = LedgerGraph.build(store.graph_scans, page_size=7, pool_size=1, readers="thread")
    graph.attach(store.transactions, store.distribution)
    for stx in txs[30:]:
        store.transactions.record_transaction(stx)
    got = pair_set(graph, party_name(0), party_name(1))
    assert list(got) == sorted(by_definition(graph, party_name(0), party_name(1)))
    assert {SecureHash(i) for i in got} <= set(graph.ids(range(graph.size)))


def test_the_set_shares_the_graphs_ids(graph: LedgerGraph) -> None:
    every = graph.id_set(np.ones(graph.size, dtype=bool))
    assert every.ids is graph.arrays()["ids"]  # the whole ledger: not even positions are kept
    assert list(every) == sorted(bytes(t) for t in graph.ids(range(graph.size)))
    some = graph.id_set(np.arange(graph.size) % 3 == 0)
    assert some._base is graph.arrays()["ids"]
    assert list(some) == sorted(bytes(t) for t in graph.ids(range(0, graph.size, 3)))

"""The consistency check read a chunk at a time finds what one pass over everything finds.

The reference is the check as it was before it was chunked (int64 keys over all refs at once, one
sort): the same errors, in the same order, with the same cap, on ledgers damaged at random.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.ledger.vault import StateStatus
from agent.ledgersync.consistency import _Errors, _state_key, _vault_pages, check_states
from agent.ledgersync.csr import offsets, owners
from agent.ledgersync.graph import LedgerGraph
from agent.ledgersync.states import StateArrays
from agent.store.ledger_store import LedgerStore
from bench.fixture import fixture_store_keys, load


def reference_check(graph: StateArrays, store: LedgerStore, max_errors: int) -> tuple[list[str], int]:
    """The unchunked check (commit 0b0c8ea), for comparison only: it needs ~120 MB more at 1M."""
    errors = _Errors(max_errors)
    n = len(graph.ids)
    ref_off = graph.ref_off
    ref_tx = graph.ref_tx.astype(np.int64)
    ref_out = graph.ref_out.astype(np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ref_off))
    is_input = (np.arange(len(ref_tx)) - ref_off[owner]) < graph.inputs[owner]

    def ref(tx: int, out: int) -> str:
        return f"{graph.id_at(tx)}({out})"

    def kind(pos: int) -> str:
        return "input" if is_input[pos] else "reference"

    for pos in np.flatnonzero(ref_tx < 0).tolist():
        errors.add(
            f"transaction {graph.id_at(int(owner[pos]))}: {kind(pos)} {ref(int(ref_tx[pos]), int(ref_out[pos]))}"
            " refers to a transaction that is not recorded"
        )
    known = ref_tx >= 0
    beyond = np.zeros(len(ref_tx), dtype=bool)
    beyond[known] = ref_out[known] >= graph.outputs[ref_tx[known]]
    for pos in np.flatnonzero(beyond).tolist():
        errors.add(
            f"transaction {graph.id_at(int(owner[pos]))}: {kind(pos)} {ref(int(ref_tx[pos]), int(ref_out[pos]))}"
            " refers to an output that transaction does not have"
        )
    keys = _state_key(ref_tx[is_input], ref_out[is_input])
    consumers = owner[is_input]
    order = np.argsort(keys, kind="stable")
    keys, consumers = keys[order], consumers[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(keys)))
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        state = ref(int(keys[start] >> 16), int(keys[start] & 0xFFFF))
        by = " and ".join(str(graph.id_at(int(c))) for c in consumers[start : start + size])
        errors.add(f"state {state} is consumed twice: by {by}")
    consumed, consumer = keys[starts], consumers[starts]
    present = array("q")
    for hex_ids, outs, statuses in _vault_pages(store.graph_scans, 100):
        tx = graph.lookup(bytes.fromhex("".join(hex_ids)))
        vault_keys = _state_key(tx, outs)
        present.extend(vault_keys[tx >= 0].tolist())
        at = np.minimum(np.searchsorted(consumed, vault_keys), max(len(consumed) - 1, 0))
        in_graph = (consumed[at] == vault_keys) if len(consumed) else np.zeros(len(tx), dtype=bool)
        vault_consumed = statuses == StateStatus.CONSUMED
        for i in range(len(tx)):
            state = f"{hex_ids[i].upper()}({outs[i]})"
            if tx[i] < 0:
                errors.add(f"vault state {state} belongs to no VERIFIED transaction")
            elif outs[i] >= graph.outputs[tx[i]]:
                errors.add(f"vault state {state}: transaction {hex_ids[i].upper()} has no such output")
            elif vault_consumed[i] and not in_graph[i]:
                errors.add(f"vault state {state} is CONSUMED but no VERIFIED transaction consumes it")
            elif in_graph[i] and not vault_consumed[i]:
                errors.add(
                    f"vault state {state} is UNCONSUMED but transaction {graph.id_at(int(consumer[at[i]]))}"
                    " consumes it"
                )
    rel_tx = np.repeat(np.arange(n, dtype=np.int64), graph.rel_counts)
    relevant = _state_key(rel_tx, graph.rel_out.astype(np.int64))
    absent = ~np.isin(relevant, np.frombuffer(present, dtype=np.int64) if present else np.empty(0, np.int64))
    for pos in np.flatnonzero(absent).tolist():
        tx_id = graph.id_at(int(rel_tx[pos]))
        errors.add(
            f"transaction {tx_id}: relevant output {tx_id}({int(relevant[pos] & 0xFFFF)}) is not in the vault"
        )
    return errors.lines, errors.count


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerStore]:
    path: Path = tmp_path_factory.mktemp("consistency") / "fixture.db"
    store = LedgerStore(f"sqlite:///{path}", our_keys=fixture_store_keys())
    load(store, 300)
    yield store
    store.close()


@pytest.fixture(scope="module")
def graph(store: LedgerStore) -> StateArrays:
    """The states the check reads, as read again from the store (not those the build kept)."""
    built = LedgerGraph.build(store.graph_scans, page_size=50, pool_size=1, readers="thread")
    return built.read_states(store.graph_scans, page_size=50)


# A ref turned into another ref's state (a double spend when both are inputs), into an output its
# transaction does not have, or into a transaction that is not recorded.
edit = st.tuples(
    st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(["copy", "beyond", "missing", "relevant"])
)
# A vault row deleted, its status flipped, or a copy of it for an output or transaction that is not.
vault_edit = st.tuples(st.integers(0, 10**6), st.sampled_from(["delete", "flip", "beyond", "stranger"]))


def damage(graph: StateArrays, edits: list[tuple[int, int, str]]) -> None:
    ref_tx, ref_out, outputs = graph.ref_tx, graph.ref_out, graph.outputs
    for drawn_pos, drawn_other, how in edits:
        pos, other = drawn_pos % len(ref_tx), drawn_other % len(ref_tx)
        if how == "copy":
            ref_tx[pos], ref_out[pos] = ref_tx[other], ref_out[other]
        elif how == "beyond" and ref_tx[other] >= 0:
            ref_tx[pos] = ref_tx[other]
            ref_out[pos] = int(outputs[ref_tx[other]]) + other % 3
        elif how == "relevant":  # a relevant output its transaction does not have
            at = drawn_pos % len(graph.rel_out)
            tx = int(owners(offsets(graph.rel_counts), [at])[0])
            graph.rel_out[at] = int(outputs[tx]) + other % 3
        elif how == "missing":
            graph.missing.append(bytes([other % 251]) * 32)
            ref_tx[pos], ref_out[pos] = -len(graph.missing) + other % len(graph.missing), other % 4


def damage_vault(store: LedgerStore, graph: StateArrays, edits: list[tuple[int, str]]) -> None:
    vs = store.schema.vault_states
    rows: list[Any] = list(vs.select(vs.transaction_id, vs.output_index, vs.state_status).tuples())
    for at, how in edits:
        tx_id, out, status = rows[at % len(rows)]
        where = (vs.transaction_id == tx_id) & (vs.output_index == out)
        if how == "delete":
            vs.delete().where(where).execute()
        elif how in ("beyond", "stranger"):
            row: dict[str, Any] | None = vs.select().where(where).dicts().get_or_none()
            if row is None:
                continue
            if how == "beyond":
                row["output_index"] = int(graph.outputs[graph.lookup(bytes.fromhex(tx_id))[0]]) + at % 3
            else:
                row["transaction_id"] = f"{at:064X}"
            vs.insert(row).on_conflict_ignore().execute()
        else:
            flipped = StateStatus.UNCONSUMED if status == StateStatus.CONSUMED else StateStatus.CONSUMED
            vs.update(state_status=flipped).where(where).execute()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(edit, max_size=12),
    vault_edits=st.lists(vault_edit, max_size=6),
    chunk=st.integers(1, 300),
    max_errors=st.sampled_from([1, 4, 1000]),
)
def test_chunked_check_finds_what_one_pass_finds(
    store: LedgerStore,
    graph: StateArrays,
    edits: list[tuple[int, int, str]],
    vault_edits: list[tuple[int, str]],
    chunk: int,
    max_errors: int,
) -> None:
    saved: tuple[npt.NDArray[np.int32], npt.NDArray[np.uint16], npt.NDArray[np.uint16], list[bytes]]
    saved = graph.ref_tx.copy(), graph.ref_out.copy(), graph.rel_out.copy(), list(graph.missing)
    try:
        damage(graph, edits)
        with store.database.atomic() as transaction:
            damage_vault(store, graph, vault_edits)
            chunked = check_states(graph, store.graph_scans, page_size=7, max_errors=max_errors, chunk=chunk)
            whole = check_states(graph, store.graph_scans, page_size=1000, max_errors=max_errors, chunk=10**7)
            expected = reference_check(graph, store, max_errors)
            transaction.rollback()
    finally:
        graph.ref_tx[:], graph.ref_out[:], graph.rel_out[:], graph.missing[:] = saved
    assert (chunked.errors, chunked.error_count) == (whole.errors, whole.error_count) == expected
    assert chunked.is_self_consistent == (expected[1] == 0)


def test_an_undamaged_ledger_is_consistent_whatever_the_chunk(store: LedgerStore, graph: StateArrays) -> None:
    assert reference_check(graph, store, 1000) == ([], 0)
    for chunk in (1, 2, 1000):
        assert check_states(graph, store.graph_scans, chunk=chunk).is_self_consistent


def test_chunk_must_be_positive(store: LedgerStore, graph: StateArrays) -> None:
    with pytest.raises(ValueError, match="chunk must be positive"):
        check_states(graph, store.graph_scans, chunk=0)

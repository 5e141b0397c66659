"""The ledger's self-consistency check over the graph and the vault (JMX IsSelfConsistent, Errors).

Consistent means: every input and reference of a VERIFIED transaction resolves to a recorded
transaction and an output it has; no state is consumed twice; the vault's consumed/unconsumed
agrees with the graph; every relevant output of a VERIFIED transaction is in the vault. Each error
names the transaction (upper-case hex, as SecureHash prints) and the state ref "TXID(index)".
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from agent.errors import LedgerGraphNotReadyException
from agent.ledger.vault import StateStatus
from agent.ledgersync.graph import LedgerGraph, raw_cursor, release_freed_memory
from agent.store.ledger_store import LedgerStore

MAX_ERRORS = 1000
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ConsistencyReport:
    """IsInitialized, IsSelfConsistent and Errors (the first MAX_ERRORS; error_count has them all)."""

    is_initialized: bool
    is_self_consistent: bool
    errors: list[str] = field(default_factory=list)
    error_count: int = 0


class _Errors:
    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.lines = limit, 0, list[str]()

    def add(self, line: str) -> None:
        self.count += 1
        if len(self.lines) < self.limit:
            self.lines.append(line)


def _state_key(tx: npt.NDArray[np.int64], out: npt.NDArray[np.int64]) -> I64:
    # Output indexes fit 16 bits (graph.MAX_OUTPUTS); missing transactions (< 0) keep distinct keys.
    return (tx << 16) | out


def check_consistency(
    graph: LedgerGraph, store: LedgerStore, *, page_size: int = 10_000, max_errors: int = MAX_ERRORS
) -> ConsistencyReport:
    """Check the graph against itself and the store's vault."""
    if not graph.is_initialized:
        return ConsistencyReport(False, False, ["the ledger graph is not initialised"], 1)
    a = graph.arrays()
    errors = _Errors(max_errors)
    n = len(a["ids"])
    ref_off = a["ref_off"]
    ref_tx = a["ref_tx"].astype(np.int64)
    ref_out = a["ref_out"].astype(np.int64)
    owner = np.repeat(np.arange(n, dtype=np.int64), np.diff(ref_off))
    is_input = (np.arange(len(ref_tx)) - ref_off[owner]) < a["inputs"][owner]

    def ref(tx: int, out: int) -> str:
        return f"{graph.id_at(tx)}({out})"

    def kind(pos: int) -> str:
        return "input" if is_input[pos] else "reference"

    # Refs to transactions that are not recorded, or to outputs they do not have.
    for pos in np.flatnonzero(ref_tx < 0).tolist():
        errors.add(
            f"transaction {graph.id_at(int(owner[pos]))}: {kind(pos)} {ref(int(ref_tx[pos]), int(ref_out[pos]))}"
            " refers to a transaction that is not recorded"
        )
    known = ref_tx >= 0
    beyond = np.zeros(len(ref_tx), dtype=bool)
    beyond[known] = ref_out[known] >= a["outputs"][ref_tx[known]]
    for pos in np.flatnonzero(beyond).tolist():
        errors.add(
            f"transaction {graph.id_at(int(owner[pos]))}: {kind(pos)} {ref(int(ref_tx[pos]), int(ref_out[pos]))}"
            " refers to an output that transaction does not have"
        )

    # No state consumed twice.
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

    # The vault against the graph.
    present = array("q")
    for hex_ids, outs, statuses in _vault_pages(store, page_size):
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
            elif outs[i] >= a["outputs"][tx[i]]:
                errors.add(f"vault state {state}: transaction {hex_ids[i].upper()} has no such output")
            elif vault_consumed[i] and not in_graph[i]:
                errors.add(f"vault state {state} is CONSUMED but no VERIFIED transaction consumes it")
            elif in_graph[i] and not vault_consumed[i]:
                errors.add(
                    f"vault state {state} is UNCONSUMED but transaction {graph.id_at(int(consumer[at[i]]))}"
                    " consumes it"
                )

    # Relevant outputs in the vault.
    rel_off = a["rel_off"]
    rel_tx = np.repeat(np.arange(n, dtype=np.int64), np.diff(rel_off))
    relevant = _state_key(rel_tx, a["rel_out"].astype(np.int64))
    absent = ~np.isin(relevant, np.frombuffer(present, dtype=np.int64) if present else np.empty(0, np.int64))
    for pos in np.flatnonzero(absent).tolist():
        tx_id = graph.id_at(int(rel_tx[pos]))
        errors.add(
            f"transaction {tx_id}: relevant output {tx_id}({int(relevant[pos] & 0xFFFF)}) is not in the vault"
        )

    release_freed_memory()
    return ConsistencyReport(True, errors.count == 0, errors.lines, errors.count)


def _vault_pages(
    store: LedgerStore, page_size: int
) -> Iterator[tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    vs = store.schema.vault_states
    cursor = raw_cursor(store, vs.select(vs.transaction_id, vs.output_index, vs.state_status))
    while rows := cursor.fetchmany(page_size):
        yield (
            [r[0] for r in rows],
            np.array([r[1] for r in rows], dtype=np.int64),
            np.array([r[2] for r in rows], dtype=np.int64),
        )


def require_ready(report: ConsistencyReport, *, shown: int = 3) -> None:
    """Raise LedgerGraphNotReadyException unless the graph is initialised and the ledger consistent."""
    if not report.is_initialized:
        why = f" ({report.errors[0]})" if report.errors else ""
        raise LedgerGraphNotReadyException(f"the ledger graph is not initialised yet{why}")
    if not report.is_self_consistent:
        first = "; ".join(report.errors[:shown])
        more = report.error_count - min(shown, len(report.errors))
        tail = f" (and {more} more)" if more > 0 else ""
        raise LedgerGraphNotReadyException(
            f"the ledger is not self-consistent, {report.error_count} error(s): {first}{tail}"
        )

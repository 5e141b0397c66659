"""The ledger's self-consistency check over the graph and the vault (JMX IsSelfConsistent, Errors).

Consistent means: every input and reference of a VERIFIED transaction resolves to a recorded
transaction and an output it has; no state is consumed twice; the vault's consumed/unconsumed
agrees with the graph; every relevant output of a VERIFIED transaction is in the vault. Each error
names the transaction (upper-case hex, as SecureHash prints) and the state ref "TXID(index)".

It runs once after the build, so it must fit in what the build left: a state that exists is a slot,
out_off[tx] + out, with one byte for how often it is consumed and whether the vault has it, and
refs are read a chunk at a time. Int64 state keys, owners and sort orders over all 1.18M refs at
once took ~120 MB more than the graph at 1M transactions. Refs that fit no slot (to a transaction
not recorded, or to an output it does not have) are errors, normally none, and are kept aside.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import LedgerGraphNotReadyException
from agent.ledger.vault import StateStatus
from agent.ledgersync.csr import owners
from agent.ledgersync.graph import LedgerGraph, release_freed_memory
from agent.ledgersync.states import StateArrays
from agent.ports.graph_scans import GraphScans

MAX_ERRORS = 1000
IN_VAULT, CONSUMED = 1, 2  # a slot's byte: IN_VAULT | CONSUMED * times consumed (0, 1, 2 for more)
CHUNK = 1 << 15  # refs (or transactions, for relevant outputs) at a time: about 2 MB of temporaries
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


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

    @property
    def room(self) -> int:
        return self.limit - len(self.lines)

    def add(self, line: str) -> bool:
        """Count it; keep it while there is room (True if kept)."""
        self.count += 1
        if len(self.lines) < self.limit:
            self.lines.append(line)
            return True
        return False


def _state_key(tx: npt.NDArray[np.integer[Any]], out: npt.NDArray[np.integer[Any]]) -> I64:
    # Output indexes fit 16 bits (graph.MAX_OUTPUTS); missing transactions (< 0) keep distinct keys.
    return (tx.astype(np.int64) << 16) | out.astype(np.int64)


def check_consistency(
    graph: LedgerGraph,
    store: GraphScans,
    *,
    page_size: int = 10_000,
    pool_size: int = 1,
    max_errors: int = MAX_ERRORS,
    chunk: int = CHUNK,
) -> ConsistencyReport:
    """Check the graph's transactions against themselves and the store's vault.

    Right after the build, on the inputs and outputs the build collected; later, on those read again
    from the store (page_size transactions a page, parsed by pool_size readers).
    """
    if not graph.is_initialized:
        return ConsistencyReport(False, False, ["the ledger graph is not initialised"], 1)
    states = graph.take_states() or graph.read_states(store, page_size=page_size, pool_size=pool_size)
    with store.scanning():
        return check_states(states, store, page_size=page_size, max_errors=max_errors, chunk=chunk)


def check_states(
    states: StateArrays,
    store: GraphScans,
    *,
    page_size: int = 10_000,
    max_errors: int = MAX_ERRORS,
    chunk: int = CHUNK,
) -> ConsistencyReport:
    """Check these transactions against themselves and the store's vault (read page_size rows a page)."""
    errors = _Errors(max_errors)
    check = _Check(states, errors, chunk)
    check.count_consumers()
    check.report_odd_refs()
    check.report_consumed_twice()
    release_freed_memory()
    check.check_vault(store, page_size)
    check.report_relevant_not_in_vault()
    del check
    release_freed_memory()
    return ConsistencyReport(True, errors.count == 0, errors.lines, errors.count)


class _Check:
    def __init__(self, states: StateArrays, errors: _Errors, chunk: int) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, not {chunk}")
        self.states, self.errors, self.chunk = states, errors, chunk
        self.ref_off, self.ref_tx, self.ref_out = states.ref_off, states.ref_tx, states.ref_out
        self.inputs, self.out_off = states.inputs, states.out_off
        self.rel_counts, self.rel_out = states.rel_counts, states.rel_out
        # Per slot: IN_VAULT, plus CONSUMED times how often it is consumed (0, 1, or 2 for more).
        self.slot = np.zeros(int(self.out_off[-1]), dtype=np.uint8)
        self.odd = np.empty(0, dtype=np.int64)  # positions of the refs that fit no slot
        self.vault_odd: set[int] = set()  # state keys of vault rows to outputs that do not exist

    def ref(self, tx: int, out: int) -> str:
        return f"{self.states.id_at(tx)}({out})"

    def slots(self, tx: I64, out: I64) -> I64:
        found: I64 = np.add(self.out_off[tx], out, dtype=np.int64)
        return found

    def has_output(self, tx: I64, out: I64) -> Bools:
        """Whether each (recorded) transaction has that output."""
        fits: Bools = out < self.out_off[tx + 1] - self.out_off[tx]
        return fits

    def input_chunks(self) -> Iterator[tuple[int, I64, Bools, I64, I64, Bools]]:
        """Per chunk of refs: first position, owners, is an input, targets, outputs, fits a slot."""
        for lo in range(0, len(self.ref_tx), self.chunk):
            hi = min(lo + self.chunk, len(self.ref_tx))
            positions = np.arange(lo, hi, dtype=np.int64)
            owner = owners(self.ref_off, positions)
            is_input = positions - self.ref_off[owner] < self.inputs[owner]
            del positions
            tx = self.ref_tx[lo:hi].astype(np.int64)
            out = self.ref_out[lo:hi].astype(np.int64)
            fits = tx >= 0
            fits[fits] = self.has_output(tx[fits], out[fits])
            yield lo, owner, is_input, tx, out, fits

    def count_consumers(self) -> None:
        odd = []
        for lo, _, is_input, tx, out, fits in self.input_chunks():
            odd.append(np.flatnonzero(~fits) + lo)
            used = is_input & fits
            slots, times = np.unique(self.slots(tx[used], out[used]), return_counts=True)
            state = self.slot[slots]
            self.slot[slots] = (state & IN_VAULT) | np.minimum(state // CONSUMED + times, 2) * CONSUMED
        self.odd = np.concatenate(odd) if odd else self.odd

    def consumed_twice(self) -> I64:
        """The slots consumed more than once (a chunk at a time: no bool per slot beside the slots)."""
        found = [
            np.flatnonzero(self.slot[lo : lo + self.chunk] >= 2 * CONSUMED) + lo
            for lo in range(0, len(self.slot), self.chunk)
        ]
        return np.concatenate(found).astype(np.int64) if found else np.empty(0, dtype=np.int64)

    def consumers_of(self, wanted: I64) -> dict[int, list[int]]:
        """The transactions consuming each of these slots (sorted), in ref order: one more pass."""
        found: dict[int, list[int]] = {}
        if not len(wanted):
            return found
        for _, owner, is_input, tx, out, fits in self.input_chunks():
            used = is_input & fits
            slots = self.slots(tx[used], out[used])
            hit = np.isin(slots, wanted)
            for slot, consumer in zip(slots[hit].tolist(), owner[used][hit].tolist(), strict=True):
                found.setdefault(slot, []).append(consumer)
        return found

    def report_odd_refs(self) -> None:
        """Refs to transactions that are not recorded, then refs to outputs they do not have."""
        owner = owners(self.ref_off, self.odd)
        is_input = self.odd - self.ref_off[owner] < self.inputs[owner]
        tx, out = self.ref_tx[self.odd], self.ref_out[self.odd]
        for missing, what in ((True, "a transaction that is not recorded"), (False, "an output that transaction does not have")):  # fmt: skip
            for i in np.flatnonzero((tx < 0) == missing).tolist():
                kind = "input" if is_input[i] else "reference"
                state = self.ref(int(tx[i]), int(out[i]))
                self.errors.add(
                    f"transaction {self.states.id_at(int(owner[i]))}: {kind} {state} refers to {what}"
                )

    def report_consumed_twice(self) -> None:
        """In state key order, odd refs' states and slots together, as one sort of all keys gave."""
        owner = owners(self.ref_off, self.odd)
        inputs = self.odd - self.ref_off[owner] < self.inputs[owner]
        odd_keys = _state_key(self.ref_tx[self.odd[inputs]], self.ref_out[self.odd[inputs]])
        odd_owner = owner[inputs]
        order = np.argsort(odd_keys, kind="stable")
        odd_keys, odd_owner = odd_keys[order], odd_owner[order]
        starts = np.flatnonzero(np.append(True, odd_keys[1:] != odd_keys[:-1]))
        ends = np.append(starts[1:], len(odd_keys))
        twice = ends - starts > 1
        odd_groups = {
            int(odd_keys[s]): odd_owner[s:e].tolist() for s, e in zip(starts[twice], ends[twice], strict=True)
        }
        slots = self.consumed_twice()
        tx = owners(self.out_off, slots)
        keys = _state_key(tx, slots - self.out_off[tx])
        in_order = sorted([*odd_groups, *keys.tolist()])
        self.errors.count += max(len(in_order) - self.errors.room, 0)
        shown = in_order[: self.errors.room]
        slot_of = dict(zip(keys.tolist(), slots.tolist(), strict=True))
        consumers = self.consumers_of(
            np.array(sorted(slot_of[k] for k in shown if k in slot_of), dtype=np.int64)
        )
        for key in shown:
            by = odd_groups[key] if key in odd_groups else consumers[slot_of[key]]
            state = self.ref(key >> 16, key & 0xFFFF)
            self.errors.add(
                f"state {state} is consumed twice: by {' and '.join(str(self.states.id_at(c)) for c in by)}"
            )

    def check_vault(self, store: GraphScans, page_size: int) -> None:
        later: list[tuple[int, int, str]] = []  # (line, slot, state): its consumer is found after
        for hex_ids, outs, statuses in _vault_pages(store, page_size):
            tx = self.states.lookup(bytes.fromhex("".join(hex_ids)))
            known = tx >= 0
            fits = known.copy()
            fits[known] = self.has_output(tx[known], outs[known])
            slots = np.zeros(len(tx), dtype=np.int64)
            slots[fits] = self.slots(tx[fits], outs[fits])
            self.slot[slots[fits]] |= IN_VAULT
            self.vault_odd.update(_state_key(tx[known & ~fits], outs[known & ~fits]).tolist())
            in_graph = fits & (self.slot[slots] >= CONSUMED)
            vault_consumed = statuses == StateStatus.CONSUMED
            wrong = ~fits | (vault_consumed != in_graph)
            for i in np.flatnonzero(wrong).tolist():
                state = f"{hex_ids[i].upper()}({outs[i]})"
                if not known[i]:
                    self.errors.add(f"vault state {state} belongs to no VERIFIED transaction")
                elif not fits[i]:
                    self.errors.add(
                        f"vault state {state}: transaction {hex_ids[i].upper()} has no such output"
                    )
                elif vault_consumed[i]:
                    self.errors.add(
                        f"vault state {state} is CONSUMED but no VERIFIED transaction consumes it"
                    )
                elif self.errors.add(""):
                    later.append((len(self.errors.lines) - 1, int(slots[i]), state))
        consumers = self.consumers_of(np.unique(np.array([s for _, s, _ in later], dtype=np.int64)))
        for line, slot, state in later:
            by = self.states.id_at(consumers[slot][0])
            self.errors.lines[line] = f"vault state {state} is UNCONSUMED but transaction {by} consumes it"

    def report_relevant_not_in_vault(self) -> None:
        first = 0  # rel_out's position of the chunk's first transaction
        for lo in range(0, len(self.rel_counts), self.chunk):
            counts = self.rel_counts[lo : lo + self.chunk]
            tx = np.repeat(np.arange(lo, lo + len(counts), dtype=np.int64), counts)
            out = self.rel_out[first : first + len(tx)].astype(np.int64)
            first += len(tx)
            fits = self.has_output(tx, out)
            present = np.zeros(len(tx), dtype=bool)
            present[fits] = (self.slot[self.slots(tx[fits], out[fits])] & IN_VAULT) > 0
            for i in np.flatnonzero(~fits).tolist():
                present[i] = int(_state_key(tx[i : i + 1], out[i : i + 1])[0]) in self.vault_odd
            for i in np.flatnonzero(~present).tolist():
                tx_id = self.states.id_at(int(tx[i]))
                self.errors.add(
                    f"transaction {tx_id}: relevant output {tx_id}({int(out[i])}) is not in the vault"
                )


def _vault_pages(
    store: GraphScans, page_size: int
) -> Iterator[tuple[list[str], npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    for rows in store.vault_status_pages(page_size):
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

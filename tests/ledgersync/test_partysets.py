"""Party sets: each distinct set kept once, found by member, late signers named in the table."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from agent.ledgersync.partysets import U16_SETS, PartySets

# A row: distinct members, names >= 0 and late signer keys -(1 + k) < 0.
rows = st.lists(st.lists(st.integers(-6, 20), unique=True, max_size=5), max_size=40)


def intern_all(sets: PartySets, drawn: list[list[int]]) -> np.ndarray:
    counts = np.array([len(r) for r in drawn], dtype=np.int64)
    entries = np.array([m for r in drawn for m in sorted(r)], dtype=np.int32)
    return sets.intern_rows(counts, entries)


@given(rows, rows)
def test_rows_with_the_same_members_share_one_set(first: list[list[int]], second: list[list[int]]) -> None:
    sets = PartySets()
    ids = np.concatenate([intern_all(sets, first), intern_all(sets, second)])
    drawn = first + second
    assert len(sets) == len({tuple(sorted(r)) for r in drawn})
    for row, set_id in zip(drawn, ids.tolist(), strict=True):
        assert sets.members(set_id) == sorted(row)
    for member in range(-6, 21):
        holding = sets.containing(member)
        assert [bool(holding[i]) for i in ids.tolist()] == [member in r for r in drawn]


@given(rows, st.lists(st.integers(-1, 30), min_size=3, max_size=3))
def test_late_signers_are_named_or_dropped(drawn: list[list[int]], key_name: list[int]) -> None:
    # Keys 0-2 have the drawn names (-1: never named); keys 3-5 are past the table, never named.
    sets = PartySets()
    ids = intern_all(sets, drawn)
    remap = sets.resolve_late(np.array(key_name, dtype=np.int32))
    if not any(m < 0 for r in drawn for m in r):
        assert remap is None
        return
    assert remap is not None
    for row, set_id in zip(drawn, remap[ids].tolist(), strict=True):
        named = {m if m >= 0 else (key_name[-1 - m] if -1 - m < 3 else -1) for m in row}
        assert sets.members(set_id) == sorted(named - {-1})


def test_set_ids_stay_uint16_up_to_65536_sets() -> None:
    sets = PartySets()
    for i in range(U16_SETS):
        sets.intern(np.array([i], dtype=np.int32).tobytes())
    assert sets.set_dtype() == np.uint16
    sets.intern(np.array([U16_SETS], dtype=np.int32).tobytes())
    assert sets.set_dtype() == np.int32
    assert sets.members(U16_SETS) == [U16_SETS]
    assert sets.containing(7).sum() == 1

"""CSR helpers and the narrow growable arrays the graph's build collects into."""

from __future__ import annotations

from array import array

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import StoreError
from agent.ledgersync.csr import extend_offsets, offsets, owners, segments
from agent.ledgersync.narrow import NarrowInts

counts = st.lists(st.integers(0, 5), min_size=1, max_size=40)


@given(counts=counts, dtype=st.sampled_from([np.int32, np.int64]), data=st.data())
def test_owners_is_the_row_of_each_position(counts: list[int], dtype: type, data: st.DataObject) -> None:
    off = offsets(counts).astype(dtype)
    total = int(off[-1])
    positions = np.array(data.draw(st.lists(st.integers(0, max(total - 1, 0)), max_size=20)), dtype=np.int64)
    if not total:
        positions = positions[:0]
    rows = owners(off, positions)
    assert rows.dtype == np.int64
    for position, row in zip(positions.tolist(), rows.tolist(), strict=True):
        assert off[row] <= position < off[row + 1]


@given(counts=counts, data=st.data())
def test_segments_are_the_rows_entries_in_turn(counts: list[int], data: st.DataObject) -> None:
    off = offsets(counts)
    rows = np.array(data.draw(st.lists(st.integers(0, len(counts) - 1), max_size=10)), dtype=np.int64)
    expected = [p for r in rows.tolist() for p in range(int(off[r]), int(off[r + 1]))]
    assert segments(off, rows).tolist() == expected


@given(st.lists(counts, max_size=5))
def test_offsets_extended_page_by_page_are_the_offsets_of_all(pages: list[list[int]]) -> None:
    off = array("i", [0])
    for page in pages:
        extend_offsets(off, page)
    assert list(off) == offsets([c for page in pages for c in page]).tolist()


def test_offsets_beyond_int32_are_refused() -> None:
    with pytest.raises(StoreError, match="at most 2147483647"):
        offsets([2**30, 2**30])
    with pytest.raises(StoreError, match="at most 2147483647"):
        extend_offsets(array("i", [2**31 - 2]), [1, 1])


widths = {np.uint8: 2**8 - 1, np.uint16: 2**16 - 1, np.uint32: 2**32 - 1}


@given(st.lists(st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 300), max_size=8), max_size=6))
def test_narrow_ints_hold_every_value_in_the_narrowest_type(pages: list[list[int]]) -> None:
    narrow = NarrowInts()
    for page in pages:
        narrow.extend(np.array(page, dtype=np.int64))
    values = [v for page in pages for v in page]
    assert narrow.numpy().tolist() == values and len(narrow) == len(values)
    narrowest = next(t for t, top in widths.items() if max(values, default=0) <= top)
    assert narrow.dtype == np.dtype(narrowest)


def test_narrow_ints_take_array_arrays_and_start_at_the_width_asked() -> None:
    narrow = NarrowInts(1)
    narrow.extend(array("H", [1, 2]))
    assert narrow.dtype == np.uint16 and narrow.numpy().tolist() == [1, 2]
    assert NarrowInts().numpy().dtype == np.uint8


def test_narrow_ints_refuse_what_they_cannot_hold() -> None:
    narrow = NarrowInts()
    narrow.extend([7])
    with pytest.raises(ValueError, match="non-negative ints, not -1"):
        narrow.extend([3, -1])
    with pytest.raises(ValueError, match="does not fit in 32 bits"):
        narrow.extend(np.array([2**32], dtype=np.int64))
    assert narrow.numpy().tolist() == [7]  # nothing of a refused extend is kept

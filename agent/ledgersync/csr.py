"""Compressed sparse rows: a row's entries are entries[off[row] : off[row + 1]]."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import StoreError

I32 = npt.NDArray[np.int32]
_MAX_I32 = 2**31 - 1


def offsets(counts: npt.ArrayLike) -> I32:
    """CSR offsets of these counts, as int32 (half the size of int64; checked to fit)."""
    counts = np.asarray(counts)
    total = int(counts.sum(dtype=np.int64))
    if total > _MAX_I32:
        raise StoreError(f"{total} entries: the graph keeps at most {_MAX_I32} of one kind")
    out = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=out[1:])
    return out


def owners(off: npt.NDArray[Any], positions: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The row each entry position belongs to (positions below off[-1]).

    The positions are cast to the offsets' type: searchsorted otherwise casts all the offsets to the
    positions' type, an 8 MB copy of int32 offsets at a million rows for each call.
    """
    found = np.searchsorted(off, np.asarray(positions).astype(off.dtype, copy=False), side="right")
    return found.astype(np.int64) - 1


def segments(off: npt.NDArray[Any], rows: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Positions of every entry of these CSR rows, row after row."""
    starts = off[rows].astype(np.int64)
    lengths = off[rows + 1].astype(np.int64) - starts
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def extend_offsets(off: array[int], counts: npt.ArrayLike) -> None:
    """Append to CSR offsets (an int32 array.array starting at 0) the rows of these counts.

    Offsets kept as rows come need no counts beside them, nor a second array at the end.
    """
    ends = np.cumsum(np.asarray(counts), dtype=np.int64) + off[-1]
    if len(ends) and ends[-1] > _MAX_I32:
        raise StoreError(f"{int(ends[-1])} entries: the graph keeps at most {_MAX_I32} of one kind")
    off.frombytes(ends.astype(np.int32).tobytes())

"""The distinct sets of parties the ledger's transactions involve, each kept once.

A business network has far fewer distinct sets of parties than transactions: the same few
counterparties trade again and again. So a transaction keeps only the id of its set (2 bytes while
there are at most 65,536 sets), and each set is kept once, sorted, in CSR form. At a million
transactions that is 2 MB where a list of entries per transaction took 9.6 MB (int32 offsets and
2.8 million uint16 entries); at worst, every transaction with a set of its own, it costs what the
list did. Marking the transactions that involve a name is then a lookup per transaction in a table
of the sets that hold it.

A member is a name id (>= 0), or -(1 + key) for a signer whose key was not seen with a name when its
page was read: `resolve_late` names those sets once the keys are known.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
U16_SETS = 1 << 16  # set ids fit uint16 while there are at most this many sets


class PartySets:
    """Interned sorted sets of int32 members; a set's id is the order in which it was first seen.

    Appended to in place, in numpy buffers that grow by doubling: what a reader took (`_view`) stays
    valid while a merge interns more sets in another thread.
    """

    def __init__(self) -> None:
        self._index: dict[bytes, int] = {}
        self._lock = threading.Lock()
        self._off = np.zeros(16, dtype=np.int64)
        self._members = np.empty(64, dtype=np.int32)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def _view(self) -> tuple[npt.NDArray[np.int64], I32]:
        """(offsets, members) of the sets interned so far."""
        with self._lock:
            off = self._off[: self._count + 1]
            return off, self._members[: off[-1]]

    def intern(self, members: bytes) -> int:
        """The id of the set of these members (int32, sorted, distinct), given one if new."""
        found = self._index.get(members)
        if found is not None:
            return found
        entries = np.frombuffer(members, dtype=np.int32)
        with self._lock:
            again = self._index.get(members)  # interned by another thread meanwhile
            if again is not None:
                return again
            n, used = self._count, int(self._off[self._count])
            if n + 2 > len(self._off):
                self._off = np.concatenate([self._off, np.zeros(len(self._off), dtype=np.int64)])
            if used + len(entries) > len(self._members):
                grown = np.empty(2 * (used + len(entries)), dtype=np.int32)
                grown[:used] = self._members[:used]
                self._members = grown
            self._members[used : used + len(entries)] = entries
            self._off[n + 1] = used + len(entries)
            self._count = n + 1
            self._index[members] = n
        return n

    def intern_rows(self, counts: npt.NDArray[np.integer[Any]], entries: I32) -> I32:
        """The set id of each row of a CSR (counts, entries), each row's entries sorted and distinct."""
        raw = np.ascontiguousarray(entries, dtype=np.int32).tobytes()
        ends = np.cumsum(counts, dtype=np.int64) * 4
        out = np.empty(len(ends), dtype=np.int32)
        start = 0
        index, intern = self._index, self.intern
        for row, end in enumerate(ends.tolist()):
            key = raw[start:end]
            found = index.get(key)
            out[row] = intern(key) if found is None else found
            start = end
        return out

    def members(self, set_id: int) -> list[int]:
        off, members = self._view()
        found: list[int] = members[off[set_id] : off[set_id + 1]].tolist()
        return found

    def containing(self, member: int) -> npt.NDArray[np.bool_]:
        """For each set, whether member is in it."""
        off, members = self._view()
        hits = np.zeros(len(members) + 1, dtype=np.int64)
        np.cumsum(members == member, out=hits[1:])
        found: npt.NDArray[np.bool_] = hits[off[1:]] > hits[off[:-1]]
        return found

    def resolve_late(self, key_name: I32) -> I32 | None:
        """A map from set id to set id that names the late signers, or None when no set has one.

        key_name: the name id of each key, -1 where none; a key never seen with a name is dropped.
        """
        off, members = self._view()
        if not len(members) or members.min() >= 0:
            return None
        late = np.unique(np.searchsorted(off, np.flatnonzero(members < 0), side="right") - 1)
        remap = np.arange(len(off) - 1, dtype=np.int32)
        for set_id in late.tolist():
            entries = members[off[set_id] : off[set_id + 1]]
            keys = -1 - entries
            known = (entries < 0) & (keys < len(key_name))
            named = np.where(entries >= 0, entries, -1)
            named[known] = key_name[keys[known]]
            remap[set_id] = self.intern(np.unique(named[named >= 0]).astype(np.int32).tobytes())
        return remap

    def set_dtype(self) -> np.dtype[Any]:
        """uint16 for set ids while they fit, else int32."""
        return np.dtype(np.uint16) if len(self) <= U16_SETS else np.dtype(np.int32)

    @property
    def nbytes(self) -> int:
        off, members = self._view()
        return int(off.nbytes + members.nbytes)

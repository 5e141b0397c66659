"""A set of 32-byte transaction ids as one sorted numpy array: 32 bytes an id, no Python object each.

A reconciliation holds the set for a pair on both sides, up to a million ids at a time; as a Python
`set[bytes]` that is some 100 MB, as this array 32 MB (or nothing, when it is a view of the graph's
own ids). Membership and differences are searchsorted over the sorted array.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.errors import ReconciliationCodecError
from agent.ledgersync.riblt import ID_SIZE

# Fixed-width byte strings compare over all 32 bytes, so the sort order is the ids' byte order.
ID = np.dtype("S32")


class IdSet:
    """Sorted, distinct 32-byte ids; iterates as `bytes` in ascending order."""

    __slots__ = ("_ids",)

    def __init__(self, ids: npt.NDArray[Any]) -> None:
        """Wrap an S32 array that is already sorted and distinct (not checked: use the constructors)."""
        self._ids = ids

    @classmethod
    def of(cls, ids: Iterable[bytes]) -> IdSet:
        """From ids in any order, duplicates allowed."""
        raw = b"".join(ids)
        return cls.from_bytes(raw)

    @classmethod
    def from_bytes(cls, data: Any, key: str = "ids") -> IdSet:
        """From concatenated ids (as on the wire), in any order; malformed input raises for `key`."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) % ID_SIZE:
            raise ReconciliationCodecError(key, f"must be concatenated {ID_SIZE}-byte ids")
        return cls(np.unique(np.frombuffer(data, dtype=ID)))

    @classmethod
    def from_array(cls, ids: npt.NDArray[Any]) -> IdSet:
        """From an (n, 32) uint8 or S32 array, in any order, duplicates allowed."""
        flat = np.ascontiguousarray(ids).reshape(-1)
        if flat.dtype != ID:
            flat = flat.view(np.uint8).view(ID)
        return cls(np.unique(flat))

    @classmethod
    def concatenate(cls, parts: Iterable[IdSet]) -> IdSet:
        """The union of these sets."""
        arrays = [p.ids for p in parts]
        return cls(np.unique(np.concatenate(arrays))) if arrays else cls.empty()

    @classmethod
    def empty(cls) -> IdSet:
        return cls(np.empty(0, dtype=ID))

    @property
    def ids(self) -> npt.NDArray[Any]:
        """The S32 array itself (read-only by convention)."""
        return self._ids

    @property
    def array(self) -> npt.NDArray[np.uint8]:
        """The ids as an (n, 32) uint8 view."""
        return self._ids.view(np.uint8).reshape(-1, ID_SIZE)

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[bytes]:
        # tobytes, not the element: numpy drops an S32 element's trailing zero bytes.
        for start in range(0, len(self._ids), 4096):
            raw = self._ids[start : start + 4096].tobytes()
            yield from (raw[o : o + ID_SIZE] for o in range(0, len(raw), ID_SIZE))

    def __contains__(self, tx_id: object) -> bool:
        if not isinstance(tx_id, bytes | bytearray) or len(tx_id) != ID_SIZE:
            return False
        return bool(self.contains(np.frombuffer(tx_id, dtype=ID))[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        return bool(np.array_equal(self._ids, other._ids))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IdSet({len(self)} ids)"

    def contains(self, wanted: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """For each id of an S32 array, whether it is in the set."""
        if not len(self._ids):
            return np.zeros(len(wanted), dtype=bool)
        at = np.minimum(np.searchsorted(self._ids, wanted), len(self._ids) - 1)
        found: npt.NDArray[np.bool_] = self._ids[at] == wanted
        return found

    def select(self, keep: npt.NDArray[np.bool_]) -> IdSet:
        """The ids where keep is True (a mask over this set's order)."""
        return IdSet(self._ids[keep])

    def difference(self, other: IdSet) -> IdSet:
        """The ids of this set that are not in other."""
        return self.select(~other.contains(self._ids))

    __sub__ = difference

    def union(self, other: IdSet) -> IdSet:
        return IdSet(np.union1d(self._ids, other._ids))

    def tobytes(self) -> bytes:
        """The ids concatenated in ascending order, as on the wire."""
        return self._ids.tobytes()

    def page(self, offset: int, count: int) -> bytes:
        """Ids offset to offset + count - 1, concatenated (paged straight from the array)."""
        return self._ids[offset : offset + count].tobytes()

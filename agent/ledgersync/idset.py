"""A set of 32-byte transaction ids as one sorted numpy array: 32 bytes an id, no Python object each.

A reconciliation holds the set for a pair on both sides, up to a million ids at a time; as a Python
`set[bytes]` that is some 100 MB, as this array 32 MB (or nothing, when it is a view of the graph's
own ids). Membership and differences are searchsorted over the sorted array.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from agent.errors import ReconciliationCodecError
from agent.ledger.hashing import SecureHash
from agent.ledgersync.riblt import ID_SIZE

# Fixed-width byte strings compare over all 32 bytes, so the sort order is the ids' byte order.
ID = np.dtype("S32")
CHUNK = 1 << 16  # ids read at a time from a selection: 2 MB
MASK_CHUNK = 1 << 18  # mask entries turned into positions at a time


def find_ids(
    ids: npt.NDArray[Any], order: npt.NDArray[np.integer[Any]] | None, hashes: bytes | npt.NDArray[Any]
) -> npt.NDArray[np.int64]:
    """Indexes in ids (sorted by order, or already sorted if None) of these 32-byte ids, -1 where absent.

    hashes: concatenated ids, or an S32 array of them."""
    wanted = hashes if isinstance(hashes, np.ndarray) else np.frombuffer(hashes, dtype=ID)
    if not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    at = np.minimum(np.searchsorted(ids, wanted, sorter=order), len(ids) - 1)
    idx = (at if order is None else order[at]).astype(np.int64)
    found: npt.NDArray[np.int64] = np.where(ids[idx] == wanted, idx, -1)
    return found


class IdSet:
    """Sorted, distinct 32-byte ids; iterates as `bytes` in ascending order.

    Either an S32 array of its own (sorted), or a selection of another array's ids: `base` in any
    order and `picked`, the positions of the set's ids in ascending id order. The second form is
    how the set for a pair shares the ledger graph's ids: 4 bytes an id instead of 32. Every
    operation then reads the ids a chunk at a time, so none copies the whole set.

    A third form (`masked`) holds a mask over base, 1 byte an id, and the order that sorts base:
    the encoder reads the ids in place through the mask, in base's order (a symbol is an XOR, so
    order does not matter), and only the operations that need ascending order (the id list, a
    difference) turn the mask into positions, once.
    """

    __slots__ = ("_base", "_count", "_mask", "_order", "_picked")

    def __init__(self, base: npt.NDArray[Any], picked: npt.NDArray[np.integer[Any]] | None = None) -> None:
        """Wrap ids that are already sorted and distinct, base[picked] if picked is given (not checked)."""
        self._base = base
        self._picked = picked
        self._mask: npt.NDArray[np.bool_] | None = None
        self._order: npt.NDArray[np.integer[Any]] | None = None
        self._count = len(base) if picked is None else len(picked)

    @classmethod
    def masked(
        cls, base: npt.NDArray[Any], mask: npt.NDArray[np.bool_], order: npt.NDArray[np.integer[Any]] | None
    ) -> IdSet:
        """The distinct ids base[mask]; order sorts base (None: base is sorted)."""
        found = cls(base)
        found._mask, found._order = mask, order
        found._count = int(np.count_nonzero(mask))
        return found

    def _selection(self) -> npt.NDArray[np.integer[Any]] | None:
        """picked, made from the mask the first time it is needed."""
        if self._mask is not None and self._picked is None:
            mask, order = self._mask, self._order
            self._picked = _positions(mask) if order is None else order[mask[order]]
            self._mask = self._order = None
        return self._picked

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
        """The ids as one sorted S32 array (a copy when the set is a selection of another array)."""
        picked = self._selection()
        return self._base if picked is None else self._base[picked]

    @property
    def array(self) -> npt.NDArray[np.uint8]:
        """The ids as an (n, 32) uint8 array (a copy when the set is a selection of another array)."""
        return self.ids.view(np.uint8).reshape(-1, ID_SIZE)

    def layout(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
        """(base, picked positions or a bool mask over base, or None for all of base): for the encoder,
        which reads the ids in place."""
        return self._base, self._mask if self._mask is not None else self._picked

    def chunk(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Ids start to stop - 1 in ascending order, as a contiguous S32 array."""
        selection = self._selection()
        if selection is None:
            return self._base[start:stop]
        picked: npt.NDArray[Any] = self._base[selection[start:stop]]
        return picked

    def chunks(self, size: int = CHUNK) -> Iterator[npt.NDArray[Any]]:
        for start in range(0, len(self), size):
            yield self.chunk(start, start + size)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[bytes]:
        # tobytes, not the element: numpy drops an S32 element's trailing zero bytes.
        for part in self.chunks(4096):
            raw = part.tobytes()
            yield from (raw[o : o + ID_SIZE] for o in range(0, len(raw), ID_SIZE))

    def __contains__(self, tx_id: object) -> bool:
        if not isinstance(tx_id, bytes | bytearray) or len(tx_id) != ID_SIZE:
            return False
        return bool(self.contains(np.frombuffer(tx_id, dtype=ID))[0])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdSet):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(np.array_equal(a, b) for a, b in zip(self.chunks(), other.chunks(), strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"IdSet({len(self)} ids)"

    def contains(self, wanted: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """For each id of an S32 array (any order), whether it is in the set."""
        found: npt.NDArray[np.bool_] = self.rank(wanted) >= 0
        return found

    def rank(self, wanted: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """For each id of an S32 array (any order), its position in the set's order; -1 if absent."""
        found = np.full(len(wanted), -1, dtype=np.int64)
        if not len(self) or not len(wanted):
            return found
        selection = self._selection()
        if selection is None:
            at = np.minimum(np.searchsorted(self._base, wanted), len(self._base) - 1)
            found[:] = np.where(self._base[at] == wanted, at, -1)
            return found
        by_id = np.argsort(wanted, kind="stable")
        ordered = wanted[by_id]
        for start in range(0, len(self), CHUNK):
            stop = min(start + CHUNK, len(self))
            # Only the wanted ids within this chunk's range are looked up in it, and a chunk none
            # falls in is not gathered at all (a page of an id list falls in one or two).
            ends = self._base[selection[[start, stop - 1]]]
            lo = int(np.searchsorted(ordered, ends[:1], side="left")[0])
            hi = int(np.searchsorted(ordered, ends[1:], side="right")[0])
            if lo < hi:
                part = self.chunk(start, stop)
                some = ordered[lo:hi]
                at = np.minimum(np.searchsorted(part, some), len(part) - 1)
                found[by_id[lo:hi]] = np.where(part[at] == some, start + at, -1)
        return found

    def base_positions(self, wanted: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        """For each id of an S32 array (any order), its position in the base array; -1 if not in the set.

        With `without`, what a stream of pages needs (`Listing`): a set that is a mask over the
        graph's ids then makes no positions of its own (4 bytes an id).
        """
        if not len(self) or not len(wanted):
            return np.full(len(wanted), -1, dtype=np.int64)
        if self._mask is not None:
            at = find_ids(self._base, self._order, wanted)
            known = at >= 0
            at[known] = np.where(self._mask[at[known]], at[known], -1)
            return at
        rank = self.rank(wanted)
        if self._picked is None:
            return rank
        positions: npt.NDArray[np.int64] = np.where(rank >= 0, self._picked[np.maximum(rank, 0)], -1)
        return positions

    def without(self, dropped: npt.NDArray[np.bool_]) -> IdSet:
        """The set less the ids whose base position is True in dropped (a mask over the base array)."""
        if self._mask is not None:
            return IdSet.masked(self._base, self._mask & ~dropped, self._order)
        if self._picked is None:
            return IdSet(self._base[~dropped])
        return IdSet(self._base, self._picked[~dropped[self._picked]])

    def select(self, keep: npt.NDArray[np.bool_]) -> IdSet:
        """The ids where keep is True (a mask over this set's order)."""
        selection = self._selection()
        if selection is None:
            return IdSet(self._base[keep])
        return IdSet(self._base, selection[keep])

    def difference(self, other: IdSet) -> IdSet:
        """The ids of this set that are not in other."""
        if not len(other):
            return self
        keep = np.concatenate([~other.contains(part) for part in self.chunks()] or [np.zeros(0, bool)])
        return self.select(keep)

    __sub__ = difference

    def union(self, other: IdSet) -> IdSet:
        return IdSet(np.union1d(self.ids, other.ids))

    def tobytes(self) -> bytes:
        """The ids concatenated in ascending order, as on the wire."""
        return b"".join(part.tobytes() for part in self.chunks())

    def page(self, offset: int, count: int) -> bytes:
        """Ids offset to offset + count - 1, concatenated (paged straight from the array)."""
        return self.chunk(offset, offset + count).tobytes()


class Listing:
    """Which ids of a set another side listed, as pages of its ids come, and the ids it listed that
    the set lacks: a byte for each id of the set's base array; no page kept after it is read."""

    def __init__(self, ids: IdSet) -> None:
        self._set = ids
        self._listed = np.zeros(len(ids.layout()[0]), dtype=bool)
        self._lacking: list[npt.NDArray[Any]] = []

    def add(self, page: bytes) -> None:
        """One page of concatenated ids (any order)."""
        wanted = np.frombuffer(page, dtype=ID)
        at = self._set.base_positions(wanted)
        self._listed[at[at >= 0]] = True
        self._lacking.append(wanted[at < 0].copy())  # a copy: the page itself can go

    def lacking(self) -> IdSet:
        """The ids listed that are not in the set."""
        return IdSet.from_array(np.concatenate(self._lacking)) if self._lacking else IdSet.empty()

    def unlisted(self) -> IdSet:
        """The ids of the set that were not listed."""
        return self._set.without(self._listed)


def _positions(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int32]:
    """np.flatnonzero(mask) as int32, a chunk at a time: never the 8 bytes an entry of int64."""
    out = np.empty(int(np.count_nonzero(mask)), dtype=np.int32)
    filled = 0
    for lo in range(0, len(mask), MASK_CHUNK):
        found = np.flatnonzero(mask[lo : lo + MASK_CHUNK]) + lo
        out[filled : filled + len(found)] = found
        filled += len(found)
    return out


_S = TypeVar("_S")
JSON_ID_SIZE = 2 * ID_SIZE + 3  # "hex",
JSON_CHUNK = 1 << 14  # ids written at a time: about 1 MB of JSON
_HEX_DIGITS = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_QUOTE, _COMMA = ord('"'), ord(",")


class SecureHashes(AbstractSet[SecureHash]):
    """A read-only set of SecureHash over an IdSet: 32 bytes an id, not a Python object each.

    What a reconciliation found, as its result carries it: a set of 100,000 SecureHash objects took
    13 MB, the sorted array 3.2 MB. Compares equal to a set of the same ids; iterates in id order.
    """

    __slots__ = ("ids",)

    def __init__(self, ids: IdSet) -> None:
        self.ids = ids

    @classmethod
    def _from_iterable(cls, it: Iterable[_S]) -> set[_S]:
        return set(it)  # what the set operators (|, &, -) return

    def __iter__(self) -> Iterator[SecureHash]:
        return (SecureHash(raw) for raw in self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, tx_id: object) -> bool:
        return isinstance(tx_id, bytes) and bytes(tx_id) in self.ids

    def __repr__(self) -> str:
        return f"SecureHashes({len(self)} ids)"

    def json_array(self) -> bytes:
        """The ids as a JSON array of upper-case hex strings (as SecureHash prints), in id order."""
        return b"".join(self.json_array_parts())

    def json_array_length(self) -> int:
        """len(json_array()), known without making it: 67 bytes an id and its separator."""
        return 2 + max(len(self) * JSON_ID_SIZE - 1, 0)

    def json_array_parts(self, chunk: int = JSON_CHUNK) -> Iterator[bytes]:
        """json_array in parts of chunk ids, made from the array with no str an id (100,000 of them
        took 12 MB, and their JSON 14 more), so that a reply can be streamed a part at a time."""
        yield b"["
        last = len(self) - 1
        for start, part in zip(range(0, len(self), chunk), self.ids.chunks(chunk), strict=True):
            raw = part.view(np.uint8).reshape(-1, ID_SIZE)
            out = np.empty((len(raw), JSON_ID_SIZE), dtype=np.uint8)
            out[:, 0] = out[:, 2 * ID_SIZE + 1] = _QUOTE
            out[:, 1 : 2 * ID_SIZE + 1 : 2] = _HEX_DIGITS[raw >> 4]
            out[:, 2 : 2 * ID_SIZE + 2 : 2] = _HEX_DIGITS[raw & 15]
            out[:, -1] = _COMMA
            data = out.tobytes()
            yield data[:-1] if start + len(raw) > last else data  # no comma after the last id
        yield b"]"

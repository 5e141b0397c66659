"""The Corda-style baseline: a strata estimator, then Invertible Bloom Filters (Eppstein et al. 2011).

Computed in the benchmark's process on the same two id sets the agents reconcile, to count what
Corda's LedgerSync scheme would have sent. The exchange modelled:

1. the requester sends its strata estimator; the responder subtracts its own and decodes the strata
   from the sparsest down, which estimates the size of the difference (one exchange);
2. the responder sends an IBF of max(12, 2 x estimate) cells; the requester subtracts its own IBF of
   the same shape and peels it. On failure it asks for one twice as large, at most
   `max_ibfs` (Corda's maxNumberOfIbfFilterFlows, default 5) IBFs in all, each one exchange; an IBF
   larger than `max_message_size` (Corda's default 10 MiB) cannot be sent, which Corda reports as
   MaxMessageSizeExceededException.

Parameters, from `set-reconciliation-notes.md` (section 2) and the paper: 32 strata x 80 cells with
4 hash functions each (GNUnet's estimator), IBF sized alpha = 2 times the estimate, at least 12
cells, 3 hash functions (the paper's choice for all but small differences; the notes measured k = 4:
k does not change a cell count, only how often a filter of that size decodes). A cell is 44 bytes:
a 4-byte count, the 32-byte XOR of its ids and an 8-byte XOR of a hash of each id. The estimator is
then 32 x 80 x 44 = 112,640 bytes, the notes' "about 113 KB". Bytes counted are the cells sent
(estimator and IBFs); the few bytes of the estimate and of each IBF request are not, as in the notes.

Cells are split into k equal parts and an id goes to one cell of each part, so its k cells differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

ID_SIZE = 32
CELL_BYTES = 4 + ID_SIZE + 8
STRATA = 32
STRATA_CELLS = 80
STRATA_HASHES = 4
IBF_HASHES = 3
ALPHA = 2.0
MIN_IBF_CELLS = 12
MAX_IBFS = 5
MAX_MESSAGE_SIZE = 10 * 1024 * 1024  # Corda's default maxMessageSize
ESTIMATOR_BYTES = STRATA * STRATA_CELLS * CELL_BYTES

_MASK = (1 << 64) - 1
_WORDS = ID_SIZE // 8
_SEED_STRATUM = 0x5EED_0001
_SEED_CHECK = 0x5EED_0002
_SEED_CELL = 0x5EED_0100  # + the part: one seed per hash function

U64 = npt.NDArray[np.uint64]


# -- hashing: the same function over numpy arrays and over Python ints (the decoder's) --------------


def _mix(x: U64) -> U64:
    """splitmix64's finaliser, vectorised (uint64 arithmetic wraps, as it must)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _mix1(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _digest(words: U64) -> U64:
    """One 64-bit digest of each id (rows of 4 little-endian words), over all 32 bytes."""
    h = np.zeros(len(words), dtype=np.uint64)
    for w in range(_WORDS):
        h = _mix(h ^ words[:, w] ^ np.uint64(w + 1))
    return h


def _digest1(value: int) -> int:
    h = 0
    for w in range(_WORDS):
        h = _mix1(h ^ ((value >> (64 * w)) & _MASK) ^ (w + 1))
    return h


def as_words(ids: npt.NDArray[Any] | bytes) -> U64:
    """Ids (concatenated bytes, an S32 array or an (n, 32) uint8 array) as an (n, 4) uint64 array."""
    raw = np.frombuffer(ids, dtype=np.uint8) if isinstance(ids, bytes) else np.ascontiguousarray(ids)
    return raw.view(np.uint8).reshape(-1, ID_SIZE).view("<u8").astype(np.uint64, copy=False)


def only_in(words: U64, other: U64) -> U64:
    """The rows of words (distinct ids) that are not rows of other.

    Matched on the first word (a sort of uint64, where sorting 32-byte strings is some ten times
    slower), then confirmed on all four; if the first words of other are not distinct, by all bytes.
    """
    keys = other[:, 0]
    order = np.argsort(keys)
    sorted_keys = keys[order]
    if len(sorted_keys) > 1 and bool((sorted_keys[1:] == sorted_keys[:-1]).any()):
        whole = np.ascontiguousarray(other).view("S32").reshape(-1)
        mine = np.ascontiguousarray(words).view("S32").reshape(-1)
        return words[~np.isin(mine, whole)]
    if len(keys) == 0:
        return words
    # Sorted needles: searchsorted then walks the haystack in order (random ones miss the cache).
    asked = np.argsort(words[:, 0])
    at = np.minimum(np.searchsorted(sorted_keys, words[asked, 0]), len(keys) - 1)
    found = np.empty(len(words), dtype=bool)
    found[asked] = (other[order[at]] == words[asked]).all(axis=1)
    return words[~found]


def _int_of(words: U64) -> int:
    return int.from_bytes(words.astype("<u8").tobytes(), "little")


# -- an IBF: cells in arrays; sums of sets add and subtract cell-wise --------------------------------


@dataclass
class Cells:
    """count, XOR of ids (as 4 words) and XOR of check hashes, per cell."""

    count: npt.NDArray[np.int64]
    ids: U64  # (m, 4)
    check: U64

    def __sub__(self, other: Cells) -> Cells:
        return Cells(self.count - other.count, self.ids ^ other.ids, self.check ^ other.check)

    def __len__(self) -> int:
        return len(self.count)


def _xor_into(cells: int, index: npt.NDArray[np.int64], values: U64) -> U64:
    """XOR-reduce rows of values by cell index (sort, then reduceat: XOR has no bincount)."""
    out = np.zeros((cells, *values.shape[1:]), dtype=np.uint64)
    if len(index) == 0:
        return out
    order = np.argsort(index)
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    out[sorted_index[starts]] = np.bitwise_xor.reduceat(values[order], starts, axis=0)
    return out


def _positions(digest: U64, parts: int, part_size: int) -> npt.NDArray[np.int64]:
    """(n, parts) cell indexes: one in each part of part_size cells."""
    cols = [
        (_mix(digest ^ np.uint64(_SEED_CELL + j)) % np.uint64(part_size)).astype(np.int64) + j * part_size
        for j in range(parts)
    ]
    return np.stack(cols, axis=1) if cols else np.empty((len(digest), 0), dtype=np.int64)


def _positions1(digest: int, parts: int, part_size: int) -> list[int]:
    return [_mix1(digest ^ (_SEED_CELL + j)) % part_size + j * part_size for j in range(parts)]


def _encode(
    words: U64, digest: U64, cells: int, offset: npt.NDArray[np.int64], parts: int, part_size: int
) -> Cells:
    """Each id into `parts` cells of its block: block start offset (per id) + its positions."""
    where = (_positions(digest, parts, part_size) + offset[:, None]).reshape(-1)
    check = _mix(digest ^ np.uint64(_SEED_CHECK))
    count = np.bincount(where, minlength=cells).astype(np.int64)
    ids = _xor_into(cells, where, np.repeat(words, parts, axis=0))
    checks = _xor_into(cells, where, np.repeat(check, parts))
    return Cells(count, ids, checks)


def encode_ibf(words: U64, cells: int, hashes: int = IBF_HASHES) -> Cells:
    """An IBF of `cells` cells (a multiple of hashes) over ids given as (n, 4) words."""
    part = cells // hashes
    return _encode(words, _digest(words), cells, np.zeros(len(words), dtype=np.int64), hashes, part)


def ibf_cells(estimate: float, hashes: int = IBF_HASHES) -> int:
    """alpha x the estimate, at least MIN_IBF_CELLS, rounded up to a multiple of the hash count."""
    wanted = max(MIN_IBF_CELLS, math.ceil(ALPHA * estimate))
    return -(-wanted // hashes) * hashes


def _stratum(digest: U64) -> npt.NDArray[np.int64]:
    """Trailing zero bits of a hash, capped: stratum i holds about 1 / 2^(i+1) of the ids."""
    h = _mix(digest ^ np.uint64(_SEED_STRATUM))
    low = h & (~h + np.uint64(1))  # the lowest set bit
    zeros = np.zeros(len(h), dtype=np.int64)
    nonzero = low != 0
    zeros[nonzero] = np.log2(low[nonzero].astype(np.float64)).astype(np.int64)
    zeros[~nonzero] = STRATA - 1
    return np.minimum(zeros, STRATA - 1)


def encode_strata(words: U64) -> Cells:
    """The strata estimator: STRATA IBFs of STRATA_CELLS cells, an id in the stratum of its hash."""
    digest = _digest(words)
    offset = _stratum(digest) * STRATA_CELLS
    return _encode(words, digest, STRATA * STRATA_CELLS, offset, STRATA_HASHES, STRATA_CELLS // STRATA_HASHES)


@dataclass
class Peeled:
    """What a difference IBF gave up: ids only in the first set (plus), only in the second (minus)."""

    plus: list[bytes] = field(default_factory=list)
    minus: list[bytes] = field(default_factory=list)
    complete: bool = False


def peel(cells: Cells, start: int, size: int, hashes: int) -> Peeled:
    """Peel cells[start:start+size], an IBF of A minus B; complete if every cell ends empty."""
    part = size // hashes
    count = [int(c) for c in cells.count[start : start + size]]
    ids = [_int_of(row) for row in cells.ids[start : start + size]]
    check = [int(c) for c in cells.check[start : start + size]]
    result = Peeled()

    def pure(i: int) -> bool:
        if count[i] not in (1, -1):
            return False
        digest = _digest1(ids[i])
        return check[i] == _mix1(digest ^ _SEED_CHECK) and i in _positions1(digest, hashes, part)

    queue = [i for i in range(size) if pure(i)]
    while queue:
        i = queue.pop()
        if not pure(i):
            continue
        value, sign = ids[i], count[i]
        digest = _digest1(value)
        hashed = _mix1(digest ^ _SEED_CHECK)
        (result.plus if sign > 0 else result.minus).append(value.to_bytes(ID_SIZE, "little"))
        for j in _positions1(digest, hashes, part):
            count[j] -= sign
            ids[j] ^= value
            check[j] ^= hashed
            if pure(j):
                queue.append(j)
    result.complete = not any(count) and not any(ids) and not any(check)
    return result


def estimate_difference(mine: Cells, theirs: Cells) -> int:
    """Eppstein's strata estimate of |A xor B|: decode from the sparsest stratum down; at the first
    that fails, scale what was counted by 2^(i+1)."""
    diff = theirs - mine
    counted = 0
    for i in range(STRATA - 1, -1, -1):
        peeled = peel(diff, i * STRATA_CELLS, STRATA_CELLS, STRATA_HASHES)
        if not peeled.complete:
            return int(2 ** (i + 1)) * counted
        counted += len(peeled.plus) + len(peeled.minus)
    return counted


@dataclass
class BaselineResult:
    """The Corda-style session's cost, and what it decoded."""

    decoded: bool
    sent: int  # bytes
    round_trips: int
    estimate: int
    ibf_cells: list[int]
    missing_here: list[bytes]  # in theirs, not mine
    missing_there: list[bytes]
    failure: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "baseline_bytes": self.sent,
            "baseline_round_trips": self.round_trips,
            "baseline_decoded": self.decoded,
            "baseline_estimate": self.estimate,
            "baseline_ibf_cells": self.ibf_cells,
            "baseline_failure": self.failure,
        }


def reconcile(
    mine: npt.NDArray[Any] | bytes,
    theirs: npt.NDArray[Any] | bytes,
    *,
    max_ibfs: int = MAX_IBFS,
    max_message_size: int = MAX_MESSAGE_SIZE,
    hashes: int = IBF_HASHES,
    estimate: int | None = None,
) -> BaselineResult:
    """The Corda-style session between a requester holding `mine` and a responder holding `theirs`.

    estimate, if given, replaces the strata estimator's (whose bytes are still counted): how a
    test makes the estimate too low for max_ibfs doublings.
    """
    # Ids in both sets cancel in every cell (count and XOR alike), so encoding each side's own ids
    # only gives the same difference cells, bit for bit, as encoding the whole sets (tested).
    a, b = only_in(as_words(mine), as_words(theirs)), only_in(as_words(theirs), as_words(mine))
    if estimate is None:
        estimate = estimate_difference(encode_strata(a), encode_strata(b))
    sent = ESTIMATOR_BYTES
    trips = 1
    sizes: list[int] = []
    cells = ibf_cells(estimate, hashes)
    failure = "not decoded within maxNumberOfIbfFilterFlows"
    for _ in range(max_ibfs):
        if cells * CELL_BYTES > max_message_size:
            failure = f"MaxMessageSizeExceededException: an IBF of {cells * CELL_BYTES} bytes"
            break
        trips += 1
        sent += cells * CELL_BYTES
        sizes.append(cells)
        peeled = peel(encode_ibf(b, cells, hashes) - encode_ibf(a, cells, hashes), 0, cells, hashes)
        if peeled.complete:
            return BaselineResult(True, sent, trips, estimate, sizes, peeled.plus, peeled.minus)
        cells *= 2  # the next IBF: twice the last
    return BaselineResult(False, sent, trips, estimate, sizes, [], [], failure)

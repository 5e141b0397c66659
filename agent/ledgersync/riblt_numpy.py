"""A numpy encoder for the rateless IBLT, symbol for symbol identical to ``riblt.Encoder``.

``riblt.Encoder`` spends its time in a Python loop over every (id, index) pair; here all ids advance
together. For symbols ``[start, end)``, every id whose next index is below ``end`` is XORed into that
symbol, then its PRNG state and index advance; the round repeats over the ids still below ``end``.
The index step is the reference's float formula evaluated in the same order on float64, so the
indexes, and hence the symbols, are bit-identical (the tests compare them with the pure encoder).

Memory, for a million ids: the ids are not copied (an ``IdSet`` is read in place, its bytes XORed as
they are: XOR does not care about byte order, and the wire takes the same bytes back), and per id
there are only the checksum, the PRNG state and the next index (20 bytes). Ids are processed in
chunks of ``CHUNK``, so the temporaries of a round stay a few MB whatever the size of the set.

Each ``next_symbols`` call scans the N next indexes once, so many tiny batches over a large set cost
O(N) each; batches of 64 or more, as the protocol sends, amortise that.

When the optional extension ``_riblt_kernel`` is built (it is, by ``pip install``, wherever there is a
C compiler), none of the above runs: C walks one id at a time from index 0, hashing it on the way,
five times faster at a million ids, with the GIL released, and keeps no per-id state at all (a later
batch walks again from 0, about the cost of the first), so a session holds no 20 MB of checksums,
states and indexes. ``KERNEL`` says which one this process uses.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from agent.errors import ReconciliationCodecError
from agent.ledgersync.idset import ID as ID_DTYPE
from agent.ledgersync.idset import IdSet
from agent.ledgersync.memory import release_freed_memory
from agent.ledgersync.riblt import (
    _KEY_CHECK,
    _KEY_SEED,
    _MULTIPLIER,
    _TWO32,
    CHECKSUM_SIZE,
    ID_SIZE,
    SYMBOL_SIZE,
    Decoder,
    Encoder,
    Symbol,
    _check_id,
    _check_salt,
)
from agent.ledgersync.riblt import _MIX1 as _MIX1_INT
from agent.ledgersync.riblt import _MIX2 as _MIX2_INT

try:
    from agent.ledgersync import _riblt_kernel
except ImportError:  # built without a C compiler: the numpy rounds below, same symbols
    _riblt_kernel = None  # type: ignore[assignment]

__all__ = ["KERNEL", "FastDecoder", "FastEncoder", "fast_decoder"]

KERNEL = "c" if _riblt_kernel is not None else "numpy"

_WORDS = ID_SIZE // 8
_U64 = npt.NDArray[np.uint64]
_I64 = npt.NDArray[np.int64]
_I32 = npt.NDArray[np.int32]
LAST = np.iinfo(np.int32).max  # the wire's u32 indexes would allow twice as many; no session nears either
_MIX1, _MIX2 = np.uint64(_MIX1_INT), np.uint64(_MIX2_INT)
_SHIFTS = (np.uint64(30), np.uint64(27), np.uint64(31))


def _mix(x: _U64) -> _U64:
    """riblt._mix64 on every element (uint64 arithmetic wraps as the reference's mask does)."""
    x = x ^ (x >> _SHIFTS[0])
    x = x * _MIX1
    x = x ^ (x >> _SHIFTS[1])
    x = x * _MIX2
    return x ^ (x >> _SHIFTS[2])


# One symbol as it is laid out on the wire (see riblt.encode_batch): 41 packed bytes. Id and
# checksum words are native-endian here because they hold the wire's bytes as they are.
_WIRE = np.dtype([("id", "=u8", (_WORDS,)), ("checksum", "=u8"), ("count", "u1")])
assert _WIRE.itemsize == SYMBOL_SIZE
TRIM_FROM = 1 << 17  # sets this large return their temporaries after each batch (a trim costs ~1 ms)
CHUNK = 1 << 14  # ids per vectorised step: bounds the temporaries, large enough to amortise numpy calls
# Ids the kernel walks between two looks at compute_ahead's stop flag: at a million ids and 16,384
# symbols about 9 ms of work, the longest a requester waits for the thread once the reply is in.
AHEAD_PART = 1 << 15


class FastEncoder(Encoder):
    """``riblt.Encoder`` with vectorised symbol production; accepted by ``riblt.Decoder`` as is.

    The set is an ``IdSet`` (given, or built from any iterable of ids); ``salt``, ``produced``,
    ``len``, ``in``, ``add`` and ``remove`` behave as the pure encoder's.
    """

    def __init__(
        self, ids: IdSet | Iterable[bytes], salt: bytes, *, chunk: int = CHUNK, kernel: str = KERNEL
    ) -> None:
        # Not Encoder.__init__: it would hold every id as a Python object.
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        if kernel not in {"c", "numpy"} or (kernel == "c" and _riblt_kernel is None):
            raise ValueError(f"kernel {kernel!r}: this process has {KERNEL!r} (and 'numpy')")
        self.chunk = chunk
        self.kernel = kernel
        self.salt = _check_salt(salt)
        self._produced = 0
        self._set = ids if isinstance(ids, IdSet) else IdSet.of(_check_id(i) for i in ids)
        self._checks: _U64 = np.zeros(0, dtype=np.uint64)
        self._seeds: _U64 = np.zeros(0, dtype=np.uint64)
        self._next: _I32 = np.zeros(0, dtype=np.int32)
        self._prepared = False
        self._prepare_lock = threading.Lock()
        # Symbols [0, len(counts)) computed ahead over the ids before position `reach` of the layout
        # (see _encode_part): cells, counts, reach.
        self._ahead: tuple[_U64, _I64, int] | None = None

    @property
    def ids(self) -> IdSet:
        return self._set

    def __len__(self) -> int:
        return len(self._set)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._set

    def add(self, tx_id: bytes) -> None:
        """Add an id to the set; only before the first symbol is produced."""
        self._check_not_started("add")
        self._set = self._set.union(IdSet.of([_check_id(tx_id)]))

    def remove(self, tx_id: bytes) -> None:
        """Remove an id from the set (KeyError if absent); only before the first symbol is produced."""
        self._check_not_started("remove")
        if tx_id not in self._set:
            raise KeyError(tx_id)
        self._set = self._set.difference(IdSet.of([tx_id]))

    def _words(self, start: int, stop: int) -> _U64:
        """Ids start to stop - 1 as (n, 4) words holding their bytes unchanged (a view when it can be)."""
        words: _U64 = self._set.chunk(start, stop).view(np.uint64).reshape(-1, _WORDS)
        return words

    def prepare(self) -> None:
        """Hash every id once, if not done yet; a requester runs it while the responder does the same.

        The C kernel keeps no state between batches (it hashes as it walks): nothing to prepare.
        """
        if self.kernel == "c":
            return
        with self._prepare_lock:
            if not self._prepared:
                self._prepare()
                self._prepared = True

    def _prepare(self) -> None:
        """Hash every id once (riblt._keyed_digest over whole chunks) and put all ids at index 0."""
        count = len(self._set)
        k0, k1 = (np.uint64(k) for k in struct.unpack(">2Q", self.salt))
        key_check, key_seed = k0 ^ np.uint64(_KEY_CHECK), k1 ^ np.uint64(_KEY_SEED)
        self._checks = np.empty(count, dtype=np.uint64)
        self._seeds = np.empty(count, dtype=np.uint64)
        for lo in range(0, count, self.chunk):
            # The ids' big-endian words as numbers, as riblt.struct.unpack(">4Q") reads them.
            words = np.ascontiguousarray(self._set.chunk(lo, lo + self.chunk)).view(">u8").reshape(-1, _WORDS)
            hi = lo + len(words)
            h = _mix(k0 ^ words[:, 0])
            h = _mix(h ^ words[:, 1])
            h = _mix(h ^ words[:, 2] ^ k1)
            h = _mix(h ^ words[:, 3])
            # The checksum as the wire carries it (its big-endian bytes); the seed as a number.
            self._checks[lo:hi] = _mix(h ^ key_check).astype(">u8").view(np.uint64)
            self._seeds[lo:hi] = _mix(h ^ key_seed)
        self._seeds |= np.uint64(1)
        self._next = np.zeros(count, dtype=np.int32)

    def _accumulate(self, n: int) -> tuple[_U64, _I64]:
        """XOR words (shape (5, n): four of the id, then the checksum) and counts of the next n symbols
        (the numpy rounds; the C kernel's path is accumulate_into)."""
        start = self._produced
        counts = np.zeros(n, dtype=np.int64)
        acc = np.zeros((_WORDS + 1, n), dtype=np.uint64)
        for lo in range(0, len(self._next), self.chunk):
            hi = lo + self.chunk
            self._accumulate_chunk(acc, counts, self._words(lo, hi), self._checks[lo:hi], lo, start, n)
        return acc, counts

    def _positions(self) -> int:
        """How many positions the kernel walks over: the layout's ids (all, or under a mask) or picks."""
        base, picked = self._set.layout()
        return len(base) if picked is None or picked.dtype.itemsize == 1 else len(picked)

    def _encode_part(self, lo: int, hi: int, start: int, cells: _U64, counts: _I64) -> None:
        """The C kernel over positions [lo, hi) of the layout only: XOR symbols [start, start + len(counts))
        of those ids into cells (a row each) and add their counts. The set's symbols are the XOR of
        its parts', so the ids can be walked a part at a time, in any number of calls."""
        if lo >= hi or not len(counts):
            return
        base, picked = self._set.layout()
        if picked is None:
            base = base[lo:hi]
        elif picked.dtype.itemsize == 1:  # a mask over base: both sliced alike
            base, picked = base[lo:hi], picked[lo:hi]
        else:  # positions into base
            picked = picked[lo:hi]
        k0, k1 = struct.unpack(">2Q", self.salt)
        _riblt_kernel.encode(base, picked, k0, k1, start, cells, counts)

    def _accumulate_chunk(
        self, acc: _U64, counts: _I64, words: _U64, checks: _U64, lo: int, start: int, n: int
    ) -> None:
        end = start + n
        seeds, nxt = self._seeds[lo : lo + len(checks)], self._next[lo : lo + len(checks)]
        multiplier = np.uint64(_MULTIPLIER)
        live = np.flatnonzero(nxt < end)
        while live.size:
            index = nxt[live].astype(np.int64)
            slot = index - start
            if live.size == nxt.size and not index.any():  # the first round: all ids at symbol 0
                acc[:_WORDS, 0] ^= np.bitwise_xor.reduce(words, axis=0)
                acc[_WORDS, 0] ^= np.bitwise_xor.reduce(checks)
            else:
                for lane in range(_WORDS):
                    np.bitwise_xor.at(acc[lane], slot, words[live, lane])
                np.bitwise_xor.at(acc[_WORDS], slot, checks[live])
            counts += np.bincount(slot, minlength=n)
            state = seeds[live] * multiplier  # wraps modulo 2**64, as the reference's "& _MASK64"
            seeds[live] = state
            # The reference: i + (ceil(((i + 1.5) * 2**32) / sqrt(state) - (i + 1.5)) or 1).
            base = index.astype(np.float64) + 1.5
            gap = np.ceil(base * _TWO32 / np.sqrt(state.astype(np.float64)) - base).astype(np.int64)
            gap[gap == 0] = 1
            index += gap
            # Indexes past LAST are never produced (see _wire): kept as LAST, they fit 4 bytes an id.
            nxt[live] = np.minimum(index, LAST)
            live = live[index < end]

    def next_batch_bytes(self, n: int) -> bytes:
        """The next ``n`` symbols already serialised as ``riblt.encode_batch`` bodies (no header)."""
        return self._wire(n).tobytes()

    def compute_ahead(self, n: int, stop: threading.Event | None = None) -> None:
        """Compute symbols [0, n) now, to be served by the next calls (the C kernel only), a part of
        the ids at a time (AHEAD_PART) until stop is set.

        A requester runs it while the responder builds its first batch, whose size it cannot know,
        and sets stop when the reply comes: the ids walked by then are served from here, the rest
        are walked only as far as the batch needs (at a million ids, 16,384 symbols take about
        0.28 s, one symbol 0.02 s: an equal set's reply comes long before a whole walk to 16,384).
        """
        if self.kernel != "c" or self._produced or n <= 0:
            return
        n = min(n, LAST)
        cells, counts = np.zeros((n, _WORDS + 1), dtype=np.uint64), np.zeros(n, dtype=np.int64)
        total, reach = self._positions(), 0
        while reach < total and not (stop is not None and stop.is_set()):
            part = min(reach + AHEAD_PART, total)
            self._encode_part(reach, part, 0, cells, counts)
            reach = part
        self._ahead = cells, counts, reach  # cells: a row of four id words and the checksum each

    def _check_range(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self._produced + n > LAST:
            raise ValueError(
                f"symbols past index {LAST - 1} are not produced (asked up to {self._produced + n})"
            )

    def _wire(self, n: int) -> npt.NDArray[np.void]:
        self._check_range(n)
        if self.kernel == "c":  # from what was computed ahead, or walked now
            cells, counts = np.zeros((n, _WORDS + 1), dtype=np.uint64), np.zeros(n, dtype=np.int64)
            self.accumulate_into(cells, counts)
            out = self._pack(cells.T, counts)
        else:
            if self._produced == 0 and n:
                self.prepare()
            acc, counts = self._accumulate(n)
            out = self._pack(acc, counts)
            self._produced += n
        if len(self._set) >= TRIM_FROM:
            release_freed_memory()  # the rounds' temporaries, else kept by glibc between batches
        return out

    def accumulate_into(self, cells: _U64, counts: _I64) -> None:
        """XOR the next len(counts) symbols into cells, a row of four id words and the checksum each
        (the kernel's layout), and add their counts to counts: no array of their own (C kernel only).

        What was computed ahead serves the ids it reached, for the symbols it holds; those ids are
        walked for the symbols past it, the ids it did not reach for all of them.
        """
        n = len(counts)
        if self.kernel != "c":
            raise ValueError("accumulate_into needs the C kernel")
        self._check_range(n)
        if not n or not len(self._set):
            self._produced += n
            return
        start, end, total = self._produced, self._produced + n, self._positions()
        ahead = self._ahead
        if ahead is not None and start < len(ahead[1]):
            ahead_cells, ahead_counts, reach = ahead
            held = min(end, len(ahead_counts))
            cells[: held - start] ^= ahead_cells[start:held]
            counts[: held - start] += ahead_counts[start:held]
            self._encode_part(0, reach, held, cells[held - start :], counts[held - start :])
            self._encode_part(reach, total, start, cells, counts)
            if held == len(ahead_counts):
                self._ahead = None  # all it held is served
        else:
            self._ahead = None
            self._encode_part(0, total, start, cells, counts)
        self._produced += n

    def _pack(self, acc: _U64, counts: _I64) -> npt.NDArray[np.void]:
        n = len(counts)
        out = np.zeros(n, dtype=_WIRE)
        out["id"] = acc[:_WORDS].T
        out["checksum"] = acc[_WORDS]
        out["count"] = counts & 0xFF
        return out

    def next_symbols(self, n: int) -> list[Symbol]:
        """The next ``n`` symbols, indexes ``produced`` to ``produced + n - 1``."""
        data = self._wire(n).tobytes()
        checksum_end = ID_SIZE + CHECKSUM_SIZE
        return [
            Symbol(data[o : o + ID_SIZE], data[o + ID_SIZE : o + checksum_end], data[o + checksum_end])
            for o in range(0, len(data), SYMBOL_SIZE)
        ]


class FastDecoder(Decoder):
    """``riblt.Decoder``'s results, the difference peeled by the C kernel (``_riblt_kernel.peel``).

    The pure decoder peels in Python, about 30 microseconds an id (0.3 s for 10,000). Here the
    difference symbols (remote minus local) are kept in the layout the kernel peels, in place: a
    new batch has the ids found so far taken out of it (the kernel's encoder over them, for its
    range) and is peeled with the rest. Peeling ends in the same state whatever the order, so the
    result is the pure decoder's; nothing is copied or peeled again from scratch (at 100,000
    differences the copy alone was 5.6 MB).
    """

    def __init__(self, local: FastEncoder) -> None:  # not Decoder.__init__: no per-id Python state
        if local.produced:
            raise ValueError(f"the local encoder must be fresh; it already produced {local.produced} symbols")
        self._fast = local
        self._salt = local.salt
        # Remote minus local, as the kernel's encode lays them out: rows [0, _used) of buffers with
        # room (`reserve`), so that a batch is written in place, not concatenated to the others.
        self._diff_cells = np.zeros((0, _WORDS + 1), dtype=np.uint64)
        self._diff_counts = np.zeros(0, dtype=np.uint8)  # modulo 256
        self._used = 0
        self._decoded = False
        # What the peels found: ids and which side holds each (+1 remote, -1 local), as arrays:
        # a difference of 100,000 as two Python sets of bytes took some 13 MB more.
        self._found = np.empty(0, dtype=ID_DTYPE)
        self._signs = np.empty(0, dtype=np.int8)

    @property
    def local(self) -> Encoder:
        return self._fast

    @property
    def symbols_used(self) -> int:
        return self._used

    @property
    def decoded(self) -> bool:
        return self._decoded

    def remote_only(self) -> set[bytes]:
        return set(self.remote_only_ids())

    def local_only(self) -> set[bytes]:
        return set(self.local_only_ids())

    def remote_only_ids(self) -> IdSet:
        """remote_only as an IdSet (one array, no object an id)."""
        return IdSet.from_array(self._found[self._signs > 0])

    def local_only_ids(self) -> IdSet:
        return IdSet.from_array(self._found[self._signs < 0])

    def add_remote(self, symbols: Sequence[Symbol], start_index: int | None = None) -> bool:
        body = b"".join(s.id_xor + s.checksum + bytes((s.count,)) for s in symbols)
        return self.add_remote_bytes(body, self.symbols_used if start_index is None else start_index)

    def add_remote_bytes(self, body: bytes | memoryview, start_index: int) -> bool:
        """``add_remote`` for a batch's symbols as the wire carries them (``check_batch`` first)."""
        self.subtract(body, start_index)
        return self.peel()

    def reserve(self, symbols: int) -> None:
        """Room for this many symbols in all (memory is taken only as batches fill it)."""
        if symbols <= len(self._diff_counts):
            return
        cells = np.empty((symbols, _WORDS + 1), dtype=np.uint64)
        counts = np.empty(symbols, dtype=np.uint8)
        cells[: self._used], counts[: self._used] = (
            self._diff_cells[: self._used],
            self._diff_counts[: self._used],
        )
        self._diff_cells, self._diff_counts = cells, counts

    def subtract(self, body: bytes | memoryview, start_index: int) -> None:
        """Take a batch's symbols minus ours into the difference; `peel` then decodes. Apart, so that
        the caller can let the batch go first (100,000 differences: 5.7 MB of symbols).

        In place: the batch is copied into the buffer's next rows, and our symbols and the ids found
        so far are XORed into them there, by the kernel, with no array of symbols of their own.
        """
        if start_index != self._used:
            raise ReconciliationCodecError(
                "start_index",
                f"expected symbol {self._used} next, got a batch starting at {start_index}",
            )
        remote = np.frombuffer(body, dtype=_WIRE)
        n = len(remote)
        if self._used + n > len(self._diff_counts):
            self.reserve(max(self._used + n, len(self._diff_counts) + len(self._diff_counts) // 2))
        cells = self._diff_cells[self._used : self._used + n]
        cells[:, :_WORDS] = remote["id"]
        cells[:, _WORDS] = remote["checksum"]
        times = np.zeros(n, dtype=np.int64)
        self._fast.accumulate_into(cells, times)
        counts = remote["count"] - times.astype(np.uint8)  # uint8: modulo 256, as the wire's counts
        del remote
        k0, k1 = struct.unpack(">2Q", self._salt)
        for sign in (1, -1):  # the ids found so far leave these symbols too
            side = (self._signs == sign).view(np.uint8)  # a mask: the kernel reads _found in place
            if side.any():
                times[:] = 0
                _riblt_kernel.encode(self._found, side, k0, k1, start_index, cells, times)
                counts -= (sign * times).astype(np.uint8)
        self._diff_counts[self._used : self._used + n] = counts
        self._used += n

    def peel(self) -> bool:
        """Peel the symbols received so far, in place; whether the difference is decoded."""
        m = self._used
        cells, counts = self._diff_cells[:m], self._diff_counts[:m]
        ids = np.empty(m, dtype=ID_DTYPE)
        signs = np.empty(m, dtype=np.int8)
        k0, k1 = struct.unpack(">2Q", self._salt)
        found = _riblt_kernel.peel(cells, counts, k0, k1, ids, signs)
        # An id found in an earlier peel can come again only from forged symbols, which then do not
        # decode; the sets made of _found (np.unique) are distinct whatever happens.
        self._found = np.concatenate([self._found, ids[:found]])
        self._signs = np.concatenate([self._signs, signs[:found]])
        del ids, signs
        self._decoded = m > 0 and not cells[0].any() and counts[0] == 0
        return self._decoded

    def differences(self) -> tuple[IdSet, IdSet]:
        """(remote only, local only) once decoded; the symbols' buffers go now, no longer needed."""
        self._diff_cells, self._diff_counts = self._diff_cells[:0].copy(), self._diff_counts[:0].copy()
        remote, local = self.remote_only_ids(), self.local_only_ids()
        self._found, self._signs = self._found[:0], self._signs[:0]
        return remote, local


def fast_decoder(ids: IdSet | Iterable[bytes], salt: bytes) -> Decoder:
    """A decoder over a ``FastEncoder`` of the local ids: peeling in C where the kernel is built."""
    encoder = FastEncoder(ids, salt)
    return FastDecoder(encoder) if encoder.kernel == "c" else Decoder(encoder)

"""A numpy encoder for the rateless IBLT, symbol for symbol identical to ``riblt.Encoder``.

``riblt.Encoder`` spends its time in a Python loop over every (id, index) pair; here all ids advance
together. Ids are held as five uint64 lanes (four big-endian words of the id, then the checksum).
For symbols ``[start, end)``, every id whose next index is below ``end`` is XORed into that symbol,
then its PRNG state and index advance; the round repeats over the ids still below ``end``. The
index step is the reference's float formula evaluated in the same order on float64, so the indexes,
and hence the symbols, are bit-identical (the tests compare them with the pure encoder).

Each ``next_symbols`` call scans the N next indexes once, so many tiny batches over a large set cost
O(N) each; batches of 64 or more, as the protocol sends, amortise that.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import numpy as np
import numpy.typing as npt

from agent.ledgersync.riblt import (
    _MULTIPLIER,
    _TWO32,
    CHECKSUM_SIZE,
    ID_SIZE,
    SYMBOL_SIZE,
    Decoder,
    Encoder,
    Symbol,
)

__all__ = ["FastEncoder", "fast_decoder"]

_LANES = ID_SIZE // 8 + 1  # four id words, then the checksum
_U64 = npt.NDArray[np.uint64]
_I64 = npt.NDArray[np.int64]
# One symbol as it is laid out on the wire (see riblt.encode_batch): 41 packed bytes.
_WIRE = np.dtype([("id", ">u8", (ID_SIZE // 8,)), ("checksum", ">u8"), ("count", "u1")])
assert _WIRE.itemsize == SYMBOL_SIZE


class FastEncoder(Encoder):
    """``riblt.Encoder`` with vectorised symbol production; accepted by ``riblt.Decoder`` as is.

    It inherits the id set, ``salt``, ``produced``, ``len``, ``in``, ``add`` and ``remove``, and
    replaces only ``next_symbols``; per-id state lives in numpy arrays built on the first call.
    """

    def __init__(self, ids: Iterable[bytes], salt: bytes) -> None:
        super().__init__(ids, salt)
        self._lanes: _U64 = np.zeros((_LANES, 0), dtype=np.uint64)
        self._seeds: _U64 = np.zeros(0, dtype=np.uint64)
        self._next: _I64 = np.zeros(0, dtype=np.int64)

    def _prepare(self) -> None:
        """Hash every id once (the only per-id Python loop) and put all ids at index 0."""
        count = len(self._ids)
        salt = self.salt
        keyed = blake2b(key=salt, digest_size=16).copy  # copying the keyed state skips re-keying

        def digest(tx_id: bytes) -> bytes:
            h = keyed()
            h.update(tx_id)
            return h.digest()

        digests = b"".join([digest(i) for i in self._ids])
        words = np.frombuffer(b"".join(self._ids), dtype=">u8").reshape(count, ID_SIZE // 8)
        halves = np.frombuffer(digests, dtype=">u8").reshape(count, 2)
        lanes = np.empty((_LANES, count), dtype=np.uint64)
        lanes[: ID_SIZE // 8] = words.T
        lanes[ID_SIZE // 8] = halves[:, 0]
        self._lanes = lanes
        self._seeds = halves[:, 1].astype(np.uint64) | np.uint64(1)
        self._next = np.zeros(count, dtype=np.int64)

    def _accumulate(self, n: int) -> tuple[_U64, _I64]:
        """XOR lanes (shape (5, n)) and counts of symbols ``produced .. produced + n - 1``."""
        start = self._produced
        end = start + n
        acc = np.zeros((_LANES, n), dtype=np.uint64)
        counts = np.zeros(n, dtype=np.int64)
        lanes, seeds, nxt = self._lanes, self._seeds, self._next
        multiplier = np.uint64(_MULTIPLIER)
        live = np.flatnonzero(nxt < end)
        while live.size:
            index = nxt[live]
            slot = index - start
            if live.size == nxt.size and not index.any():
                acc[:, 0] = np.bitwise_xor.reduce(lanes, axis=1)  # the first round: all ids at 0
            else:
                for lane in range(_LANES):
                    np.bitwise_xor.at(acc[lane], slot, lanes[lane, live])
            counts += np.bincount(slot, minlength=n)
            state = seeds[live] * multiplier  # wraps modulo 2**64, as the reference's "& _MASK64"
            seeds[live] = state
            # The reference: i + (ceil(((i + 1.5) * 2**32) / sqrt(state) - (i + 1.5)) or 1).
            base = index.astype(np.float64) + 1.5
            gap = np.ceil(base * _TWO32 / np.sqrt(state.astype(np.float64)) - base).astype(np.int64)
            gap[gap == 0] = 1
            index += gap
            nxt[live] = index
            live = live[index < end]
        return acc, counts

    def next_batch_bytes(self, n: int) -> bytes:
        """The next ``n`` symbols already serialised as ``riblt.encode_batch`` bodies (no header)."""
        return self._wire(n).tobytes()

    def _wire(self, n: int) -> npt.NDArray[np.void]:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if self._produced == 0 and n:
            self._prepare()
        acc, counts = self._accumulate(n)
        out = np.zeros(n, dtype=_WIRE)
        out["id"] = acc[: ID_SIZE // 8].T
        out["checksum"] = acc[ID_SIZE // 8]
        out["count"] = counts & 0xFF
        self._produced += n
        return out

    def next_symbols(self, n: int) -> list[Symbol]:
        """The next ``n`` symbols, indexes ``produced`` to ``produced + n - 1``."""
        data = self._wire(n).tobytes()
        checksum_end = ID_SIZE + CHECKSUM_SIZE
        return [
            Symbol(data[o : o + ID_SIZE], data[o + ID_SIZE : o + checksum_end], data[o + checksum_end])
            for o in range(0, len(data), SYMBOL_SIZE)
        ]


def fast_decoder(ids: Iterable[bytes], salt: bytes) -> Decoder:
    """``riblt.Decoder.from_ids`` with the local symbols produced by a ``FastEncoder``."""
    return Decoder(FastEncoder(ids, salt))

"""Growable arrays of non-negative ints kept as narrow as their values: uint8, widened as needed.

Counts per transaction (inputs, relevant outputs) and output indexes are almost always below 256,
yet may reach 65,535; kept as uint16 they took twice the bytes they need (4 MB more at a million
transactions, on the consistency check's peak). An array starts at uint8 and is copied once into
a wider type when a value does not fit.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import numpy.typing as npt

# array.array's unsigned type codes, narrowest first, with the numpy type of each.
_CODES = (("B", np.uint8), ("H", np.uint16), ("I", np.uint32))


class NarrowInts:
    """An array.array of non-negative ints in the narrowest of uint8, uint16 and uint32 that holds them."""

    def __init__(self, width: int = 0) -> None:
        self._width = width
        self._data = array(_CODES[width][0])

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(_CODES[self._width][1])

    def __len__(self) -> int:
        return len(self._data)

    def extend(self, values: npt.ArrayLike) -> None:
        """Append these values (an array.array or numpy array of non-negative ints)."""
        values = np.asarray(values)
        if not len(values):
            return
        top, low = int(values.max()), int(values.min())
        if low < 0:
            raise ValueError(f"NarrowInts holds non-negative ints, not {low}")
        while top > np.iinfo(self.dtype).max:
            if self._width + 1 == len(_CODES):
                raise ValueError(f"{top} does not fit in 32 bits")
            self._widen()
        self._data.frombytes(values.astype(self.dtype, copy=False).tobytes())

    def _widen(self) -> None:
        old = np.frombuffer(self._data, dtype=self.dtype) if len(self._data) else np.empty(0, self.dtype)
        self._width += 1
        wider = array(_CODES[self._width][0])
        wider.frombytes(old.astype(self.dtype).tobytes())
        self._data = wider

    def numpy(self) -> npt.NDArray[Any]:
        """The values without a copy (the array can no longer grow while this view lives)."""
        if not len(self._data):
            return np.empty(0, dtype=self.dtype)
        return np.frombuffer(self._data, dtype=self.dtype)

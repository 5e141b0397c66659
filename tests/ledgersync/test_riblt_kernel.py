"""The C kernel of the numpy encoder: built here, identical to the numpy rounds, and strict with its input."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledgersync.idset import IdSet
from agent.ledgersync.riblt_numpy import KERNEL, FastEncoder

SALT = bytes(range(16))


def test_the_kernel_is_built_where_the_tests_run() -> None:
    # CI builds it (`pip install -e .` with a C compiler); without it every encoder here would
    # silently take the numpy path and the kernel would go untested.
    assert KERNEL == "c"
    from agent.ledgersync import _riblt_kernel

    assert _riblt_kernel.accumulate.__doc__


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(1, 2000),
    keep=st.floats(0.05, 1.0),
    wide=st.booleans(),
    batches=st.lists(st.integers(0, 400), min_size=1, max_size=5),
)
def test_a_selection_of_the_graphs_ids_encodes_as_the_numpy_rounds_do(
    seed: int, size: int, keep: float, wide: bool, batches: list[int]
) -> None:
    # The set for a pair is positions into the graph's ids (int32 there; int64 is accepted too),
    # in ascending id order, not the base's order: the kernel reads the ids through them in place.
    rng = random.Random(seed)
    base = np.frombuffer(rng.randbytes(32 * size), dtype="S32").copy()
    chosen = [i for i in range(size) if rng.random() < keep] or [0]
    order = np.array(sorted(chosen, key=lambda i: base[i].tobytes() + bytes(32 - len(base[i]))))
    picked = order.astype(np.int64 if wide else np.int32)
    ids = IdSet(base, picked)
    c, numpy = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="numpy")
    for n in batches:
        assert c.next_batch_bytes(n) == numpy.next_batch_bytes(n)


def test_a_far_batch_matches() -> None:
    ids = IdSet.of(random.Random(1).randbytes(32) for _ in range(300))
    c, numpy = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="numpy")
    assert c.next_batch_bytes(50_000) == numpy.next_batch_bytes(50_000)


def arrays(count: int) -> dict[str, np.ndarray]:
    return {
        "ids": np.zeros(count, dtype="S32"),
        "checks": np.zeros(count, dtype=np.uint64),
        "seeds": np.ones(count, dtype=np.uint64),
        "nxt": np.zeros(count, dtype=np.int32),
        "acc": np.zeros((4, 5), dtype=np.uint64),
        "counts": np.zeros(4, dtype=np.int64),
    }


def call(a: dict[str, np.ndarray], picked: object = None, start: int = 0) -> None:
    from agent.ledgersync import _riblt_kernel

    _riblt_kernel.accumulate(
        a["ids"], picked, a["checks"], a["seeds"], a["nxt"], start, a["acc"], a["counts"]
    )


def test_the_kernel_counts_every_id_at_symbol_zero() -> None:
    a = arrays(3)
    call(a)
    assert a["counts"][0] == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.update(checks=np.zeros(2, dtype=np.uint64)), "must hold 3 items"),
        (lambda a: a.update(counts=np.zeros(3, dtype=np.int64)), "acc holds 4 symbols, counts 3"),
        (lambda a: a.update(ids=np.zeros(3 * 32 - 1, dtype=np.uint8)), "whole number of 32-byte"),
    ],
)
def test_mismatched_arrays_are_refused(change: object, message: str) -> None:
    a = arrays(3)
    change(a)  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        call(a)


def test_positions_outside_the_ids_are_refused_before_any_is_read() -> None:
    a = arrays(3)
    with pytest.raises(IndexError, match=r"picked\[1\] = 7 is outside the 3 ids"):
        call(a, np.array([0, 7, 1], dtype=np.int32))
    assert not a["counts"].any()


def test_read_only_state_and_bad_position_types_are_refused() -> None:
    a = arrays(3)
    a["seeds"].setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        call(a)
    with pytest.raises(ValueError, match="int32 or int64"):
        call(arrays(3), np.zeros(3, dtype=np.int16))
    with pytest.raises(ValueError, match="start"):
        call(arrays(3), start=-1)

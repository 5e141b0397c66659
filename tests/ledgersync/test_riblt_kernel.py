"""The C kernel: built here, its symbols and peeling identical to the numpy and pure codecs', strict with its input."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ReconciliationCodecError
from agent.ledgersync import riblt_numpy
from agent.ledgersync.idset import IdSet
from agent.ledgersync.riblt import Decoder, Encoder, Symbol
from agent.ledgersync.riblt_numpy import KERNEL, FastDecoder, FastEncoder

SALT = bytes(range(16))


def test_the_kernel_is_built_where_the_tests_run() -> None:
    # CI builds it (`pip install -e .` with a C compiler); without it every encoder here would
    # silently take the numpy path and the kernel would go untested.
    assert KERNEL == "c"
    from agent.ledgersync import _riblt_kernel

    assert _riblt_kernel.encode.__doc__


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


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(1, 2000),
    keep=st.floats(0.0, 1.0),
    sorted_base=st.booleans(),
    batches=st.lists(st.integers(0, 400), min_size=1, max_size=5),
)
def test_a_masked_selection_encodes_as_its_positions_do(
    seed: int, size: int, keep: float, sorted_base: bool, batches: list[int]
) -> None:
    # The set for a pair as the graph hands it out: a mask over its ids, which the kernel walks in
    # the ids' own order; the numpy rounds read the same set through positions in id order.
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(size, 32), dtype=np.uint8).view("S32").reshape(-1)
    base = np.unique(base) if sorted_base else base[np.unique(base, return_index=True)[1]]
    order = None if sorted_base else np.argsort(base, kind="stable").astype(np.int32)
    mask = rng.random(len(base)) < keep
    masked = IdSet.masked(base, mask, order)
    assert masked.layout()[1] is mask  # read in place, no positions made
    c = FastEncoder(masked, SALT, kernel="c")
    numpy = FastEncoder(IdSet(np.sort(base[mask])), SALT, kernel="numpy")
    for n in batches:
        assert c.next_batch_bytes(n) == numpy.next_batch_bytes(n)


def test_a_mask_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="a mask of 2 bytes for 3 ids"):
        call(3, np.array([True, False]))


def test_a_far_batch_matches() -> None:
    ids = IdSet.of(random.Random(1).randbytes(32) for _ in range(300))
    c, numpy = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="numpy")
    assert c.next_batch_bytes(50_000) == numpy.next_batch_bytes(50_000)


def call(count: int = 3, picked: object = None, start: int = 0, symbols: int = 4, **change: object) -> object:
    from agent.ledgersync import _riblt_kernel

    a: dict[str, object] = {
        "ids": np.zeros(count, dtype="S32"),
        "acc": np.zeros((symbols, 5), dtype=np.uint64),
        "counts": np.zeros(symbols, dtype=np.int64),
    }
    a.update(change)
    _riblt_kernel.encode(a["ids"], picked, 1, 2, start, a["acc"], a["counts"])
    return a["counts"]


def test_every_id_maps_to_symbol_zero() -> None:
    counts = call(3)
    assert isinstance(counts, np.ndarray) and counts[0] == 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"counts": np.zeros(3, dtype=np.int64)}, "acc holds 4 symbols, counts 3"),
        ({"ids": np.zeros(3 * 32 - 1, dtype=np.uint8)}, "whole number of 32-byte"),
        ({"acc": np.zeros((4, 4), dtype=np.uint64)}, "whole number of 40-byte"),
    ],
)
def test_mismatched_arrays_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(**change)


def test_positions_outside_the_ids_are_refused_before_any_is_read() -> None:
    counts = np.zeros(4, dtype=np.int64)
    with pytest.raises(IndexError, match=r"picked\[1\] = 7 is outside the 3 ids"):
        call(3, np.array([0, 7, 1], dtype=np.int32), counts=counts)
    assert not counts.any()


def test_read_only_output_and_bad_arguments_are_refused() -> None:
    acc = np.zeros((4, 5), dtype=np.uint64)
    acc.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        call(acc=acc)
    with pytest.raises(ValueError, match="int32 or int64"):
        call(3, np.zeros(3, dtype=np.int16))
    with pytest.raises(ValueError, match="start"):
        call(start=-1)


@pytest.mark.parametrize("ahead", [0, 1, 50, 400])
def test_symbols_computed_ahead_are_the_symbols(ahead: int) -> None:
    # Served from what was computed ahead while they last, then computed as usual: same stream.
    ids = IdSet.of(random.Random(ahead).randbytes(32) for _ in range(500))
    early, plain = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="c")
    early.compute_ahead(ahead)
    for n in (1, 30, 100, 300, 5):
        assert early.next_batch_bytes(n) == plain.next_batch_bytes(n)
        assert early.produced == plain.produced


class _StopAfter(threading.Event):
    """A stop flag that is set once it has been looked at `parts` times: the reply came then."""

    def __init__(self, parts: int) -> None:
        super().__init__()
        self.looks = parts

    def is_set(self) -> bool:
        self.looks -= 1
        return self.looks < 0


def _layouts(seed: int, size: int) -> list[IdSet]:
    """The same ids as an array of their own, as positions into a larger array, and under a mask."""
    rng = random.Random(seed)
    base = np.array(sorted(rng.randbytes(32) for _ in range(2 * size)), dtype="S32")
    picked = np.array(sorted(rng.sample(range(2 * size), size)), dtype=np.int32)
    mask = np.zeros(2 * size, dtype=bool)
    mask[picked] = True
    return [IdSet.from_array(base[picked]), IdSet(base, picked), IdSet.masked(base, mask, None)]


@pytest.mark.parametrize("layout", [0, 1, 2])
@pytest.mark.parametrize("parts", [0, 1, 3, 100])
@pytest.mark.parametrize("ahead", [1, 50, 400])
def test_symbols_computed_ahead_until_stopped_are_the_symbols(
    layout: int, parts: int, ahead: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stopped after some parts of the ids: those are served from what was computed ahead (and
    # walked further for symbols past it), the others walked now; the stream is the same.
    monkeypatch.setattr(riblt_numpy, "AHEAD_PART", 64)
    ids = _layouts(parts + ahead, 500)[layout]
    early, plain = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="c")
    early.compute_ahead(ahead, _StopAfter(parts))
    assert early._ahead is not None and early._ahead[2] == min(64 * parts, 1000 if layout == 2 else 500)
    for n in (1, 30, 100, 300, 5):
        assert early.next_batch_bytes(n) == plain.next_batch_bytes(n)
        assert early.produced == plain.produced


def test_computing_ahead_is_ignored_once_symbols_were_produced() -> None:
    ids = IdSet.of(random.Random(2).randbytes(32) for _ in range(50))
    early, plain = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="c")
    assert early.next_batch_bytes(3) == plain.next_batch_bytes(3)
    early.compute_ahead(100)
    assert early.next_batch_bytes(20) == plain.next_batch_bytes(20)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    common=st.integers(0, 1500),
    a_only=st.integers(0, 150),
    b_only=st.integers(0, 150),
    batch=st.sampled_from([1, 5, 40, 300]),
    room=st.sampled_from([0, 7, 10_000]),
    ahead=st.sampled_from([0, 100]),
)
def test_the_c_peeler_finds_what_the_pure_decoder_finds_batch_by_batch(
    seed: int, common: int, a_only: int, b_only: int, batch: int, room: int, ahead: int
) -> None:
    # Peeling ends in the same state whatever the order, so even a batch that does not decode
    # leaves both with the same ids found so far. Whatever room was reserved (batches then grow
    # the buffers, or are written in place) and whatever our symbols computed ahead.
    rng = random.Random(seed)
    ids = [rng.randbytes(32) for _ in range(common + a_only + b_only)]
    local, remote_ids = ids[: common + a_only], ids[:common] + ids[common + a_only :]
    ours = FastEncoder(local, SALT)
    ours.compute_ahead(ahead)
    fast, pure = FastDecoder(ours), Decoder.from_ids(local, SALT)
    fast.reserve(room)
    remote = Encoder(remote_ids, SALT)
    while not pure.decoded:
        assert pure.symbols_used < 5_000, "no decode within the limit"
        symbols = remote.next_symbols(batch)
        start = pure.symbols_used
        assert fast.add_remote(symbols, start) == pure.add_remote(symbols, start)
        assert fast.remote_only() == pure.remote_only() and fast.local_only() == pure.local_only()
    assert fast.remote_only() == set(ids[common + a_only :]) and fast.local_only() == set(
        ids[common:][:a_only]
    )
    there, here = fast.differences()
    assert set(there) == set(ids[common + a_only :]) and set(here) == set(ids[common:][:a_only])
    assert fast.symbols_used == pure.symbols_used  # the buffers went, the count stays


@pytest.mark.parametrize("ahead", [0, 60])
def test_symbols_xored_in_place_are_the_symbols(ahead: int) -> None:
    ids = IdSet.of(random.Random(7).randbytes(32) for _ in range(300))
    into, plain = FastEncoder(ids, SALT, kernel="c"), FastEncoder(ids, SALT, kernel="c")
    into.compute_ahead(ahead)
    for n in (1, 40, 200):
        cells, counts = np.zeros((n, 5), dtype=np.uint64), np.zeros(n, dtype=np.int64)
        into.accumulate_into(cells, counts)
        packed = np.zeros(n, dtype=plain._wire(0).dtype)
        packed["id"], packed["checksum"], packed["count"] = cells[:, :4], cells[:, 4], counts & 0xFF
        assert packed.tobytes() == plain.next_batch_bytes(n)
    with pytest.raises(ValueError, match="needs the C kernel"):
        FastEncoder(ids, SALT, kernel="numpy").accumulate_into(cells, counts)


def test_forged_symbols_neither_crash_the_peeler_nor_decode() -> None:
    rng = random.Random(5)
    decoder = FastDecoder(FastEncoder([rng.randbytes(32) for _ in range(100)], SALT))
    forged = [Symbol(rng.randbytes(32), rng.randbytes(8), rng.choice([1, 255, 7])) for _ in range(200)]
    assert decoder.add_remote(forged, 0) is False
    with pytest.raises(ReconciliationCodecError, match="expected symbol 200 next"):
        decoder.add_remote(forged[:1], 0)


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " avx2" in line for line in cpuinfo)
    except OSError:
        return False


def test_the_four_at_once_path_is_on_where_the_processor_has_it() -> None:
    from agent.ledgersync import _riblt_kernel

    assert _riblt_kernel.simd() is _has_avx2()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 3000),
    start=st.integers(0, 600),
    symbols=st.integers(1, 3000),
    mask=st.booleans(),
)
def test_the_four_at_once_path_gives_the_scalar_paths_symbols(
    seed: int, size: int, start: int, symbols: int, mask: bool
) -> None:
    # Block sizes that are and are not multiples of four, ids dropping out of a round at every
    # lane, batches from symbol 0 and later: bit for bit the same cells and counts.
    from agent.ledgersync import _riblt_kernel

    if not _has_avx2():
        pytest.skip("no AVX2 here: there is only the scalar path to compare")
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 256, size=32 * size, dtype=np.uint8)
    picked = (rng.random(size) < 0.8).astype(np.uint8) if mask else None
    k0, k1 = (int(x) for x in rng.integers(0, 2**63, 2))
    results = []
    was = _riblt_kernel.simd()
    try:
        for on in (False, True):
            _riblt_kernel.simd(on)
            acc = np.zeros((symbols, 5), dtype=np.uint64)
            counts = np.zeros(symbols, dtype=np.int64)
            _riblt_kernel.encode(ids, picked, k0, k1, start, acc, counts)
            results.append((acc, counts))
    finally:
        _riblt_kernel.simd(was)
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])

"""The numpy encoder: symbols identical to riblt.Encoder's, and interchangeable with it in decoding."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledgersync.idset import IdSet
from agent.ledgersync.riblt import HEADER_SIZE, SYMBOL_SIZE, Decoder, Encoder, encode_batch
from agent.ledgersync.riblt_numpy import KERNEL, LAST, FastEncoder, fast_decoder

SALT = bytes(range(16))


def random_ids(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(32) for _ in range(count)]


def assert_same_stream(ids: list[bytes], salt: bytes, batches: list[int]) -> None:
    """Both kernels (numpy, and C where built) against the pure encoder, batch by batch."""
    pure = Encoder(ids, salt)
    fast = [FastEncoder(ids, salt, kernel="numpy"), FastEncoder(ids, salt, kernel=KERNEL)]
    for n in batches:
        start = pure.produced
        expected = pure.next_symbols(n)
        for encoder in fast:
            assert encoder.next_symbols(n) == expected, f"{encoder.kernel}: batch of {n} from symbol {start}"
            assert encoder.produced == pure.produced


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 3000),
    salt=st.binary(min_size=16, max_size=16),
    batches=st.lists(st.integers(0, 300), min_size=1, max_size=6),
)
def test_symbols_equal_the_pure_encoders(seed: int, size: int, salt: bytes, batches: list[int]) -> None:
    assert_same_stream(random_ids(seed, size), salt, batches)


@pytest.mark.parametrize("size", [0, 1, 2, 1000, 3000])
def test_fixed_batch_pattern(size: int) -> None:
    assert_same_stream(random_ids(size, size), SALT, [1, 64, 100, 0, 7, 1000, 1])


def test_one_long_batch_matches() -> None:
    # Far indexes: gaps grow with the index, so this exercises the float step well past symbol 0.
    assert_same_stream(random_ids(7, 2000), SALT, [20_000, 5])


def test_duplicates_and_order_do_not_matter() -> None:
    ids = random_ids(3, 500)
    fast = FastEncoder(reversed(ids + ids[:100]), SALT)
    assert len(fast) == 500
    assert fast.next_symbols(300) == Encoder(ids, SALT).next_symbols(300)


def test_add_and_remove_before_the_first_symbol() -> None:
    ids = random_ids(4, 300)
    fast = FastEncoder(ids[:-1], SALT)
    fast.add(ids[-1])
    fast.add(b"\x01" * 32)
    fast.remove(b"\x01" * 32)
    assert fast.next_symbols(200) == Encoder(ids, SALT).next_symbols(200)
    with pytest.raises(RuntimeError):
        fast.add(b"\x02" * 32)


def test_wire_bytes_equal_encode_batch() -> None:
    ids = random_ids(5, 1500)
    fast, pure = FastEncoder(ids, SALT), Encoder(ids, SALT)
    for n in (1, 64, 500):
        start = pure.produced
        body = fast.next_batch_bytes(n)
        assert len(body) == n * SYMBOL_SIZE
        assert encode_batch(pure.next_symbols(n), start)[HEADER_SIZE:] == body


def test_negative_count_is_rejected() -> None:
    with pytest.raises(ValueError):
        FastEncoder([], SALT).next_symbols(-1)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    common=st.integers(0, 3000),
    a_only=st.integers(0, 200),
    b_only=st.integers(0, 200),
    batch=st.sampled_from([1, 7, 64]),
    fast_local=st.booleans(),
)
def test_fast_symbols_decode_with_the_reference_decoder(
    seed: int, common: int, a_only: int, b_only: int, batch: int, fast_local: bool
) -> None:
    ids = random_ids(seed, common + a_only + b_only)
    shared, only_a, only_b = ids[:common], ids[common : common + a_only], ids[common + a_only :]
    local = shared + only_a
    decoder = fast_decoder(local, SALT) if fast_local else Decoder.from_ids(local, SALT)
    remote = FastEncoder(shared + only_b, SALT)
    while not decoder.decoded:
        assert decoder.symbols_used < 10_000, "no decode within the limit"
        decoder.add_remote(remote.next_symbols(batch), start_index=decoder.symbols_used)
    assert decoder.remote_only() == set(only_b)
    assert decoder.local_only() == set(only_a)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    size=st.integers(0, 700),
    chunk=st.integers(1, 300),
    batches=st.lists(st.integers(0, 200), min_size=1, max_size=4),
)
def test_chunked_encoding_from_an_id_set_equals_the_pure_encoders(
    seed: int, size: int, chunk: int, batches: list[int]
) -> None:
    ids = random_ids(seed, size)
    pure = Encoder(ids, SALT)
    fast = [FastEncoder(IdSet.of(ids), SALT, chunk=chunk, kernel=k) for k in ("numpy", KERNEL)]
    for n in batches:
        expected = pure.next_symbols(n)
        assert all(f.next_symbols(n) == expected for f in fast)


def test_an_id_set_is_encoded_in_place() -> None:
    ids = IdSet.of([*random_ids(8, 100), bytes(31) + b"\x01", bytes(32)])  # trailing zero bytes kept
    fast = FastEncoder(ids, SALT)
    assert fast.ids is ids and len(fast) == 102 and bytes(32) in fast
    assert np.shares_memory(fast._words(0, len(ids)), ids.ids)
    assert fast.next_symbols(80) == Encoder(list(ids), SALT).next_symbols(80)
    with pytest.raises(ValueError):
        FastEncoder(ids, SALT, chunk=0)


def test_a_decoder_over_an_id_set() -> None:
    ids = random_ids(9, 1200)
    decoder = fast_decoder(IdSet.of(ids[:1000]), SALT)
    remote = FastEncoder(ids[100:], SALT)
    while not decoder.decoded:
        decoder.add_remote(remote.next_symbols(64), start_index=decoder.symbols_used)
    assert decoder.remote_only() == set(ids[1000:]) and decoder.local_only() == set(ids[:100])


def test_indexes_past_int32_are_refused() -> None:
    fast = FastEncoder(random_ids(10, 5), SALT)
    fast.next_symbols(3)
    fast._produced = LAST - 1  # as if that many symbols had been sent: no session comes close
    with pytest.raises(ValueError, match="not produced"):
        fast.next_symbols(2)

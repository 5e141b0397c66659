"""Rateless IBLT codec: decoding random differences, one-symbol identity, the wire format."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ReconciliationCodecError, SerializationError
from agent.ledgersync.riblt import (
    HEADER_SIZE,
    SALT_SIZE,
    SYMBOL_SIZE,
    Decoder,
    Encoder,
    Symbol,
    _hash_id,
    _next_index,
    decode_batch,
    encode_batch,
    symbols_for_difference,
)

SALT = bytes(range(16))


def make_sets(
    seed: int, common: int, a_only: int, b_only: int
) -> tuple[list[bytes], list[bytes], list[bytes]]:
    rng = random.Random(seed)
    ids = [rng.randbytes(32) for _ in range(common + a_only + b_only)]
    return ids[:common], ids[common : common + a_only], ids[common + a_only :]


def stream(decoder: Decoder, encoder: Encoder, batch: int = 1, limit: int = 100_000) -> None:
    while not decoder.decoded:
        assert decoder.symbols_used < limit, "no decode within the limit"
        decoder.add_remote(encoder.next_symbols(batch), start_index=decoder.symbols_used)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    common=st.integers(0, 3000),
    a_only=st.integers(0, 300),
    b_only=st.integers(0, 300),
    batch=st.sampled_from([1, 7, 64]),
)
def test_streaming_recovers_both_differences(
    seed: int, common: int, a_only: int, b_only: int, batch: int
) -> None:
    shared, only_a, only_b = make_sets(seed, common, a_only, b_only)
    decoder = Decoder.from_ids(shared + only_a, SALT)
    stream(decoder, Encoder(shared + only_b, SALT), batch)
    assert decoder.remote_only() == set(only_b)
    assert decoder.local_only() == set(only_a)
    d = a_only + b_only
    if batch == 1:
        # A broken mapping (wrong density, wrong PRNG step) needs far more than ~1.4 symbols per difference.
        assert decoder.symbols_used < 3 * d + 30


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 3000))
def test_identical_sets_decode_after_one_symbol(seed: int, size: int) -> None:
    shared, _, _ = make_sets(seed, size, 0, 0)
    decoder = Decoder.from_ids(shared, SALT)
    assert decoder.add_remote(Encoder(reversed(shared), SALT).next_symbols(1))
    assert decoder.symbols_used == 1
    assert decoder.remote_only() == set() == decoder.local_only()


def test_mean_symbols_per_difference_is_near_the_paper() -> None:
    ratios = []
    for seed in range(8):
        shared, only_a, only_b = make_sets(seed, 500, 100, 100)
        decoder = Decoder.from_ids(shared + only_a, SALT)
        stream(decoder, Encoder(shared + only_b, SALT))
        ratios.append(decoder.symbols_used / 200)
    assert sum(ratios) / len(ratios) < 1.6 + 20 / 200


def test_mapping_density_is_about_one_over_one_plus_half_index() -> None:
    hits = [0] * 64
    rng = random.Random(1)
    trials = 4000
    for _ in range(trials):
        index, state = 0, rng.getrandbits(64) | 1
        while index < len(hits):
            hits[index] += 1
            index, state = _next_index(index, state)
    assert hits[0] == trials
    for i in (1, 5, 20, 63):
        assert hits[i] / trials == pytest.approx(1 / (1 + i / 2), rel=0.25)


def test_encoder_maps_an_id_to_the_indexes_of_its_sequence() -> None:
    tx_id = bytes(range(32))
    _, seed = _hash_id(tx_id, SALT)
    expected, index, state = [], 0, seed
    while index < 500:
        expected.append(index)
        index, state = _next_index(index, state)
    symbols = Encoder([tx_id], SALT).next_symbols(500)
    assert [i for i, symbol in enumerate(symbols) if not symbol.is_empty] == expected
    assert all(symbols[i].id_xor == tx_id and symbols[i].count == 1 for i in expected)


def test_incremental_equals_one_shot() -> None:
    shared, _, _ = make_sets(3, 1000, 0, 0)
    one_shot = Encoder(shared, SALT).next_symbols(300)
    encoder = Encoder(shared, SALT)
    pieces = [encoder.next_symbols(n) for n in (1, 0, 10, 89, 200)]
    assert [s for piece in pieces for s in piece] == one_shot
    assert encoder.produced == 300


def test_add_and_remove_before_producing() -> None:
    shared, extra, _ = make_sets(4, 100, 2, 0)
    encoder = Encoder([*shared, extra[0]], SALT)
    encoder.add(extra[1])
    encoder.remove(extra[0])
    assert encoder.next_symbols(50) == Encoder([*shared, extra[1]], SALT).next_symbols(50)
    with pytest.raises(RuntimeError):
        encoder.add(extra[0])


def test_different_salts_give_different_symbols() -> None:
    shared, _, _ = make_sets(5, 200, 0, 0)
    first = Encoder(shared, SALT).next_symbols(20)
    second = Encoder(shared, bytes(16)).next_symbols(20)
    assert first[0].id_xor == second[0].id_xor  # every id maps to symbol 0 whatever the salt
    assert first[0].checksum != second[0].checksum
    assert first[1:] != second[1:]


def test_empty_sets() -> None:
    decoder = Decoder.from_ids([], SALT)
    assert not decoder.decoded
    assert decoder.add_remote(Encoder([], SALT).next_symbols(1))
    assert Encoder([], SALT).next_symbols(3)[2].is_empty


def test_decoder_needs_a_fresh_encoder_and_batches_in_order() -> None:
    encoder = Encoder([], SALT)
    encoder.next_symbols(1)
    with pytest.raises(ValueError, match="fresh"):
        Decoder(encoder)
    decoder = Decoder.from_ids([], SALT)
    with pytest.raises(ReconciliationCodecError) as excinfo:
        decoder.add_remote([], start_index=5)
    assert excinfo.value.field == "start_index"


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32), size=st.integers(0, 500), start=st.integers(0, 1000), n=st.integers(0, 80))
def test_wire_round_trip(seed: int, size: int, start: int, n: int) -> None:
    shared, _, _ = make_sets(seed, size, 0, 0)
    encoder = Encoder(shared, SALT)
    encoder.next_symbols(start)
    symbols = encoder.next_symbols(n)
    data = encode_batch(symbols, start)
    assert len(data) == HEADER_SIZE + SYMBOL_SIZE * n
    assert decode_batch(data) == (start, symbols)


def test_wire_sizes() -> None:
    assert SYMBOL_SIZE == 41
    assert HEADER_SIZE == 9
    assert len(encode_batch(Encoder([bytes(32)], SALT).next_symbols(1), 0)) == 50


def test_decoding_through_the_wire() -> None:
    shared, only_a, only_b = make_sets(6, 2000, 30, 40)
    decoder = Decoder.from_ids(shared + only_a, SALT)
    encoder = Encoder(shared + only_b, SALT)
    n = symbols_for_difference(len(only_b) - len(only_a))
    while not decoder.decoded:
        start, symbols = decode_batch(encode_batch(encoder.next_symbols(n), encoder.produced - n))
        decoder.add_remote(symbols, start_index=start)
        n *= 2
    assert (decoder.remote_only(), decoder.local_only()) == (set(only_b), set(only_a))


def _batch(n: int = 2) -> bytes:
    return encode_batch(Encoder(make_sets(7, 50, 0, 0)[0], SALT).next_symbols(n), 0)


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (b"", "header", "truncated"),
        (_batch()[:5], "header", "truncated"),
        (_batch()[:-1], "symbols", "truncated"),
        (_batch()[: HEADER_SIZE + SYMBOL_SIZE], "symbols", "truncated"),
        (_batch() + b"\x00", "symbols", "longer than declared"),
        (b"\x02" + _batch()[1:], "version", "unsupported version 2"),
        (struct.pack(">BII", 1, 0, 10**6), "count", "more than the maximum"),
    ],
)
def test_malformed_batches_raise(data: bytes, field: str, reason: str) -> None:
    with pytest.raises(ReconciliationCodecError) as excinfo:
        decode_batch(data)
    assert excinfo.value.field == field
    assert reason in excinfo.value.reason
    assert isinstance(excinfo.value, SerializationError)


def test_max_symbols_argument() -> None:
    assert len(decode_batch(_batch(3), max_symbols=3)[1]) == 3
    with pytest.raises(ReconciliationCodecError, match="more than the maximum 2"):
        decode_batch(_batch(3), max_symbols=2)


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Symbol(bytes(31), bytes(8), 0), "id_xor"),
        (lambda: Symbol(bytes(32), bytes(9), 0), "checksum"),
        (lambda: Symbol(bytes(32), bytes(8), 256), "count"),
        (lambda: Encoder([bytes(33)], SALT), "id"),
        (lambda: Encoder([], bytes(8)), "salt"),
        (lambda: encode_batch([], 2**32), "start_index"),
    ],
)
def test_bad_values_raise(make: object, field: str) -> None:
    with pytest.raises(ReconciliationCodecError) as excinfo:
        make()  # type: ignore[operator]
    assert excinfo.value.field == field


def test_symbols_for_difference() -> None:
    assert symbols_for_difference(0) == 1
    assert symbols_for_difference(1) == 18  # 1.4 + 2 + 14
    assert symbols_for_difference(-10) == symbols_for_difference(10) == 35  # 14 + 6.32 + 14
    assert symbols_for_difference(1000) == 1478
    # Within twice the 32-byte floor with room for the session's other bytes (the benchmark's bytes
    # goal): 133 bytes measured (begin's salt and size, the reply's keys, a batch header, end).
    for d in (*range(1, 200), 1000, 10_000, 100_000):
        assert symbols_for_difference(d) * SYMBOL_SIZE + 150 <= 2 * 32 * d + 1024, d


@pytest.mark.parametrize("d", [5, 10, 50, 300])
def test_the_first_batch_usually_decodes_a_one_sided_difference(d: int) -> None:
    """In 40 trials (fixed seeds) at least 36 decode from the first batch alone."""
    rng = random.Random(d)
    decoded = 0
    for _ in range(40):
        common = [rng.randbytes(32) for _ in range(300)]
        extra = [rng.randbytes(32) for _ in range(d)]
        salt = rng.randbytes(SALT_SIZE)
        decoder = Decoder.from_ids(common, salt)
        decoder.add_remote(Encoder(common + extra, salt).next_symbols(symbols_for_difference(d)), 0)
        decoded += decoder.decoded
    assert decoded >= 36

"""IdSet: a sorted array of ids that behaves as a set of 32-byte ids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ReconciliationCodecError
from agent.ledger.hashing import SecureHash
from agent.ledgersync.idset import IdSet, Listing, SecureHashes

# Few distinct bytes, so that sets overlap, and ids ending in zero bytes (S32 drops those when
# an element is read as bytes) are common.
ids = st.lists(st.binary(min_size=32, max_size=32).map(lambda b: bytes(x % 3 for x in b)), max_size=40)


@settings(max_examples=200)
@given(a=ids, b=ids)
def test_behaves_as_a_set_of_bytes(a: list[bytes], b: list[bytes]) -> None:
    x, y = IdSet.of(a), IdSet.of(b)
    assert list(x) == sorted(set(a))
    assert len(x) == len(set(a))
    assert set(x - y) == set(a) - set(b)
    assert set(x.difference(y)) == set(a) - set(b)
    assert set(x.union(y)) == set(a) | set(b)
    assert set(IdSet.concatenate([x, y])) == set(a) | set(b)
    assert all(i in x for i in a) and all((i in x) == (i in set(a)) for i in b)
    assert x.tobytes() == b"".join(sorted(set(a)))
    assert IdSet.from_bytes(b"".join(a)) == x
    assert IdSet.from_array(np.frombuffer(b"".join(a), dtype=np.uint8).reshape(-1, 32)) == x
    assert x.array.shape == (len(x), 32) and x.array.dtype == np.uint8
    ordered = sorted(set(a))
    wanted = np.frombuffer(b"".join(b), dtype="S32")
    assert x.rank(wanted).tolist() == [ordered.index(i) if i in ordered else -1 for i in b]


@given(a=ids, offset=st.integers(0, 45), count=st.integers(1, 45))
def test_pages_are_slices_of_the_sorted_ids(a: list[bytes], offset: int, count: int) -> None:
    ordered = sorted(set(a))
    assert IdSet.of(a).page(offset, count) == b"".join(ordered[offset : offset + count])


def test_membership_of_other_things_is_false() -> None:
    x = IdSet.of([bytes(32)])
    assert bytes(32) in x
    assert b"short" not in x and "0" * 64 not in x and bytes(31) not in x
    assert bytes(32) not in IdSet.empty() and len(IdSet.empty()) == 0


@pytest.mark.parametrize("bad", [b"x" * 33, "not bytes", None])
def test_malformed_wire_ids_name_the_field(bad: object) -> None:
    with pytest.raises(ReconciliationCodecError, match="missing"):
        IdSet.from_bytes(bad, "missing")


@settings(max_examples=150)
@given(base=ids, keep=st.lists(st.booleans(), min_size=40, max_size=40), b=ids, chunk=st.integers(1, 9))
def test_a_selection_of_another_array_behaves_as_its_copy(
    base: list[bytes], keep: list[bool], b: list[bytes], chunk: int
) -> None:
    # base in any order, as the graph's ids after incremental adds; picked: positions in id order.
    distinct = np.frombuffer(b"".join(dict.fromkeys(base)), dtype="S32")
    order = np.argsort(distinct, kind="stable")
    picked = order[np.array(keep[: len(order)], dtype=bool)]
    view, copy = IdSet(distinct, picked), IdSet(distinct[picked])
    other = IdSet.of(b)
    assert view == copy and list(view) == list(copy) and len(view) == len(copy)
    assert list(view - other) == list(copy - other)
    assert list(other - view) == list(other - copy)
    assert view.tobytes() == copy.tobytes() and view.page(2, 3) == copy.page(2, 3)
    assert [c.tobytes() for c in view.chunks(chunk)] == [c.tobytes() for c in copy.chunks(chunk)]
    wanted = np.frombuffer(b"".join(b), dtype="S32")
    assert view.contains(wanted).tolist() == copy.contains(wanted).tolist()
    assert view.rank(wanted).tolist() == copy.rank(wanted).tolist()


@settings(max_examples=150)
@given(base=ids, keep=st.lists(st.booleans(), min_size=40, max_size=40), b=ids, shuffled=st.booleans())
def test_a_masked_selection_behaves_as_its_copy(
    base: list[bytes], keep: list[bool], b: list[bytes], shuffled: bool
) -> None:
    # As the graph hands out the set for a pair: a mask over its ids, in arrival order or sorted.
    distinct = np.frombuffer(b"".join(dict.fromkeys(base)), dtype="S32")
    if not shuffled:
        distinct = np.sort(distinct)
    order = np.argsort(distinct, kind="stable") if shuffled else None
    mask = np.array(keep[: len(distinct)], dtype=bool)
    view, copy = IdSet.masked(distinct, mask, order), IdSet(np.sort(distinct[mask]))
    other = IdSet.of(b)
    assert len(view) == len(copy)
    assert list(view - other) == list(copy - other)
    assert list(other - view) == list(other - copy)
    assert view == copy and view.tobytes() == copy.tobytes() and view.page(1, 3) == copy.page(1, 3)
    wanted = np.frombuffer(b"".join(b), dtype="S32")
    assert view.contains(wanted).tolist() == copy.contains(wanted).tolist()
    assert view.rank(wanted).tolist() == copy.rank(wanted).tolist()


@settings(max_examples=150)
@given(
    base=ids,
    keep=st.lists(st.booleans(), min_size=40, max_size=40),
    b=ids,
    form=st.sampled_from(["whole", "picked", "masked", "masked in arrival order", "masked, then picked"]),
    page=st.integers(1, 7),
)
def test_a_listing_in_pages_finds_both_differences(
    base: list[bytes], keep: list[bool], b: list[bytes], form: str, page: int
) -> None:
    # The id-list fallback: their ids come in pages; what they have that we lack, and ours unlisted.
    distinct = np.frombuffer(b"".join(dict.fromkeys(base)), dtype="S32")
    mask = np.array(keep[: len(distinct)], dtype=bool)
    if form == "whole":
        mine = IdSet(np.sort(distinct))
    elif form == "picked":
        mine = IdSet(distinct, np.flatnonzero(mask)[np.argsort(distinct[mask], kind="stable")])
    else:
        shuffled = form == "masked in arrival order"
        held = distinct if shuffled else np.sort(distinct)
        mine = IdSet.masked(held, mask, np.argsort(held, kind="stable") if shuffled else None)
        if form == "masked, then picked":
            mine.chunk(0, 1)  # makes its positions, as a set that was paged from once
    ours = set(mine)
    listing = Listing(mine)
    theirs = b"".join(b)
    for at in range(0, len(theirs), 32 * page):
        listing.add(theirs[at : at + 32 * page])
    assert list(listing.lacking()) == sorted(set(b) - ours)
    assert list(listing.unlisted()) == sorted(ours - set(b))
    wanted = np.frombuffer(theirs, dtype="S32")
    found = mine.base_positions(wanted)
    held = mine.layout()[0]
    assert [held[p : p + 1].tobytes() if p >= 0 else None for p in found.tolist()] == [
        i if i in ours else None for i in b
    ]


def test_selections_larger_than_a_chunk() -> None:
    rng = np.random.default_rng(5)
    base = np.unique(rng.integers(0, 256, size=(150_000, 32), dtype=np.uint8).view("S32").reshape(-1))
    shuffled = base[rng.permutation(len(base))]  # the graph's ids are in arrival order
    order = np.argsort(shuffled)
    view = IdSet(shuffled, order[rng.random(len(order)) < 0.7])
    other = IdSet(base[rng.random(len(base)) < 0.5])
    as_bytes = set(view)
    assert len(as_bytes) == len(view) > 65_536 * 1.2
    assert set(view - other) == as_bytes - set(other)
    assert set(other - view) == set(other) - as_bytes
    wanted = base[rng.random(len(base)) < 0.1]
    at = view.rank(wanted)
    assert (at >= 0).tolist() == [w.tobytes() in as_bytes for w in wanted.reshape(-1, 1)]
    assert np.array_equal(view.chunk(0, len(view))[at[at >= 0]], wanted[at >= 0])


@settings(max_examples=100)
@given(a=ids, b=ids)
def test_secure_hashes_behave_as_a_set_of_secure_hash(a: list[bytes], b: list[bytes]) -> None:
    found = SecureHashes(IdSet.of(a))
    plain = {SecureHash(x) for x in a}
    assert found == plain and plain == found and len(found) == len(plain)
    assert list(found) == sorted(plain) and all(isinstance(h, SecureHash) for h in found)
    other = {SecureHash(x) for x in b}
    assert (found | other) == (plain | other) and (found - other) == (plain - other)
    assert all((SecureHash(x) in found) == (x in a) for x in b) and "not an id" not in found
    assert json.loads(found.json_array()) == sorted(str(h) for h in plain)


def test_the_json_array_of_more_ids_than_a_chunk() -> None:
    rng = np.random.default_rng(9)
    many = rng.integers(0, 256, size=(150_000, 32), dtype=np.uint8).view("S32").reshape(-1)
    found = SecureHashes(IdSet.from_array(many))
    assert json.loads(found.json_array()) == [raw.hex().upper() for raw in found.ids]


@pytest.mark.parametrize(("size", "chunk"), [(0, 3), (1, 3), (3, 3), (7, 3), (6, 2)])
def test_the_json_array_in_parts_is_the_whole(size: int, chunk: int) -> None:
    found = SecureHashes(IdSet.of(bytes([i]) * 32 for i in range(size)))
    parts = list(found.json_array_parts(chunk))
    assert b"".join(parts) == found.json_array() and len(found.json_array()) == found.json_array_length()
    assert json.loads(found.json_array()) == [(bytes([i]) * 32).hex().upper() for i in range(size)]

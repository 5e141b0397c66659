"""keys.verify_batch (OpenSSL's libcrypto, a batch per GIL release, libsodium asked first) says what
PublicKey.verify says (cryptography's copy of OpenSSL), signature by signature, including on forged,
malformed and small-order input; and its libsodium-first answers are its OpenSSL-only answers."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.ledger import keys
from agent.ledger.keys import KeyPair, PublicKey, verify_batch
from agent.ledger.token import Token, move
from agent.ledger.transactions import SignedTransaction, TransactionSignature
from agent.ledger.verification import bad_signature, bad_signatures
from tests.ledger.conftest import CAST, Ledger

ORDER = 2**252 + 27742317777372353535851937790883648493  # the group order L of RFC 8032
PAIRS = [KeyPair.from_seed(bytes([i]) * 32) for i in range(1, 4)]


def _agree(checks: list[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
    one_by_one = [key.verify(sig, message) for key, sig, message in checks]
    assert verify_batch(checks) == one_by_one
    by_size: dict[int, list[tuple[PublicKey, bytes, bytes]]] = {}
    for check in checks:
        if len(check[1]) == keys.SIGNATURE_SIZE:
            by_size.setdefault(len(check[2]), []).append(check)
    for size, same in by_size.items():  # the extension's own two paths, without keys.py's handling
        args = (
            b"".join(k.raw for k, _, _ in same),
            b"".join(s for _, s, _ in same),
            b"".join(m for _, _, m in same),
        )
        assert keys._verify_batch(*args, size) == keys._verify_batch(*args, size, True)
    return one_by_one


def test_the_batch_check_is_built() -> None:
    # make builds it (setup.py); without it verify_batch falls back to one check at a time, and
    # the rest of this file would compare cryptography with itself.
    assert keys._verify_batch is not None


def test_libsodium_checks_first_where_the_system_has_it() -> None:
    # Debian's libsodium23 is on the machines we build and measure on (env): there the good
    # signatures cost libsodium's 70 us, not OpenSSL 3.0's 135 (BENCHMARKS.md).
    assert keys.FIRST_CHECK == "libsodium"


def test_small_order_keys_and_points_get_openssls_verdict() -> None:
    # libsodium refuses every one of these; OpenSSL accepts some (the neutral point as key and R with
    # S = 0 verifies any message): those must still verify, as cryptography says.
    neutral = b"\x01" + bytes(31)
    order_two = b"\xec" + b"\xff" * 30 + b"\x7f"  # y = -1: the point of order 2
    a = PAIRS[0]
    checks = []
    for key in (neutral, order_two):
        for message in (b"", b"m" * 32, os.urandom(32)):
            checks.append((PublicKey(key), neutral + bytes(32), message))
            checks.append((PublicKey(key), key + bytes(32), message))
            checks.append((PublicKey(key), a.sign(message), message))
    signed = a.sign(b"x" * 32)
    checks.append((a.public, neutral + signed[32:], b"x" * 32))  # a small-order R with a real key
    verdicts = _agree(checks)
    assert verdicts[0], "the neutral key and R with S = 0: OpenSSL accepts it, so must the batch"


def test_good_signatures_of_several_keys_verify() -> None:
    checks = []
    for i in range(30):
        pair = PAIRS[i % 3]
        message = os.urandom(32)
        checks.append((pair.public, pair.sign(message), message))
    assert _agree(checks) == [True] * 30


def test_forged_and_misattributed_signatures_fail_alone() -> None:
    a, b = PAIRS[0], PAIRS[1]
    m1, m2 = b"\x01" * 32, b"\x02" * 32
    sig = a.sign(m1)
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    s = int.from_bytes(sig[32:], "little")
    non_canonical = sig[:32] + (s + ORDER).to_bytes(32, "little")  # the same point, S >= L
    checks = [
        (a.public, sig, m1),  # good
        (a.public, flipped, m1),  # a bit flipped
        (a.public, sig, m2),  # another message
        (b.public, sig, m1),  # another key
        (a.public, non_canonical, m1),  # malleated
        (a.public, sig[:63], m1),  # too short
        (a.public, sig + b"\x00", m1),  # too long
        (PublicKey(b"\xff" * 32), sig, m1),  # not a point
        (PublicKey(b"\x01" + b"\x00" * 31), bytes([1]) + bytes(63), m1),  # the neutral point, S = 0
        (a.public, sig, m1),  # good again after all that
    ]
    verdicts = _agree(checks)
    assert verdicts[0] and verdicts[-1]
    assert not any(verdicts[1:8])


def test_messages_of_different_sizes_still_agree() -> None:
    a = PAIRS[0]
    checks = [(a.public, a.sign(m), m) for m in (b"", b"x", b"y" * 32, b"z" * 100)]
    assert _agree(checks) == [True] * 4


def test_more_keys_than_the_batch_keeps_decoded() -> None:
    pairs = [KeyPair.generate() for _ in range(70)]  # past the 64 keys kept: slots reused
    checks = []
    for round_ in range(3):
        for i, pair in enumerate(pairs):
            message = os.urandom(32)
            sig = pair.sign(message)
            if (i + round_) % 7 == 0:
                sig = pairs[(i + 1) % 70].sign(message)  # signed by the next key
            checks.append((pair.public, sig, message))
    verdicts = _agree(checks)
    assert verdicts.count(False) == sum(1 for r in range(3) for i in range(70) if (i + r) % 7 == 0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 63), st.integers(0, 7), st.integers(0, 31), st.integers(0, 7))
def test_any_flipped_bit_agrees(byte: int, bit: int, key_byte: int, key_bit: int) -> None:
    a = PAIRS[2]
    message = b"m" * 32
    sig = a.sign(message)
    bad_sig = sig[:byte] + bytes([sig[byte] ^ (1 << bit)]) + sig[byte + 1 :]
    raw = a.public.raw
    bad_key = PublicKey(raw[:key_byte] + bytes([raw[key_byte] ^ (1 << key_bit)]) + raw[key_byte + 1 :])
    assert _agree([(a.public, bad_sig, message), (bad_key, sig, message), (a.public, sig, message)]) == [
        False,
        False,
        True,
    ]


def test_the_extension_refuses_buffers_that_do_not_match() -> None:
    with pytest.raises(ValueError, match="do not match"):
        keys._verify_batch(bytes(64), bytes(64), bytes(64), 32)  # two keys, one signature


def test_bad_signatures_names_what_bad_signature_names(ledger: Ledger) -> None:
    c = ledger.cast
    stxs = []
    for i in range(6):
        held = ledger.issue(c.alice, 10 + i).tx.out_ref(0)

        token = Token.from_state(held.state)
        builder = move([held], [(c.bob.party, token.amount)], token.owner, CAST.notary.party)
        stxs.append(builder.sign([c.alice.keys, c.notary.keys]))
    # The third has its second signature broken, the fifth both: the first bad one is named.
    for at, indexes in ((2, (1,)), (4, (0, 1))):
        sigs = list(stxs[at].sigs)
        for index in indexes:
            old = sigs[index].signature
            sigs[index] = TransactionSignature(sigs[index].by, bytes([old[0] ^ 0x80]) + old[1:])
        stxs[at] = SignedTransaction(stxs[at].tx, tuple(sigs))
    found = bad_signatures(stxs)
    assert set(found) == {stxs[2].id, stxs[4].id}
    for stx in stxs:
        one = bad_signature(stx)
        batched = found.get(stx.id)
        assert (one is None) == (batched is None)
        if one is not None and batched is not None:
            assert (batched.tx_id, batched.key_hex) == (one.tx_id, one.key_hex)
    assert bad_signatures([]) == {}

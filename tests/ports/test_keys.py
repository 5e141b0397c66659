"""AesKeyStore: keys stored once, never replaced."""

from __future__ import annotations

import pytest

from agent.ports.keys import AesKeyStore
from agent.store.ledger_store import LedgerStore


@pytest.fixture
def keys(store: LedgerStore) -> AesKeyStore:
    return store.keys


def key_id(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def test_keys_are_added_if_none_only_once(keys: AesKeyStore) -> None:
    first = {key_id(i): bytes([i]) * 24 for i in range(3)}
    assert keys.aes_keys() == {}
    assert keys.add_aes_keys_if_none(first) is True
    assert keys.add_aes_keys_if_none({key_id(9): b"\x09" * 24}) is False
    assert keys.aes_keys() == first


def test_adding_keeps_the_material_already_stored(keys: AesKeyStore) -> None:
    keys.add_aes_keys({key_id(1): b"one", key_id(2): b"two"})
    keys.add_aes_keys({key_id(1): b"other", key_id(3): b"three"})
    assert keys.aes_keys() == {key_id(1): b"one", key_id(2): b"two", key_id(3): b"three"}

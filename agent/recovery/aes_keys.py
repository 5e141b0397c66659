"""The node's AES keys for distribution lists: ten random keys made at first start, stored wrapped.

As in Corda, each key is wrapped (AES key wrap, RFC 3394) under a key derived from the key id and the
node's X.500 name: the first 16 bytes of SHA-256(DER of the name || 16-byte key id). That is
obfuscation against an accidental dump of the table, not protection against someone who has the
database and knows the scheme; the reference says the same.
"""

from __future__ import annotations

import hashlib
import os
import random
import uuid

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from agent.errors import IdentityError
from agent.ledger.identity import X500Name
from agent.network.pki import x509_name
from agent.ports.keys import AesKeyStore

KEY_COUNT = 10
KEY_SIZE = 16  # AES-128, as Corda


def wrapping_key(name: X500Name, key_id: uuid.UUID) -> bytes:
    return hashlib.sha256(x509_name(name).public_bytes() + key_id.bytes).digest()[:KEY_SIZE]


class NodeAesKeys:
    """Creates the keys on first use; afterwards unwraps them once and keeps them in memory."""

    def __init__(self, store: AesKeyStore, name: X500Name) -> None:
        self.store = store
        self.name = name
        self._keys: dict[uuid.UUID, bytes] | None = None

    def keys(self) -> dict[uuid.UUID, bytes]:
        if self._keys is None:
            fresh = {uuid.uuid4(): os.urandom(KEY_SIZE) for _ in range(KEY_COUNT)}
            self.store.add_aes_keys_if_none(
                {str(k): aes_key_wrap(wrapping_key(self.name, k), v) for k, v in fresh.items()}
            )
            self._keys = {}
            for text, wrapped in self.store.aes_keys().items():
                key_id = uuid.UUID(text)
                try:
                    self._keys[key_id] = aes_key_unwrap(wrapping_key(self.name, key_id), wrapped)
                except InvalidUnwrap:
                    raise IdentityError(
                        f"AES key {key_id} does not unwrap under {self.name}: "
                        "was this database written by another node?"
                    ) from None
        return self._keys

    def pick(self) -> tuple[uuid.UUID, bytes]:
        """A random key of the node's, for one encryption."""
        key_id = random.SystemRandom().choice(sorted(self.keys()))
        return key_id, self.keys()[key_id]

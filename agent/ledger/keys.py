"""Ed25519 keys and signatures, on the cryptography library."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agent.errors import IdentityError, SerializationError

try:  # optional C extension (setup.py): OpenSSL's verdict, libsodium's cost, a batch per GIL release
    from agent.ledger._ed25519 import FIRST_CHECK
    from agent.ledger._ed25519 import verify_batch as _verify_batch
except ImportError:  # pragma: no cover - built wherever a C compiler and libcrypto's headers are
    _verify_batch = None  # type: ignore[assignment]
    FIRST_CHECK = "cryptography"

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64


@lru_cache(maxsize=4096)
def _load_public(raw: bytes) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(raw)


@dataclass(frozen=True, order=True)
class PublicKey:
    """An Ed25519 public key, held as its 32 raw bytes."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != PUBLIC_KEY_SIZE:
            raise SerializationError("public key", f"expected {PUBLIC_KEY_SIZE} bytes, got {len(self.raw)}")

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when the signature is this key's over the message."""
        if len(signature) != SIGNATURE_SIZE:
            return False
        try:
            _load_public(self.raw).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_cryptography(cls, key: Ed25519PublicKey) -> PublicKey:
        return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))

    def to_cryptography(self) -> Ed25519PublicKey:
        return _load_public(self.raw)

    @property
    def hex(self) -> str:
        return self.raw.hex()

    def __str__(self) -> str:
        return self.raw.hex()


def verify_batch(checks: Sequence[tuple[PublicKey, bytes, bytes]]) -> list[bool]:
    """For each (key, signature, message), whether the signature is the key's over the message, as
    PublicKey.verify says. One call releases the GIL once for the whole batch (the C extension, when
    built, and the messages all of one size): checked one at a time beside a busy thread, each check
    waited up to the interpreter's switch interval to take the GIL back."""
    if _verify_batch is None or not checks:
        return [key.verify(signature, message) for key, signature, message in checks]
    size = len(checks[0][2])
    if any(len(message) != size for _, _, message in checks):
        return [key.verify(signature, message) for key, signature, message in checks]
    # A signature of the wrong length fails without being checked, as in PublicKey.verify.
    well_formed = [len(signature) == SIGNATURE_SIZE for _, signature, _ in checks]
    ok = _verify_batch(
        b"".join(key.raw for key, _, _ in checks),
        b"".join(
            sig if fits else bytes(SIGNATURE_SIZE)
            for (_, sig, _), fits in zip(checks, well_formed, strict=True)
        ),
        b"".join(message for _, _, message in checks),
        size,
    )
    return [bool(good) and fits for good, fits in zip(ok, well_formed, strict=True)]


class KeyPair:
    """An Ed25519 private key with its public half."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = PublicKey.from_cryptography(private.public_key())

    @classmethod
    def generate(cls) -> KeyPair:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """A deterministic key from 32 bytes; for fixtures and benchmarks, never for real nodes."""
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._private

    def to_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def write_pem(self, path: Path) -> None:
        """Write the private key readable by its owner only (0600), whatever the umask."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(self.to_pem())
        os.chmod(path, 0o600)

    @classmethod
    def read_pem(cls, path: Path) -> KeyPair:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise IdentityError(f"{path}: not an Ed25519 private key")
        return cls(key)

    def __repr__(self) -> str:
        # Never print the private half.
        return f"KeyPair(public={self.public.hex})"

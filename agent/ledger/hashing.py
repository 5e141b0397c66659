"""SHA-256 hashes as values: how transaction ids and peer ids are computed and printed."""

from __future__ import annotations

import hashlib
from typing import Self

from agent.errors import SerializationError


class SecureHash(bytes):
    """A 32-byte SHA-256 digest; prints as upper-case hex, as Corda's SecureHash does."""

    __slots__ = ()

    def __new__(cls, digest: bytes) -> Self:
        if len(digest) != 32:
            raise SerializationError("hash", f"expected 32 bytes, got {len(digest)}")
        return super().__new__(cls, digest)

    @classmethod
    def of(cls, data: bytes) -> SecureHash:
        return cls(hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str, field: str = "hash") -> SecureHash:
        """Parse 64 hex digits, either case."""
        if len(text) != 64:
            raise SerializationError(field, f"expected 64 hex digits, got {len(text)} characters")
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise SerializationError(field, f"not hexadecimal: {text!r}") from exc

    def __str__(self) -> str:
        return self.hex().upper()

    def __repr__(self) -> str:
        return f"SecureHash({self})"

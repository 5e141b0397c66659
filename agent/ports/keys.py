"""The node's AES keys for distribution lists (node_aes_encryption_keys), stored wrapped."""

from __future__ import annotations

from typing import Protocol


class AesKeyStore(Protocol):
    """Wrapped key material by key id (a UUID's text)."""

    def aes_keys(self) -> dict[str, bytes]:
        """Every key, by key id."""
        ...

    def add_aes_keys(self, wrapped: dict[str, bytes]) -> None:
        """Add these keys; an id already stored keeps its material."""
        ...

    def add_aes_keys_if_none(self, wrapped: dict[str, bytes]) -> bool:
        """Store these keys only if the node has none yet (first start); True when stored."""
        ...

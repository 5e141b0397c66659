"""node_aes_encryption_keys: the node's wrapped AES keys."""

from __future__ import annotations

from agent.store.database import write_transaction
from agent.store.models import Schema


class AesKeyRepository:
    """The AES keys of one store (implements agent.ports.keys.AesKeyStore)."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema

    def aes_keys(self) -> dict[str, bytes]:
        keys = self.schema.aes_encryption_keys
        return {r.key_id: bytes(r.key_material) for r in keys.select().order_by(keys.key_id)}

    def add_aes_keys(self, wrapped: dict[str, bytes]) -> None:
        keys = self.schema.aes_encryption_keys
        with write_transaction(self.schema.database):
            keys.insert_many([{"key_id": k, "key_material": v} for k, v in wrapped.items()]).on_conflict(
                action="NOTHING"
            ).execute()

    def add_aes_keys_if_none(self, wrapped: dict[str, bytes]) -> bool:
        keys = self.schema.aes_encryption_keys
        with write_transaction(self.schema.database):
            if keys.select().exists():
                return False
            keys.insert_many([{"key_id": k, "key_material": v} for k, v in wrapped.items()]).execute()
        return True

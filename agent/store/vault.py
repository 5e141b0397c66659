"""vault_states and state_party: the outputs a recorded transaction leaves, and paged reads of them."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterator, Sequence
from datetime import datetime
from typing import Any

import peewee

from agent.ledger.hashing import SecureHash
from agent.ledger.keys import PublicKey
from agent.ledger.transactions import StateRef, WireTransaction, decode_state, encode_state
from agent.ledger.vault import RelevancyStatus, StateStatus, StatesToRecord, outputs_to_record
from agent.ports.paging import check_page_size
from agent.ports.vault import VaultRecord
from agent.store.bulk import execute_rows, insert_rows, vault_row
from agent.store.models import Schema, UtcDateTimeField, VaultState

_VAULT_COLUMNS = (
    "transaction_id",
    "output_index",
    "contract_state_class_name",
    "contract_state",
    "notary_name",
    "state_status",
    "relevancy_status",
    "recorded_timestamp",
)


def key_hash(key: PublicKey) -> str:
    """state_party.public_key_hash: hex SHA-256 of the key's raw bytes."""
    return hashlib.sha256(key.raw).hexdigest()


class VaultRepository:
    """The vault of one store (implements agent.ports.vault.VaultStore)."""

    def __init__(self, schema: Schema, our_keys: Collection[PublicKey], page_size: int) -> None:
        self.schema = schema
        self.our_keys = frozenset(our_keys)
        self.page_size = page_size

    def record_outputs(self, tx: WireTransaction, states_to_record: StatesToRecord, now: datetime) -> None:
        """A VERIFIED transaction's effect: its chosen outputs kept, its inputs consumed.

        Called inside the recording's database transaction, so it needs none of its own.
        """
        vs, sp = self.schema.vault_states, self.schema.state_party
        tx_id = str(tx.id)
        chosen = outputs_to_record(tx, self.our_keys, states_to_record)
        notary = str(tx.notary.name) if tx.notary else None
        if chosen:
            vs.insert_many(
                [
                    {
                        "transaction_id": tx_id,
                        "output_index": index,
                        "contract_state_class_name": tx.outputs[index].contract,
                        "contract_state": encode_state(tx.outputs[index], checked=True),
                        "notary_name": notary,
                        "state_status": StateStatus.UNCONSUMED,
                        "relevancy_status": relevancy,
                        "recorded_timestamp": now,
                    }
                    for index, relevancy in chosen
                ]
            ).on_conflict(action="NOTHING").execute()
            parties = {
                (index, key_hash(p.owning_key)): str(p.name)
                for index, _ in chosen
                for p in tx.outputs[index].participants
            }
            sp.insert_many(
                [
                    {"transaction_id": tx_id, "output_index": i, "public_key_hash": h, "x500_name": n}
                    for (i, h), n in parties.items()
                ]
            ).on_conflict(action="NOTHING").execute()
        for ref in tx.inputs:
            vs.update(state_status=StateStatus.CONSUMED, consumed_timestamp=now, consuming_tx_id=tx_id).where(
                (vs.transaction_id == str(ref.txhash))
                & (vs.output_index == ref.index)
                & (vs.state_status == StateStatus.UNCONSUMED)
            ).execute()

    def record_outputs_many(
        self, recorded: Sequence[tuple[WireTransaction, StatesToRecord]], now: datetime
    ) -> None:
        """record_outputs for many transactions, parents first: every output, then every input consumed,
        a statement per table (an input produced in the batch is inserted before it is consumed)."""
        vs, sp = self.schema.vault_states, self.schema.state_party
        when = UtcDateTimeField().db_value(now)
        vault_rows: list[tuple[Any, ...]] = []
        party_rows: dict[tuple[str, int, str], str] = {}
        consume_rows: list[tuple[Any, ...]] = []
        for tx, states_to_record in recorded:
            tx_id = str(tx.id)
            notary = str(tx.notary.name) if tx.notary else None
            for index, relevancy in outputs_to_record(tx, self.our_keys, states_to_record):
                state = tx.outputs[index]
                vault_rows.append(vault_row(tx_id, index, state, notary, relevancy, when))
                for p in state.participants:
                    party_rows[(tx_id, index, key_hash(p.owning_key))] = str(p.name)
            consumed = int(StateStatus.CONSUMED)
            unconsumed = int(StateStatus.UNCONSUMED)
            consume_rows.extend(
                (consumed, when, tx_id, str(ref.txhash), ref.index, unconsumed) for ref in tx.inputs
            )
        db = self.schema.database
        insert_rows(db, vs, _VAULT_COLUMNS, vault_rows)
        insert_rows(
            db,
            sp,
            ("transaction_id", "output_index", "public_key_hash", "x500_name"),
            [(*k, n) for k, n in party_rows.items()],
        )
        execute_rows(
            db,
            f'UPDATE "{vs._meta.table_name}" SET state_status = ?, consumed_timestamp = ?, consuming_tx_id = ? '
            "WHERE transaction_id = ? AND output_index = ? AND state_status = ?",
            consume_rows,
        )

    def iter_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = RelevancyStatus.RELEVANT,
        contract: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[VaultRecord]:
        """States in (transaction id, output index) order, a keyset page at a time."""
        size = check_page_size(self.page_size if page_size is None else page_size)
        vs = self.schema.vault_states
        after: tuple[str, int] = ("", -1)
        while True:
            query = vs.select().where(peewee.Tuple(vs.transaction_id, vs.output_index) > after)
            if state_status is not None:
                query = query.where(vs.state_status == state_status)
            if relevancy is not None:
                query = query.where(vs.relevancy_status == relevancy)
            if contract is not None:
                query = query.where(vs.contract_state_class_name == contract)
            rows = list(query.order_by(vs.transaction_id, vs.output_index).limit(size))
            yield from (_record(row) for row in rows)
            if len(rows) < size:
                return
            after = (rows[-1].transaction_id, rows[-1].output_index)

    def count_vault_states(
        self,
        *,
        state_status: StateStatus | None = StateStatus.UNCONSUMED,
        relevancy: RelevancyStatus | None = None,
    ) -> int:
        vs = self.schema.vault_states
        query = vs.select()
        if state_status is not None:
            query = query.where(vs.state_status == state_status)
        if relevancy is not None:
            query = query.where(vs.relevancy_status == relevancy)
        return int(query.count())


def _record(row: VaultState) -> VaultRecord:
    return VaultRecord(
        ref=StateRef(SecureHash.parse(row.transaction_id), row.output_index),
        state=decode_state(bytes(row.contract_state)),
        notary_name=row.notary_name,
        state_status=StateStatus(row.state_status),
        relevancy_status=RelevancyStatus(row.relevancy_status),
        recorded_timestamp=row.recorded_timestamp,
        consumed_timestamp=row.consumed_timestamp,
        consuming_tx_id=None if row.consuming_tx_id is None else SecureHash.parse(row.consuming_tx_id),
    )

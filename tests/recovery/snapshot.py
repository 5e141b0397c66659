"""What a node's store holds, for comparing it before a disaster and after its recovery."""

from __future__ import annotations

from typing import Any

from agent.ledger.hashing import SecureHash
from agent.store.ledger_store import LedgerStore


def ledger_of(store: LedgerStore) -> dict[str, Any]:
    """Transactions by status, every vault row (consumed ones too), the distribution records."""
    txs = {str(s.stx.id): s.status.name for s in store.transactions.iter_transactions()}
    vault = sorted(
        (
            str(v.ref),
            v.state.data["amount"],
            v.state_status.name,
            v.relevancy_status.name,
            str(v.consuming_tx_id),
        )
        for v in store.vault.iter_vault_states(state_status=None, relevancy=None)
    )
    sent = sorted(
        (str(r.tx_id), str(r.peer), r.timestamp, r.timestamp_discriminator, int(r.receiver_states_to_record))
        for tx in txs
        for r in store.distribution.sender_records(SecureHash.parse(tx))
    )
    received = sorted(
        (
            str(r.tx_id),
            str(r.sender),
            r.timestamp,
            r.timestamp_discriminator,
            int(r.receiver_states_to_record),
        )
        for tx in txs
        for r in store.distribution.receiver_records(SecureHash.parse(tx))
    )
    return {"transactions": txs, "vault": vault, "sent": sent, "received": received}


def without(snapshot: dict[str, Any], lost: set[str]) -> dict[str, Any]:
    """The snapshot less these transactions (what no peer could give back) and what they made."""
    return {
        "transactions": {k: v for k, v in snapshot["transactions"].items() if k not in lost},
        "vault": [v for v in snapshot["vault"] if v[0].split("(")[0] not in lost],
        "sent": [r for r in snapshot["sent"] if r[0] not in lost],
        "received": [r for r in snapshot["received"] if r[0] not in lost],
    }

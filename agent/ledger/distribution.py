"""Recovery distribution records, as two-phase finality writes them (see ledger-recovery.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.vault import StatesToRecord


@dataclass(frozen=True)
class SenderDistribution:
    """One per receiving peer of a transaction this node sent."""

    tx_id: SecureHash
    peer: X500Name
    timestamp: datetime
    timestamp_discriminator: int
    sender_states_to_record: StatesToRecord
    receiver_states_to_record: StatesToRecord


@dataclass(frozen=True)
class ReceiverDistribution:
    """What a receiver keeps: the sender, and the sender's encrypted distribution list."""

    tx_id: SecureHash
    sender: X500Name
    timestamp: datetime
    timestamp_discriminator: int
    distribution_list: bytes
    receiver_states_to_record: StatesToRecord

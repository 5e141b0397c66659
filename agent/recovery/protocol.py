"""Ledger Recovery between agents: the topics, and the records as they travel.

A recovering node asks each recovery peer, over the authenticated peer protocol:
- recovery.windowHashes: per sub-window of the time window, how many of the peer's records concern us
  and a hash of their keys, so that only the sub-windows that differ from ours are walked;
- recovery.records: a page of those records, in key order, after a cursor;
- recovery.transactions: transactions by id (with back-chains), each checked against what entitles us;
- recovery.push: optimisticInitiatorRecovery's push of a transaction we initiated to one of its peers.

Record types name the peer's table: SENDER is its sender records naming us (we were a receiver; they
rebuild our receiver records), RECEIVER its receiver records from us (we sent; the encrypted list in
them is ours, and rebuilds our sender records).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.clock import from_epoch_ms, to_epoch_ms
from agent.errors import SerializationError
from agent.ledger import serialization as ser
from agent.ports.distribution import RecordCursor, TimeWindow

TOPIC_WINDOW_HASHES = "recovery.windowHashes"
TOPIC_RECORDS = "recovery.records"
TOPIC_TRANSACTIONS = "recovery.transactions"
TOPIC_PUSH = "recovery.push"

SENDER, RECEIVER = "SENDER", "RECEIVER"
RECORD_TYPES = (SENDER, RECEIVER)
MAX_PARTS = 256
MAX_IDS = 10_000


@dataclass(frozen=True)
class WireRecord:
    """One distribution record, as the peer sends it."""

    tx_id: str
    timestamp: datetime
    timestamp_discriminator: int
    receiver_states_to_record: int
    sender_states_to_record: int  # for SENDER records; for RECEIVER ones it is inside the list
    distribution_list: bytes

    @property
    def key(self) -> tuple[str, datetime, int]:
        return (self.tx_id, self.timestamp, self.timestamp_discriminator)

    def to_obj(self) -> list[Any]:
        return [
            self.tx_id,
            to_epoch_ms(self.timestamp),
            self.timestamp_discriminator,
            self.receiver_states_to_record,
            self.sender_states_to_record,
            self.distribution_list,
        ]

    @classmethod
    def from_obj(cls, obj: Any) -> WireRecord:
        items = ser.expect_list(obj, "records[]")
        if len(items) != 6:
            raise SerializationError("records[]", "a record has 6 fields")
        return cls(
            ser.expect(items[0], str, "records[].txId"),
            from_epoch_ms(ser.expect(items[1], int, "records[].timestamp")),
            ser.expect(items[2], int, "records[].timestampDiscriminator"),
            ser.expect(items[3], int, "records[].receiverStatesToRecord"),
            ser.expect(items[4], int, "records[].senderStatesToRecord"),
            ser.expect(items[5], bytes, "records[].distributionList"),
        )


def cursor_to_obj(cursor: RecordCursor | None) -> list[Any] | None:
    if cursor is None:
        return None
    return [
        to_epoch_ms(cursor.timestamp),
        cursor.timestamp_discriminator,
        cursor.transaction_id,
        cursor.peer_party_id,
    ]


def cursor_from_obj(obj: Any) -> RecordCursor | None:
    if obj is None:
        return None
    items = ser.expect_list(obj, "after")
    if len(items) != 4:
        raise SerializationError("after", "a cursor has 4 fields")
    return RecordCursor(
        from_epoch_ms(ser.expect(items[0], int, "after.timestamp")),
        ser.expect(items[1], int, "after.timestampDiscriminator"),
        ser.expect(items[2], str, "after.transactionId"),
        ser.expect(items[3], str, "after.peerPartyId"),
    )


def window_to_obj(window: TimeWindow) -> list[int | None]:
    return [
        None if window.from_time is None else to_epoch_ms(window.from_time),
        None if window.until_time is None else to_epoch_ms(window.until_time),
    ]


def window_from_obj(obj: Any) -> TimeWindow:
    items = ser.expect_list(obj, "window")
    if len(items) != 2 or not all(v is None or isinstance(v, int) for v in items):
        raise SerializationError("window", "[fromMs, untilMs], each an integer or null")
    return TimeWindow(
        None if items[0] is None else from_epoch_ms(items[0]),
        None if items[1] is None else from_epoch_ms(items[1]),
    )


def split_window(window: TimeWindow, parts: int) -> list[TimeWindow]:
    """parts consecutive sub-windows of a closed window, on whole seconds (records' timestamps are)."""
    assert window.from_time is not None and window.until_time is not None
    start = to_epoch_ms(window.from_time) // 1000
    end = -(-to_epoch_ms(window.until_time) // 1000)
    span = max(1, end - start)
    count = max(1, min(parts, span))
    edges = [start + (span * i) // count for i in range(count)] + [end]
    return [
        TimeWindow(from_epoch_ms(edges[i] * 1000), from_epoch_ms(edges[i + 1] * 1000))
        for i in range(count)
        if edges[i + 1] > edges[i]
    ]


def keys_digest(keys: Iterable[tuple[str, datetime, int]]) -> tuple[int, str]:
    """How many keys, and a hash of them in order: equal on both sides when the records pair up."""
    digest = hashlib.sha256()
    count = 0
    for tx_id, timestamp, discriminator in sorted(keys, key=lambda k: (k[1], k[2], k[0])):
        digest.update(f"{tx_id}:{to_epoch_ms(timestamp)}:{discriminator};".encode())
        count += 1
    return count, digest.hexdigest()

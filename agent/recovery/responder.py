"""The peer's side of Ledger Recovery: its records that concern the requester, and transactions only
to a party entitled to them.

A party is entitled to a transaction when our distribution records say it took part (we sent it the
transaction, or it sent it to us), when the transaction itself names it (a participant of an input,
reference or output state, or a required signer), or when the transaction is in the back-chain of one
of those (named by the request as its root). Everything else is refused by name: the requester
learns which id and why, and our log says who asked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from agent.clock import Clock
from agent.errors import SerializationError
from agent.ledger import serialization as ser
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.network.network_map import NetworkMap
from agent.ports.distribution import DistributionRecords, RecordCursor, TimeWindow
from agent.ports.transactions import TransactionReader
from agent.recovery.aes_keys import NodeAesKeys
from agent.recovery.distribution_list import DistributionList, PublicHeader, encrypt
from agent.recovery.naming import parties_named
from agent.recovery.protocol import (
    MAX_IDS,
    MAX_PARTS,
    RECORD_TYPES,
    SENDER,
    TOPIC_RECORDS,
    TOPIC_TRANSACTIONS,
    TOPIC_WINDOW_HASHES,
    WireRecord,
    cursor_from_obj,
    cursor_to_obj,
    keys_digest,
    split_window,
    window_from_obj,
)

log = logging.getLogger("ledger_agent.recovery")

MAX_PAGE = 10_000
_SCAN_PAGE = 5_000


class Handlers(Protocol):
    def register(self, topic: str, handler: Any) -> None: ...


class RecoveryResponder:
    """Answers a recovering peer: window hashes, record pages, and the transactions it may have."""

    def __init__(
        self,
        me: X500Name,
        transactions: TransactionReader,
        distribution: DistributionRecords,
        aes_keys: NodeAesKeys,
        network_map: NetworkMap,
        clock: Clock,
    ) -> None:
        self.me = me
        self.transactions = transactions
        self.distribution = distribution
        self.aes_keys = aes_keys
        self.network_map = network_map
        self.clock = clock

    def register(self, handlers: Handlers) -> None:
        handlers.register(TOPIC_WINDOW_HASHES, ser.map_payload(self._on_window_hashes))
        handlers.register(TOPIC_RECORDS, ser.map_payload(self._on_records))
        handlers.register(TOPIC_TRANSACTIONS, ser.map_payload(self._on_transactions))

    # -- records -------------------------------------------------------------------------------------

    def _on_window_hashes(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        record_type = _record_type(payload)
        window = window_from_obj(payload.get("window"))
        parts = ser.expect(payload.get("parts"), int, "parts")
        if window.from_time is None or window.until_time is None or not 1 <= parts <= MAX_PARTS:
            raise SerializationError("parts", f"a closed window and 1 to {MAX_PARTS} parts")
        hashes = []
        for sub in split_window(window, parts):
            records = self._all(record_type, requester, sub)
            count, digest = keys_digest(
                (str(r.tx_id), r.timestamp, r.timestamp_discriminator) for r in records
            )
            hashes.append([count, digest])
        return {"hashes": hashes}

    def _all(
        self, record_type: str, requester: X500Name, window: TimeWindow
    ) -> Iterator[SenderDistribution | ReceiverDistribution]:
        after: RecordCursor | None = None
        while True:
            page = self._page(record_type, requester, window, after, _SCAN_PAGE)
            yield from page[0]
            after = page[1]
            if after is None:
                return

    def _page(
        self, record_type: str, requester: X500Name, window: TimeWindow, after: RecordCursor | None, size: int
    ) -> tuple[list[SenderDistribution] | list[ReceiverDistribution], RecordCursor | None]:
        if record_type == SENDER:
            sent = self.distribution.sender_records_page(
                peers=[requester], window=window, after=after, page_size=size
            )
            return sent.records, sent.next
        received = self.distribution.receiver_records_page(
            peers=[requester], window=window, after=after, page_size=size
        )
        return received.records, received.next

    def _on_records(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        record_type = _record_type(payload)
        window = window_from_obj(payload.get("window"))
        after = cursor_from_obj(payload.get("after"))
        limit = ser.expect(payload.get("limit"), int, "limit")
        if not 1 <= limit <= MAX_PAGE:
            raise SerializationError("limit", f"from 1 to {MAX_PAGE}")
        records, following = self._page(record_type, requester, window, after, limit)
        wire: list[Any] = []
        lists = self.distribution.sender_records_of(
            {r.tx_id for r in records if isinstance(r, SenderDistribution)}
        )
        for record in records:
            if isinstance(record, SenderDistribution):
                wire.append(self._sealed_for(record, lists.get(record.tx_id, [record])).to_obj())
            else:
                wire.append(
                    WireRecord(
                        str(record.tx_id),
                        record.timestamp,
                        record.timestamp_discriminator,
                        int(record.receiver_states_to_record),
                        0,
                        record.distribution_list,
                    ).to_obj()
                )
        return {"records": wire, "next": cursor_to_obj(following)}

    def _sealed_for(self, record: SenderDistribution, sent: list[SenderDistribution]) -> WireRecord:
        """Our sender record naming the requester, with the receiver record it lost: our distribution
        list (sent: the transaction's sender records) sealed afresh under one of our keys, with the same
        header (the key both sides share)."""
        header = PublicHeader(record.timestamp, record.timestamp_discriminator)
        key_id, key = self.aes_keys.pick()
        sealed = encrypt(
            DistributionList(
                record.sender_states_to_record, {r.peer.peer_id: r.receiver_states_to_record for r in sent}
            ),
            header,
            key_id,
            key,
        )
        return WireRecord(
            str(record.tx_id),
            record.timestamp,
            record.timestamp_discriminator,
            int(record.receiver_states_to_record),
            int(record.sender_states_to_record),
            sealed,
        )

    # -- transactions --------------------------------------------------------------------------------

    def _on_transactions(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        ids = [
            SecureHash.parse(ser.expect(h, str, "ids[]"), "ids[]")
            for h in ser.expect_list(payload.get("ids"), "ids")
        ]
        roots = [
            SecureHash.parse(ser.expect(h, str, "roots[]"), "roots[]")
            for h in ser.expect_list(payload.get("roots", []), "roots")
        ]
        sizes_only = payload.get("sizesOnly", False) is True  # a dry run's plan: sizes, not bytes
        if len(ids) > MAX_IDS or len(roots) > MAX_IDS:
            raise SerializationError("ids", f"at most {MAX_IDS} ids a request")
        stored = self.transactions.raw_transactions(ids)
        # Most are named by a record: those are served as stored, never parsed.
        entitled = self.distribution.ids_with_records(requester, stored) if stored else set()
        rest = {h: row.stx() for h, row in stored.items() if h not in entitled}
        entitled |= self._entitled(requester, rest)
        outside = {h for h in rest if h not in entitled}
        if outside:  # asked as the back-chain of a root the requester is entitled to?
            root_txs = {h: row.stx() for h, row in self.transactions.raw_transactions(roots).items()}
            entitled |= self._in_back_chains(self._entitled(requester, root_txs), root_txs, outside)
        found: list[Any] = []
        denied: list[Any] = []
        for tx_id in ids:
            row = stored.get(tx_id)
            if row is None or tx_id not in entitled:
                # One answer for both: a requester that knows an id must not learn whether we hold it.
                denied.append(
                    [
                        str(tx_id),
                        f"{requester} is not entitled to {tx_id}, or it is not held here: no distribution "
                        "record, state or signature of a transaction held here names it, nor is it in "
                        "such a transaction's back-chain",
                    ]
                )
            else:
                raw = row.serialized()
                found.append([str(tx_id), row.status.name, len(raw) if sizes_only else raw])
        if denied:
            log.warning(
                "refused %d transaction(s) to %s: not held here, or it is not entitled to them: %s",
                len(denied),
                requester,
                ", ".join(d[0] for d in denied[:10]),
            )
        return {"txs": found, "denied": denied, "unknown": []}  # "unknown": kept for older requesters

    def _entitled(self, requester: X500Name, txs: Mapping[SecureHash, SignedTransaction]) -> set[SecureHash]:
        """Of txs, those a distribution record, or a state or signature of the transaction, names the
        requester in (naming.named_parties, the rule a push is checked by); a few queries for the lot."""
        entitled = self.distribution.ids_with_records(requester, txs) if txs else set()
        rest = {h: stx for h, stx in txs.items() if h not in entitled}
        if rest:
            named = parties_named(rest, self.transactions, self.network_map)
            entitled |= {h for h, names in named.items() if requester in names}
        return entitled

    def _in_back_chains(
        self,
        roots: Iterable[SecureHash],
        root_txs: Mapping[SecureHash, SignedTransaction],
        wanted: set[SecureHash],
    ) -> set[SecureHash]:
        """Those of wanted in the back-chains of these roots: walked a generation at a time (one query
        each), stopping once every one of wanted is found."""
        seen: set[SecureHash] = set()
        frontier = {
            r.txhash for root in roots for r in (*root_txs[root].tx.inputs, *root_txs[root].tx.references)
        }
        while frontier and not wanted <= seen:
            seen |= frontier
            wires = self.transactions.producing_transactions(frontier)
            frontier = {r.txhash for w in wires.values() for r in (*w.inputs, *w.references)} - seen
        return wanted & seen


def _record_type(payload: Any) -> str:
    record_type = ser.expect(payload.get("type"), str, "type")
    if record_type not in RECORD_TYPES:
        raise SerializationError("type", f"allowed: {', '.join(RECORD_TYPES)}")
    return str(record_type)

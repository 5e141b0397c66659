"""LedgerSync's reconciliation session over the peer protocol (docs/ledgersync.md, rateless IBLT).

    requester                                   responder
    begin   {salt, size, at}              ->    its set for the requester, an Encoder, a session
                                          <-    {session, size, batch}: symbols_for_difference(d)
    symbols {session, start, count}       ->    until decoded: twice as many each time, capped to
                                          <-    {batch}          fit maxMessageSize; each reply is
                                                                 an exchange, at most
                                                                 maxNumberOfIbfFilterFlows in all
    ids     {session, offset}             ->    the fallback when not decoded within the bound:
                                          <-    {ids, next}      the responder's set, paged
    end     {session, missing}            ->    the session is dropped; with both_directions
                                          <-    {received}       `missing` holds what it lacks

Only ids of the set for the pair are ever encoded or listed (`pairset.pair_set`). Byte counts are
the CBOR payloads each way (the envelope, ~300 bytes of names, nonces and signature, is not counted).

`at` is the requester's clock at its begin (epoch ms): a begin replaces the requester's unfinished
session at the responder unless it is older than that session's begin (admission.py).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Protocol

from agent.clock import Clock, to_epoch_ms
from agent.errors import (
    AgentError,
    CannotReconcileWithSelfException,
    InvalidArgumentError,
    KilledFlowException,
    LedgerGraphNotReadyException,
    MaxIncomingSessionsExceededException,
    ReconciliationAlreadyScheduledException,
    ReconciliationCodecError,
    ReconciliationError,
    ReconciliationRateLimitExceededException,
)
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party, X500Name
from agent.ledger.serialization import encode
from agent.ledgersync.admission import IncomingReconciliations, IncomingSession
from agent.ledgersync.config import LedgerSyncConfig
from agent.ledgersync.consistency import ConsistencyReport, check_consistency, require_ready
from agent.ledgersync.graph import LedgerGraph
from agent.ledgersync.idset import IdSet, Listing, SecureHashes
from agent.ledgersync.memory import release_freed_memory
from agent.ledgersync.pairset import pair_set
from agent.ledgersync.riblt import (
    HEADER_SIZE,
    ID_SIZE,
    SALT_SIZE,
    SYMBOL_SIZE,
    Decoder,
    Encoder,
    batch_header,
    check_batch,
    decode_batch,
    encode_batch,
    symbols_for_difference,
)
from agent.ledgersync.riblt_numpy import FastDecoder, FastEncoder, fast_decoder
from agent.network.network_map import NetworkMap

# Re-exported (hence `as`): the agent's modules import them from here, the operator tools from operator_api.
from agent.operator_api.flows import METHOD_LIST as METHOD_LIST  # noqa: PLC0414
from agent.operator_api.flows import METHOD_RIBLT as METHOD_RIBLT  # noqa: PLC0414
from agent.operator_api.flows import METHODS as METHODS  # noqa: PLC0414
from agent.p2p.envelope import ERROR_CODECS, ErrorCodec, register_error_codec
from agent.ports.graph_scans import GraphScans

log = logging.getLogger("ledger_agent.ledgersync")

TOPIC_BEGIN = "ledgersync.begin"
TOPIC_SYMBOLS = "ledgersync.symbols"
TOPIC_IDS = "ledgersync.ids"
TOPIC_END = "ledgersync.end"
SESSION_ID_SIZE = 16
# Room left in a reply for the sealed envelope around the payload: names, timestamp, two nonces,
# the signature and the payload's keys take a few hundred bytes; 1 KiB keeps every reply under the limit.
ENVELOPE_RESERVE = 1024


# Local symbols a requester computes while it waits for the first batch: enough for a difference of
# about 11,000 (the first batch for d = 10,000 is 14,214), at about 1.35x the work of 1,477 symbols
# (d = 1,000) at a million ids. Only while it waits: when the reply comes the walk stops, and the
# ids it did not reach are walked only as far as the batch needs (one symbol for equal sets, where
# the whole walk to 16,384 cost the session about 0.18 s); a larger first batch walks the rest.
SYMBOLS_AHEAD = 16_384


# The most a batch of symbols takes, whatever maxMessageSize allows: a message is copied four or five
# times on each side (encoded, sealed, sent; received, opened, decoded), so a batch of 5.7 MB (a
# difference of 100,000 in one reply) put each agent 25 MB above its resting size. A difference
# that large now takes a few exchanges (3 for 100,000); one of up to 10,000 still fits one.
MAX_BATCH_BYTES = 2 << 20


def symbols_per_reply(max_message_size: int) -> int:
    """How many coded symbols one reply may carry: within maxMessageSize, and MAX_BATCH_BYTES."""
    room = min(max_message_size - ENVELOPE_RESERVE, MAX_BATCH_BYTES) - HEADER_SIZE
    return max(1, room // SYMBOL_SIZE)


def ids_per_reply(max_message_size: int) -> int:
    """How many 32-byte ids one page of the id list may carry: within maxMessageSize, and MAX_BATCH_BYTES."""
    return max(1, min(max_message_size - ENVELOPE_RESERVE, MAX_BATCH_BYTES) // ID_SIZE)


class Peers(Protocol):
    def request(self, peer: X500Name, topic: str, payload: Any, *, timeout: float = 30.0) -> Any: ...


Handler = Callable[[X500Name, Any], dict[str, Any]]


class Handlers(Protocol):
    def register(self, topic: str, handler: Any) -> None: ...


@dataclass(frozen=True)
class Exchange:
    """One request and its reply: the topic and the payload bytes each way."""

    topic: str
    sent: int
    received: int


@dataclass(frozen=True)
class ReconciliationResult:
    """What the responder has that we lack (missing_here), and the reverse (missing_there)."""

    party: X500Name
    missing_here: AbstractSet[SecureHash]  # SecureHashes from a session: one array, no object an id
    missing_there: AbstractSet[SecureHash]
    bytes_sent: int
    bytes_received: int
    exchanges: int  # every request/reply, begin and end included
    messages: tuple[Exchange, ...] = ()
    used_id_list: bool = False  # the symbols did not decode within the bound

    def as_dict(self, *, ids: bool = True) -> dict[str, Any]:
        """Plain data: ids in upper-case hex, sorted (left out unless ids); the counts."""
        plain: dict[str, Any] = {"party": str(self.party)}
        if ids:
            plain["missingHere"] = sorted(map(str, self.missing_here))
            plain["missingThere"] = sorted(map(str, self.missing_there))
        return plain | {
            "bytesSent": self.bytes_sent,
            "bytesReceived": self.bytes_received,
            "exchanges": self.exchanges,
            "usedIdList": self.used_id_list,
        }


class LedgerSyncService:
    """Both ends of a reconciliation: `reconcile` as requester, `register` to serve as responder."""

    def __init__(
        self,
        identity: Party,
        graph: LedgerGraph,
        scans: GraphScans,
        peers: Peers,
        config: LedgerSyncConfig,
        network_map: NetworkMap,
        clock: Clock,
        *,
        on_peer_difference: Callable[[X500Name, set[SecureHash]], None] | None = None,
        incoming: IncomingReconciliations | None = None,
    ) -> None:
        self.identity = identity
        self.graph = graph
        self.scans = scans
        self.peers = peers
        self.config = config
        self.network_map = network_map
        self.clock = clock
        self.on_peer_difference = on_peer_difference
        # Admission of incoming sessions (pool, rate limit, responder statuses); None: no limits.
        self.incoming = incoming
        # With both_directions, the ids each requester told us we lack (statuses come with the scheduler).
        self.peer_differences: dict[X500Name, set[SecureHash]] = {}
        self._report: ConsistencyReport | None = None
        self._lock = threading.Lock()  # one session's encoder serves one exchange at a time

    @property
    def me(self) -> str:
        return str(self.identity.name)

    @property
    def max_message_size(self) -> int:
        return self.network_map.parameters.max_message_size

    def check_consistency(self) -> ConsistencyReport:
        """Run the self-consistency check and keep its report for the responder's readiness test.

        After the first, the check reads the transactions again as the graph was built: pages of
        transactionReaderPageSize, parsed by transactionReaderPoolSize threads.
        """
        self._report = check_consistency(
            self.graph,
            self.scans,
            page_size=self.config.transaction_reader_page_size,
            pool_size=self.config.transaction_reader_pool_size,
        )
        return self._report

    def pair_set(self, party: X500Name) -> IdSet:
        """Our set for the pair with party (32-byte ids, one array)."""
        return pair_set(self.graph, self.me, str(party))

    def not_ready(self, reason: str) -> None:
        """Refuse to reconcile, with reason, until the next check_consistency (the graph is loading)."""
        self._report = ConsistencyReport(False, False, [reason], 1)

    def report(self) -> ConsistencyReport:
        return self._report if self._report is not None else self.check_consistency()

    # -- requester -----------------------------------------------------------------------------------

    def check_counterparty(self, party: X500Name, field: str) -> None:
        """party is one we may reconcile with: not ourselves, on the network map (IdentityError
        otherwise, a 404), and not the notary (a bad argument named by field)."""
        if party == self.identity.name:
            raise CannotReconcileWithSelfException(str(party))
        if self.network_map.node(party).is_notary:
            raise InvalidArgumentError(
                field,
                str(party),
                "it is the notary, which holds no ledger to reconcile (it records no transactions, only "
                "the states they consumed); allowed: a node of the network map other than the notary "
                "and this node",
            )

    def reconcile(
        self,
        party: X500Name,
        *,
        both_directions: bool = False,
        method: str = METHOD_RIBLT,
        cancelled: threading.Event | None = None,
    ) -> ReconciliationResult:
        """Reconcile our set for the pair with party's; raises the peer's refusal or a codec error.

        method "list" skips the coded symbols and fetches the peer's whole set for the pair: the
        naive way, for diagnosis and as the benchmark's baseline. cancelled, once set, ends the
        session between two exchanges with KilledFlowException.
        """
        self.check_counterparty(party, "party")
        if method not in METHODS:
            raise ReconciliationError(f"method {method!r}: allowed {', '.join(METHODS)}")
        require_ready(self.report())
        return _Requester(self, party, cancelled).run(both_directions, method)

    # -- responder -----------------------------------------------------------------------------------

    def register(self, handlers: Handlers) -> None:
        handlers.register(TOPIC_BEGIN, self._on_begin)
        handlers.register(TOPIC_SYMBOLS, self._in_session(self._on_symbols))
        handlers.register(TOPIC_IDS, self._in_session(self._on_ids))
        handlers.register(TOPIC_END, self._in_session(self._on_end))

    def _in_session(self, handler: Handler) -> Handler:
        """A handler whose failure ends the requester's session FAILED; others are served on."""

        def guarded(requester: X500Name, payload: Any) -> dict[str, Any]:
            try:
                return handler(requester, payload)
            except Exception as exc:
                # Only the session the message names: one about a superseded session leaves the live one.
                named = payload.get("session") if isinstance(payload, dict) else None
                session_id = named if isinstance(named, bytes) and len(named) == SESSION_ID_SIZE else None
                self._responder().fail(requester, f"{type(exc).__name__}: {exc}", session_id=session_id)
                raise

        return guarded

    def _responder(self) -> IncomingReconciliations:
        if self.incoming is None:
            raise ReconciliationError("this node does not answer reconciliations (no admission of sessions)")
        return self.incoming

    def _on_begin(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        if requester == self.identity.name:
            raise CannotReconcileWithSelfException(str(requester))
        require_ready(self.report())
        at = payload.get("at") if isinstance(payload, dict) else None
        if at is not None and (not isinstance(at, int) or isinstance(at, bool) or at < 0):
            raise ReconciliationCodecError("at", f"must be epoch milliseconds, got {at!r}")
        session = self._responder().admit(requester, begun_at=at, responder=self.me)
        try:
            return self._begin(requester, payload, session)
        except Exception as exc:
            # A session that broke on our side, or on bad input: its status FAILED, the slot freed.
            self._responder().fail(requester, f"{type(exc).__name__}: {exc}", only=session)
            raise

    def _begin(self, requester: X500Name, payload: Any, session: IncomingSession) -> dict[str, Any]:
        listing = payload.get("list", False) if isinstance(payload, dict) else False
        if not isinstance(listing, bool):
            raise ReconciliationCodecError("list", f"must be true or false, got {listing!r}")
        salt = _bytes(payload, "salt", SALT_SIZE)
        size = _count(payload, "size")
        ids = self.pair_set(requester)
        encoder = FastEncoder(ids, salt)  # same symbols as Encoder, vectorised (8-13x at 1M ids)
        session_id = os.urandom(SESSION_ID_SIZE)
        reply: dict[str, Any] = {"session": session_id, "size": len(ids)}
        if not listing:  # the encoder hashes the ids on its first symbols: a listing never pays that
            first = min(symbols_for_difference(len(ids) - size), symbols_per_reply(self.max_message_size))
            reply["batch"] = _batch(encoder, 0, first)
        # The one session table is the admission's: one expiry (idle), one place that ends it.
        self._responder().attach(session, session_id, encoder, ids)
        log.info("reconciliation with %s: %d ids in our set for the pair", requester, len(ids))
        return reply

    def _session(self, requester: X500Name, payload: Any) -> IncomingSession:
        """The requester's live session with that id; refused if stopped, killed, idle or another's."""
        return self._responder().coded(requester, _bytes(payload, "session", SESSION_ID_SIZE))

    def _on_symbols(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        session = self._session(requester, payload)
        start, count = _count(payload, "start"), _count(payload, "count")
        limit = self.config.max_number_of_ibf_filter_flows
        with self._lock:
            if session.replies >= limit:
                raise ReconciliationError(f"the session has used its {limit} symbol exchanges")
            if start != session.encoder.produced:
                raise ReconciliationCodecError(
                    "start", f"expected symbol {session.encoder.produced} next, asked for {start}"
                )
            if count < 1:
                raise ReconciliationCodecError("count", f"must be at least 1, got {count}")
            count = min(count, symbols_per_reply(self.max_message_size))
            session.replies += 1
            return {"batch": _batch(session.encoder, start, count)}

    def _on_ids(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        session = self._session(requester, payload)
        offset = _count(payload, "offset")
        with self._lock:
            page = session.ids.page(offset, ids_per_reply(self.max_message_size))
            end = offset + len(page) // ID_SIZE
            return {"ids": page, "next": end if end < len(session.ids) else None}

    def _on_end(self, requester: X500Name, payload: Any) -> dict[str, Any]:
        session = self._session(requester, payload)
        if payload.get("killed") is True:
            self._responder().fail(
                requester, "KilledFlowException: the requester's flow was killed", only=session
            )
            return {"received": 0}
        missing = payload.get("missing")
        if missing is None:
            self._responder().finish(requester, (), only=session)
            return {"received": 0}
        # What we have already is no news (also outside our set for the pair: see _Requester.run).
        told = IdSet.from_bytes(missing, "missing") - session.ids
        ids = {SecureHash(i) for i in _not_recorded(self.graph, told)}
        self.peer_differences[requester] = ids
        if self.on_peer_difference is not None:
            self.on_peer_difference(requester, set(ids))
        self._responder().finish(requester, ids, only=session)
        return {"received": len(ids)}


class _Requester:
    """One outgoing session: the decoder, the bound on exchanges, and the bytes each way."""

    def __init__(
        self, service: LedgerSyncService, party: X500Name, cancelled: threading.Event | None = None
    ) -> None:
        self.service = service
        self.party = party
        self.cancelled = cancelled
        self.mine = service.pair_set(party)
        self.salt = os.urandom(SALT_SIZE)
        self.decoder = fast_decoder(self.mine, self.salt)
        self.messages: list[Exchange] = []

    def call(self, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self.cancelled is not None and self.cancelled.is_set():
            raise KilledFlowException(f"ReconcileWithPartyFlow({self.party})", "stopped by an operator")
        reply = self.service.peers.request(self.party, topic, payload)
        self.messages.append(Exchange(topic, len(encode(payload)), len(encode(reply))))
        if not isinstance(reply, dict):
            raise ReconciliationCodecError(topic, f"the reply is a {type(reply).__name__}, not a map")
        return reply

    def take(self, reply: dict[str, Any], asked: int) -> int:
        """Feed the reply's batch to the decoder; how many symbols it held."""
        batch = reply.pop("batch", None)  # ours alone now, to let go before peeling
        if not isinstance(batch, bytes):
            raise ReconciliationCodecError("batch", "missing, or not bytes")
        if isinstance(self.decoder, FastDecoder):  # the bytes as they came: no object per symbol
            start, count = check_batch(batch, max_symbols=asked)
            if count:
                self.decoder.subtract(memoryview(batch)[HEADER_SIZE:], start)
                del batch
                self.decoder.peel()
        else:
            start, symbols = decode_batch(batch, max_symbols=asked)
            count = len(symbols)
            if count:
                self.decoder.add_remote(symbols, start)
        if not count:
            raise ReconciliationCodecError("batch", "no symbols")
        return count

    def run(self, both_directions: bool, method: str = METHOD_RIBLT) -> ReconciliationResult:
        bound = self.service.config.max_number_of_ibf_filter_flows
        listing = method == METHOD_LIST
        begin: dict[str, Any] = {
            "salt": self.salt,
            "size": len(self.mine),
            "at": to_epoch_ms(self.service.clock.now()),
        }
        if listing:
            begin["list"] = True
        # Our own symbols while the responder makes its first batch: the two sides' slowest steps,
        # overlapped (the C kernel computes ahead until the reply comes; the numpy rounds can only
        # hash ahead).
        local = self.decoder.local
        preparing = None
        replied = threading.Event()
        if not listing and isinstance(local, FastEncoder):

            def ahead() -> None:
                local.prepare()
                local.compute_ahead(SYMBOLS_AHEAD, replied)

            preparing = threading.Thread(target=ahead, name="ledgersync-ahead", daemon=True)
            preparing.start()
        try:
            reply = self.call(TOPIC_BEGIN, begin)
        except ReconciliationAlreadyScheduledException as refused:
            if refused.responder is not None or refused.party != self.service.me:
                raise
            # An older responder names only the party it refused (us): say who holds what.
            raise ReconciliationAlreadyScheduledException(
                refused.party,
                responder=str(self.party),
                advice="it refuses a new session until our old one ends or goes idle (2 minutes); ask again then",
            ) from refused
        finally:
            if preparing is not None:
                replied.set()
                preparing.join()
        session = _bytes(reply, "session", SESSION_ID_SIZE)
        try:
            return self._exchange(session, reply, both_directions, bound, listing)
        except KilledFlowException:
            self._tell_killed(session)
            raise

    def _tell_killed(self, session: bytes) -> None:
        """Free the responder's slot now rather than after its idle timeout (best effort)."""
        try:
            self.service.peers.request(self.party, TOPIC_END, {"session": session, "killed": True})
        except AgentError as exc:
            log.info("could not tell %s that reconciliation was killed: %s", self.party, exc)

    def _exchange(
        self, session: bytes, reply: dict[str, Any], both_directions: bool, bound: int, listing: bool
    ) -> ReconciliationResult:
        their_size = _count(reply, "size")
        planned = symbols_for_difference(their_size - len(self.mine))
        if isinstance(self.decoder, FastDecoder):  # the first batch's symbols, written in place
            self.decoder.reserve(min(planned, ID_SIZE * their_size // SYMBOL_SIZE + 1))
        asked = 0 if listing else self.take(reply, planned)
        exchanges = 1
        # The first batch was sized for the difference of the set sizes (the rest of it follows
        # when one reply could not carry it all); when that was not enough, a quarter more at a
        # time keeps the bytes near the floor. Equal sizes tell nothing of the difference (only
        # that it is two-sided): then the symbols double each time.
        sized = their_size != len(self.mine)
        while not listing and not self.decoder.decoded and exchanges < bound:
            used = self.decoder.symbols_used
            if used < planned:
                asked = planned - used
            else:
                asked = max(16, math.ceil(used / 4)) if sized else max(64, used)
            if (self.decoder.symbols_used + asked) * SYMBOL_SIZE > ID_SIZE * their_size:
                break  # the id list itself is cheaper than these symbols
            remaining = asked
            while remaining and not self.decoder.decoded and exchanges < bound:
                request = {"session": session, "start": self.decoder.symbols_used, "count": remaining}
                remaining -= self.take(self.call(TOPIC_SYMBOLS, request), remaining)
                exchanges += 1
        used_id_list = not self.decoder.decoded
        if used_id_list:
            here, there = self.list_ids(session, their_size)
        else:
            here, there = _differences(self.decoder)
        # An id of theirs outside our set may still be in our ledger: the back-chain of a transaction
        # we lost is in their set and not ours. Missing here means not recorded here at all.
        here = _not_recorded(self.service.graph, here)
        missing = there.tobytes() if both_directions else None  # in id order already
        self.call(TOPIC_END, {"session": session, "missing": missing})
        release_freed_memory()  # the session's sets and pages, else kept by glibc until the next
        return ReconciliationResult(
            self.party,
            SecureHashes(here),
            SecureHashes(there),
            sum(m.sent for m in self.messages),
            sum(m.received for m in self.messages),
            len(self.messages),
            tuple(self.messages),
            used_id_list,
        )

    def list_ids(self, session: bytes, size: int) -> tuple[IdSet, IdSet]:
        """(theirs - mine, mine - theirs), from the responder's set for the pair read a page at a time.

        Only the ids of theirs that we lack are kept, and a byte for each of ours saying whether
        they listed it: their whole list (32 MB at a million ids, and its copies) is never held.
        """
        listing = Listing(self.mine)
        received = 0
        offset: int | None = 0
        while offset is not None:
            reply = self.call(TOPIC_IDS, {"session": session, "offset": offset})
            page = reply.pop("ids", None)
            if not isinstance(page, bytes) or len(page) % ID_SIZE:
                raise ReconciliationCodecError("ids", f"must be concatenated {ID_SIZE}-byte ids")
            following = reply.get("next")
            if following is not None and (not isinstance(following, int) or following <= offset):
                raise ReconciliationCodecError("next", f"must follow offset {offset}, got {following!r}")
            received += len(page) // ID_SIZE
            if received > size:
                raise ReconciliationCodecError("ids", f"more than the {size} ids the responder announced")
            listing.add(page)
            del page
            offset = following
        return listing.lacking(), listing.unlisted()


def _batch(encoder: Encoder, start: int, count: int) -> bytes:
    """A batch of the encoder's next symbols, serialised (the numpy encoder writes the bytes itself)."""
    if isinstance(encoder, FastEncoder):
        return batch_header(start, count) + encoder.next_batch_bytes(count)
    return encode_batch(encoder.next_symbols(count), start)


def _differences(decoder: Decoder) -> tuple[IdSet, IdSet]:
    """(remote only, local only) of a decoded session."""
    if isinstance(decoder, FastDecoder):
        return decoder.differences()
    return IdSet.of(decoder.remote_only()), IdSet.of(decoder.local_only())


def _not_recorded(graph: LedgerGraph, ids: IdSet) -> IdSet:
    """The ids that are not in the graph."""
    graph.arrays()  # merges the transactions buffered since the last read (lookup does not)
    return ids.select(graph.lookup(ids.tobytes()) < 0)


def _bytes(payload: Any, key: str, size: int) -> bytes:
    value = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(value, bytes) or len(value) != size:
        raise ReconciliationCodecError(key, f"must be {size} bytes")
    return value


def _count(payload: Any, key: str) -> int:
    value = payload.get(key) if isinstance(payload, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ReconciliationCodecError(key, f"must be a non-negative integer, got {value!r}")
    return value


# The responder's refusals travel by name; these two are rebuilt as themselves at the requester.
for _name, _codec in (
    (
        "CannotReconcileWithSelfException",
        ErrorCodec(lambda e: {"party": e.party}, lambda d: CannotReconcileWithSelfException(str(d["party"]))),
    ),
    (
        "LedgerGraphNotReadyException",
        ErrorCodec(lambda e: {"reason": str(e)}, lambda d: LedgerGraphNotReadyException(str(d["reason"]))),
    ),
    (
        "MaxIncomingSessionsExceededException",
        ErrorCodec(
            lambda e: {"reason": str(e)}, lambda d: MaxIncomingSessionsExceededException(str(d["reason"]))
        ),
    ),
    (
        "ReconciliationRateLimitExceededException",
        ErrorCodec(
            lambda e: {"reason": str(e)}, lambda d: ReconciliationRateLimitExceededException(str(d["reason"]))
        ),
    ),
    (
        "ReconciliationAlreadyScheduledException",
        ErrorCodec(
            lambda e: {"party": e.party, "responder": e.responder, "advice": e.advice},
            lambda d: ReconciliationAlreadyScheduledException(
                str(d["party"]),
                responder=None if d.get("responder") is None else str(d["responder"]),
                advice=str(d.get("advice") or ""),
            ),
        ),
    ),
):
    if _name not in ERROR_CODECS:
        register_error_codec(_name, _codec)

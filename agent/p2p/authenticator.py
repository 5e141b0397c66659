"""Sealing and opening peer messages: who sent it, for whom, when, and only once.

Every message is signed with the sender's identity key and checked against the key the network map
holds for the sender, so a peer proves who it is with nothing but the map everyone already trusts.
The recipient is signed too (a message to A cannot be replayed to B), and a timestamp plus a random
nonce stop replays: a nonce is remembered for as long as its message could still pass the timestamp
check (the replay window), and a message stamped before this authenticator's own start is refused
outright, because the nonces seen before a restart are gone. Not "before the start less the allowed
skew": a message sealed a minute before a restart would then pass again after it, and a replayed
`ledgersync.begin` could open a session in its sender's name. The cost falls on a sender whose clock
lags ours by some delta: its messages are refused for delta after our start, as "sealed before this
receiver's start" (`StaleMessageError`, `before_start` in its details), and its PeerClient seals them
again after a short back-off (`agent.p2p.client`), which covers what NTP leaves. The nonces are not
persisted: a write per message for a window of a few milliseconds of clock difference.

The checks run in a fixed order, cheapest trust first, and the nonce is only recorded once every other
check has passed: a refused message does not burn its nonce.
"""

from __future__ import annotations

import heapq
import os
import threading
from datetime import datetime, timedelta
from typing import Any

from agent.clock import Clock, from_epoch_ms, to_epoch_ms
from agent.errors import (
    BadMessageSignatureError,
    IdentityError,
    ReplayedMessageError,
    StaleMessageError,
    UnexpectedReplyError,
    UnknownSenderError,
    WrongRecipientError,
)
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair
from agent.network.network_map import NetworkMap
from agent.p2p.envelope import NONCE_SIZE, Envelope, SealedMessage, parse_sealed, signing_input, wire


class MessageAuthenticator:
    """Seals messages as one identity and opens messages addressed to it. Thread-safe."""

    def __init__(
        self,
        identity: Party,
        key: KeyPair,
        network_map: NetworkMap,
        clock: Clock,
        *,
        max_clock_skew: timedelta = timedelta(minutes=2),
        replay_window: timedelta = timedelta(minutes=10),
    ) -> None:
        if key.public != identity.owning_key:
            raise IdentityError(f"the key given for {identity.name} is not its identity key")
        if max_clock_skew < timedelta(0):
            raise ValueError(f"max_clock_skew must not be negative, got {max_clock_skew}")
        if replay_window <= timedelta(0):
            raise ValueError(f"replay_window must be positive, got {replay_window}")
        self.identity = identity
        self._key = key
        self._map = network_map
        self._clock = clock
        self.max_clock_skew = max_clock_skew
        self.replay_window = replay_window
        # Whole milliseconds, as stamps are: a message sealed in our first millisecond is not "before" it.
        self.started_at = from_epoch_ms(to_epoch_ms(clock.now()))
        self._lock = threading.Lock()
        # (sender, nonce) -> expiry, with a heap of (expiry, sender, nonce) to drop them in order.
        self._seen: dict[tuple[X500Name, bytes], datetime] = {}
        self._expiries: list[tuple[datetime, str, bytes, X500Name]] = []

    @property
    def name(self) -> X500Name:
        return self.identity.name

    @property
    def network_map(self) -> NetworkMap:
        return self._map

    def seal_envelope(
        self, recipient: X500Name, topic: str, payload: Any, in_reply_to: bytes | None = None
    ) -> tuple[Envelope, bytes]:
        """The envelope and its sealed bytes, stamped now with a fresh nonce."""
        if not topic:
            raise ValueError("topic must not be empty")
        if in_reply_to is not None and len(in_reply_to) != NONCE_SIZE:
            raise ValueError(f"in_reply_to must be a {NONCE_SIZE}-byte nonce")
        envelope = Envelope(
            sender=self.identity.name,
            recipient=recipient,
            timestamp=from_epoch_ms(to_epoch_ms(self._clock.now())),
            nonce=os.urandom(NONCE_SIZE),
            topic=topic,
            payload=payload,
            in_reply_to=in_reply_to,
        )
        body = envelope.body()
        return envelope, wire(body, self._key.sign(signing_input(body)))

    def seal(self, recipient: X500Name, topic: str, payload: Any, in_reply_to: bytes | None = None) -> bytes:
        """Sealed bytes of a message to recipient; the payload must be plain CBOR data."""
        return self.seal_envelope(recipient, topic, payload, in_reply_to)[1]

    def open(
        self, data: bytes, *, expect_sender: X500Name | None = None, expect_reply_to: bytes | None = None
    ) -> Envelope:
        """The envelope of a message that passes every check, or the named refusal of the first that fails."""
        return self.verify(parse_sealed(data), expect_sender=expect_sender, expect_reply_to=expect_reply_to)

    def verify(
        self,
        sealed: SealedMessage,
        *,
        expect_sender: X500Name | None = None,
        expect_reply_to: bytes | None = None,
    ) -> Envelope:
        """The checks of open after parsing; for callers that need the claimed envelope of a refusal."""
        envelope = sealed.envelope
        sender = envelope.sender
        try:
            key = self._map.node(sender).party.owning_key
        except IdentityError:
            raise UnknownSenderError(str(sender)) from None
        if not key.verify(sealed.signature, signing_input(sealed.body)):
            raise BadMessageSignatureError(str(sender))
        if envelope.recipient != self.identity.name:
            raise WrongRecipientError(str(sender), str(envelope.recipient), str(self.identity.name))
        if expect_sender is not None and sender != expect_sender:
            raise UnexpectedReplyError(f"expected a reply from {expect_sender}, got one from {sender}")
        if expect_reply_to is not None and envelope.in_reply_to != expect_reply_to:
            raise UnexpectedReplyError(f"the message from {sender} does not answer our request")
        now = self._clock.now()
        self._check_time(envelope, now)
        self._remember(envelope, now)
        return envelope

    def _check_time(self, envelope: Envelope, now: datetime) -> None:
        stamp = envelope.timestamp
        reason = None
        if stamp > now + self.max_clock_skew:
            reason = f"{stamp - now} ahead of this clock, beyond the allowed skew of {self.max_clock_skew}"
        elif stamp < now - self.replay_window:
            reason = f"{now - stamp} old, older than the replay window of {self.replay_window}"
        elif stamp < self.started_at:
            # Its nonce may have been seen before a restart, and is forgotten since: never accepted.
            raise StaleMessageError(
                str(envelope.sender),
                stamp.isoformat(),
                f"sealed before this receiver's start at {self.started_at.isoformat()}, so possibly "
                f"seen before a restart; a message sealed afresh is accepted (if the sender's clock "
                f"lags ours, once it reads {self.started_at.isoformat()})",
                before_start=True,
            )
        if reason is not None:
            raise StaleMessageError(str(envelope.sender), stamp.isoformat(), reason)

    def _remember(self, envelope: Envelope, now: datetime) -> None:
        key = (envelope.sender, envelope.nonce)
        # Past this moment the timestamp check refuses the message anyway, so the nonce can go.
        expiry = envelope.timestamp + self.replay_window
        with self._lock:
            while self._expiries and self._expiries[0][0] < now:
                _, _, nonce, sender = heapq.heappop(self._expiries)
                self._seen.pop((sender, nonce), None)
            if key in self._seen:
                raise ReplayedMessageError(str(envelope.sender), envelope.nonce.hex())
            self._seen[key] = expiry
            heapq.heappush(self._expiries, (expiry, str(envelope.sender), envelope.nonce, envelope.sender))

    @property
    def remembered_nonces(self) -> int:
        """How many nonces are held now (bounded by the message rate times the replay window)."""
        with self._lock:
            return len(self._seen)

    def __repr__(self) -> str:
        # Never the key.
        return f"MessageAuthenticator({self.identity.name})"

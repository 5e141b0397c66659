"""A fault-processing decorator of the peer transport, for seeded simulations (indy-plenum's processors).

`FaultyTransport` wraps any RawTransport (in simulations, the in-process one) and, for each request,
draws at most one fault from its own `random.Random`:

    drop_request   the request is lost: the handler never runs, the caller sees a transient error
    drop_reply     the handler ran, but its reply is lost: the caller sees a transient error (and its
                   retry, freshly sealed, reaches a handler that has already acted: idempotence)
    delay          the request is held (the caller times out) and delivered later, after other messages
    duplicate      the request is delivered twice: the caller gets the first answer; the copy arrives
                   right after it or later on, after other messages (reordered)

Held messages sit in one `HeldMessages` pool shared by every node's transport, so a message can be
overtaken by any other; each request sent releases a held one with probability `release` (and
`HeldMessages.release_all` the rest), and a courier thread delivers what was released. A late
delivery's reply goes nowhere (its caller gave up long ago); a refusal of it (stale, replayed) is part
of what is being tested.

The decisions depend only on the seed of the Random and on the order of this transport's requests.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from agent.errors import TransientTransportError
from agent.p2p.client import RawTransport

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class NetworkFaults:
    """Per request, the probability of each fault (at most one is drawn); all zero is a healthy network."""

    drop_request: float = 0.0
    drop_reply: float = 0.0
    delay: float = 0.0
    duplicate: float = 0.0
    release: float = 0.3  # per request sent, the chance that one held message is released

    def __post_init__(self) -> None:
        chances = (self.drop_request, self.drop_reply, self.delay, self.duplicate)
        if any(not 0 <= p <= 1 for p in (*chances, self.release)) or sum(chances) > 1:
            raise ValueError(f"fault probabilities must lie in [0, 1] and sum to at most 1: {self}")


@dataclass(frozen=True)
class HeldMessage:
    transport: RawTransport
    address: str
    body: bytes


class HeldMessages:
    """Messages delayed on the way (network-wide): held, then released, then delivered by a courier.

    Delivery is not on a sender's thread: between sealing a request and the check of its reply a
    thread must not stop to deliver someone else's message (its own would then arrive stale, which
    no real network with a request timeout does). `courier` is that thread's loop.
    """

    def __init__(self) -> None:
        self._held: list[HeldMessage] = []
        self._ready: list[HeldMessage] = []
        self._delivering = 0
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._held) + len(self._ready) + self._delivering

    def hold(self, message: HeldMessage) -> None:
        with self._changed:
            self._held.append(message)

    def send(self, message: HeldMessage) -> None:
        """Release a message at once (a duplicate right behind its original)."""
        with self._changed:
            self._ready.append(message)
            self._changed.notify_all()

    def release_one(self, pick: float) -> None:
        """Release the held message at fraction pick (0 <= pick < 1) of the pool, if any: not the oldest,
        since the delivery order is part of the fault."""
        with self._changed:
            if self._held:
                self._ready.append(self._held.pop(int(pick * len(self._held))))
                self._changed.notify_all()

    def release_all(self) -> None:
        """Release every held message, in the order they were held."""
        with self._changed:
            self._ready += self._held
            self._held = []
            self._changed.notify_all()

    def wait_delivered(self, timeout: float | None) -> bool:
        """Wait until every released message has been delivered; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._ready and not self._delivering, timeout)

    def courier(self, stop: threading.Event) -> None:
        """Deliver released messages, one at a time, until stop is set (run it on its own thread)."""
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._ready) or stop.is_set())
                if stop.is_set():
                    return
                message = self._ready.pop(0)
                self._delivering += 1
            try:
                deliver_late(message)
            finally:
                with self._changed:
                    self._delivering -= 1
                    self._changed.notify_all()

    def stop(self, stop: threading.Event) -> None:
        """Set stop and wake the courier."""
        with self._changed:
            stop.set()
            self._changed.notify_all()


def deliver_late(message: HeldMessage) -> None:
    """Deliver a held message; its reply has no one to go to, and a peer that is down loses it."""
    try:
        message.transport.post(message.address, message.body, 30.0)
    except TransientTransportError as exc:
        log.debug("a late message to %s was lost: %s", message.address, exc)


class FaultyTransport:
    """RawTransport that drops, delays, duplicates and reorders what it carries to `inner`."""

    def __init__(
        self,
        inner: RawTransport,
        faults: NetworkFaults,
        rng: random.Random,
        held: HeldMessages | None = None,
    ) -> None:
        self.inner = inner
        self.faults = faults
        self.rng = rng
        self.held = held if held is not None else HeldMessages()
        self.enabled = True  # a simulation lets the network heal before it checks its invariants
        self._lock = threading.Lock()  # one Random, many flow threads

    def _draw(self) -> tuple[str | None, bool]:
        """(the fault for this request, whether a duplicate of it goes later)."""
        f = self.faults
        with self._lock:
            # Four draws per request whatever the pool holds: this Random's sequence is ours alone.
            release, pick, roll, order = [self.rng.random() for _ in range(4)]
        if release < f.release:
            self.held.release_one(pick)  # an older message, overtaken by later ones, goes now
        later = order < 0.5
        for name, chance in (
            ("drop_request", f.drop_request),
            ("drop_reply", f.drop_reply),
            ("delay", f.delay),
            ("duplicate", f.duplicate),
        ):
            if roll < chance:
                return name, later
            roll -= chance
        return None, later

    def post(self, address: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        if not self.enabled:
            return self.inner.post(address, body, timeout)
        fault, later = self._draw()
        if fault == "drop_request":
            raise TransientTransportError(address, "request lost (simulated)")
        if fault == "delay":
            self.held.hold(HeldMessage(self.inner, address, body))
            raise TransientTransportError(address, "timed out (simulated: the request is delayed)")
        reply = self.inner.post(address, body, timeout)
        if fault == "duplicate":
            # The caller has the first delivery's answer; the copy arrives right after it or later on.
            copy = HeldMessage(self.inner, address, body)
            if later:
                self.held.hold(copy)
            else:
                self.held.send(copy)  # right behind the first, by the courier: our reply waits for nothing
        if fault == "drop_reply":
            raise TransientTransportError(address, "reply lost (simulated)")
        return reply

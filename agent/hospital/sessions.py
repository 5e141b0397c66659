"""A peer's message on a topic this node does not handle: kept for observation, not refused.

Corda keeps a session-init for a flow class it lacks (a missing CorDapp) in the hospital until the
CorDapp is installed and the node restarted, or `killFlow` sends the peer a reject. Here the message's
(sender, topic) becomes an UnhandledSessionFlow, HOSPITALIZED by the UnknownFlowSpecialist; the
sender is answered KeptForObservationError and asks again with back-off, as for a peer that is down.

- After an upgrade and a restart the flow runs again: the topic is handled now, so it completes and
  the sender's next attempt is served.
- Killed by an operator: the peer is told (`flow.session.rejected`), and from then on its messages on
  that topic are refused (404 UnknownTopicError), so its waiting flows fail instead of waiting. On the
  peer, the notice wakes the flows waiting on us at once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from agent.errors import PeerError, UnknownTopicError
from agent.flows.checkpoints import FlowStatus
from agent.flows.engine import FlowEngine
from agent.flows.flow import Advance, Flow, FlowContext, StepOutcome
from agent.ledger import serialization as ser
from agent.ledger.identity import X500Name
from agent.p2p.client import PeerClient
from agent.p2p.service import PeerService

log = logging.getLogger("ledger_agent.hospital")

UNHANDLED_SESSION_FLOW = "UnhandledSessionFlow"
TOPIC_SESSION_REJECTED = "flow.session.rejected"
KEPT = (FlowStatus.RUNNABLE, FlowStatus.HOSPITALIZED, FlowStatus.PAUSED)


class UnhandledSessionFlow(Flow):
    """A peer's (sender, topic) that nobody here handles; completes once something does."""

    name = UNHANDLED_SESSION_FLOW

    def __init__(self, state: dict[str, Any], sessions: UnhandledSessions) -> None:
        super().__init__(state)
        self.sessions = sessions
        self.sender = X500Name.parse(ser.expect(state["sender"], str, "sender"))
        self.topic = ser.expect(state["topic"], str, "topic")

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return (self.sender,)

    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        if self.topic in self.sessions.peer_service.topics:
            log.info("topic %r from %s is handled now: its next message is served", self.topic, self.sender)
            return Advance("HANDLED", done=True)
        raise UnknownTopicError(self.topic)

    def on_killed(self) -> None:
        self.sessions.tell_rejected(self.sender, self.topic)


class UnhandledSessions:
    """The unknown-topic hook of the peer service, and the notice of a peer's rejection."""

    def __init__(self, engine: FlowEngine, peer_service: PeerService, peers: PeerClient) -> None:
        self.engine = engine
        self.peer_service = peer_service
        self.peers = peers
        self._lock = threading.Lock()

    def register(self) -> None:
        self.engine.register(UNHANDLED_SESSION_FLOW, lambda state: UnhandledSessionFlow(state, self))
        self.peer_service.on_unknown_topic(self.keep)
        self.peer_service.register(TOPIC_SESSION_REJECTED, ser.map_payload(self._on_rejected))

    def keep(self, sender: X500Name, topic: str) -> str | None:
        """Why (sender, topic) is kept, starting its flow the first time; None once an operator killed it."""
        with self._lock:
            latest = None
            for cp in self.engine.flows(flow_name=UNHANDLED_SESSION_FLOW, counterparty=sender):
                if _topic(cp.value) == topic:
                    latest = cp  # oldest first: the last is the newest
            if latest is not None and latest.status is FlowStatus.KILLED:
                return None
            if latest is None or latest.status not in KEPT:
                flow_id = self.engine.start(
                    UnhandledSessionFlow({"sender": str(sender), "topic": topic}, self)
                ).flow_id
            else:
                flow_id = latest.flow_id
        return (
            f"no handler for topic {topic!r} here (an older agent?); flow {flow_id} keeps it until this "
            "node is upgraded and restarted, or its operator kills that flow"
        )

    def tell_rejected(self, peer: X500Name, topic: str) -> None:
        try:
            self.peers.request(peer, TOPIC_SESSION_REJECTED, {"topic": topic})
        except PeerError as exc:  # it learns at its next attempt, which is refused
            log.warning("could not tell %s that its messages on %r are rejected: %s", peer, topic, exc)

    def _on_rejected(self, sender: X500Name, payload: Any) -> dict[str, Any]:
        topic = ser.expect(payload.get("topic"), str, "topic")
        log.warning(
            "%s rejects our messages on topic %r (its operator killed the flow that kept them)", sender, topic
        )
        woken = self.engine.wake_waiting(f"{sender} (keeps it for observation)")
        return {"woken": woken}


def _topic(value: bytes | None) -> str | None:
    if value is None:
        return None
    state = ser.decode(value, "checkpoint")
    return state.get("topic") if isinstance(state, dict) else None

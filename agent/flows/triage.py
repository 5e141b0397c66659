"""The one place that decides what an error in a flow's step means: retry later, keep for
observation, kill, or fail.

The engine asks its ErrorPolicy; a node's is the flow hospital (agent.hospital), whose staff diagnose.
`default_policy` is the engine's own, for an engine built without a hospital (tests of the engine):
it keeps Corda's messaging behaviour for peers that are down (a message to an offline node waits in
its queue until the node is back, so the flow waits too, for ever, visibly) and fails the flow on
anything else.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from agent.errors import PeerRequestError, PeerUnreachableError, ReceiverBusyError, TransientTransportError
from agent.flows.checkpoints import FlowCheckpoint

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 30.0


@dataclass(frozen=True)
class Retry:
    """Run the step again from the last checkpoint after `delay` seconds on the engine's clock."""

    delay: float
    waiting_for: str


@dataclass(frozen=True)
class Fail:
    """End the flow FAILED with its error."""


@dataclass(frozen=True)
class Observe:
    """Keep the flow for observation: HOSPITALIZED at its last checkpoint until an operator retries,
    pauses or kills it, or the node restarts (Corda's overnight observation)."""

    waiting_for: str


@dataclass(frozen=True)
class Kill:
    """End the flow KILLED (only where node.conf's hospital policy says so: the hospital's own staff
    never terminate a flow)."""


Decision = Retry | Fail | Observe | Kill


class ErrorPolicy(Protocol):
    def __call__(self, checkpoint: FlowCheckpoint, error: BaseException, attempts: int) -> Decision:
        """attempts: how many times this step already failed since the last checkpoint."""
        ...


def peer_backoff(attempts: int, rng: random.Random | None = None) -> float:
    """1 s, 2 s, 4 s ... capped at 30 s, each cut by up to a quarter so restarted peers are not stampeded."""
    ceiling = min(MAX_RETRY_S, FIRST_RETRY_S * float(2 ** min(attempts, 16)))
    draw: float = (rng or random.Random()).random()
    return ceiling * (1 - 0.25 * draw)


def default_policy(checkpoint: FlowCheckpoint, error: BaseException, attempts: int) -> Decision:
    """Wait for peers that are down or still at work (Corda's durable messaging); fail on anything else."""
    if isinstance(error, PeerUnreachableError):
        return Retry(peer_backoff(attempts), f"{error.peer} (unreachable)")
    if isinstance(error, TransientTransportError):
        return Retry(peer_backoff(attempts), f"{error.address} (unreachable)")
    if isinstance(error, PeerRequestError) and error.error_type == ReceiverBusyError.__name__:
        return Retry(peer_backoff(attempts), f"{error.peer} (still at work on it)")
    return Fail()

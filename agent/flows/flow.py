"""What a durable flow is: named steps over a state that the engine saves after each one.

A flow is a class. Its state is a plain dict of CBOR values (bytes, str, int, lists, maps): the engine
writes it, canonically encoded, into the checkpoint after every step and gives it back to a new
instance after a restart. `step(progress_step, ctx)` is called with the name of the last step that
committed ("STARTED" for a new flow) and does the next one. It returns what happened:

- `Advance(step, effect)`: the flow reached `step`. `effect` (database writes) runs in the same
  database transaction as the checkpoint that records `step` and the new state, so a crash leaves
  either both or neither. Messages to peers are sent in the step itself, before that commit: a step
  replayed after a crash may send again, and receivers answer a repeat as they answered the first.
  `done=True` ends the flow COMPLETED with `result`; `fail=` ends it FAILED with that error, after
  the effect committed (a flow that undid its work and now reports why).
- `Await(keys, deadline, waiting_for)`: park until a message under one of `keys` arrives
  (`FlowEngine.deliver`) or the deadline passes on the engine's clock; then the same step is called
  again and reads `ctx.message(key)` or `ctx.timed_out`. A parked flow holds no thread.

An exception raised by a step goes to the engine's error policy (agent/flows/triage.py), which
retries from the last checkpoint or fails the flow.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name

STARTED = "STARTED"


@dataclass(frozen=True)
class Advance:
    """The flow reached `step`; `effect` commits with the checkpoint."""

    step: str
    effect: Callable[[], object] | None = None
    done: bool = False
    result: Any = None
    fail: BaseException | None = None


@dataclass(frozen=True)
class Await:
    """Park until a message under one of `keys` arrives or `deadline` passes."""

    keys: tuple[str, ...]
    deadline: datetime
    waiting_for: str


StepOutcome = Advance | Await


@dataclass
class FlowContext:
    """What a step sees of the engine: its id, the clock's time, the messages delivered to it."""

    flow_id: str
    now: datetime
    timed_out: bool = False
    mailbox: dict[str, Any] = field(default_factory=dict)
    cancelled: threading.Event = field(default_factory=threading.Event)  # an operator killed the flow

    def message(self, key: str) -> Any:
        """The message delivered under key, or None."""
        return self.mailbox.get(key)


class Flow(ABC):
    """A durable flow; subclasses name themselves and define `step`."""

    name: ClassVar[str]

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    @property
    def tx_id(self) -> SecureHash | None:
        """The transaction this flow is about, if any (shown in listings, queried by operators)."""
        return None

    @property
    def counterparties(self) -> tuple[X500Name, ...]:
        return ()

    @abstractmethod
    def step(self, progress_step: str, ctx: FlowContext) -> StepOutcome:
        """Do the step that follows progress_step."""

    def on_killed(self) -> None:  # noqa: B027 (most flows have no one to tell)
        """Called once an operator killed the flow: tell the counterparties (best effort)."""

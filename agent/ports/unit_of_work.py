"""One database transaction around writes through several ports (a flow step's effects and checkpoint)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class UnitOfWork(Protocol):
    """All or nothing across the ports of one store; listeners hear of recorded transactions after commit."""

    def unit_of_work(self) -> AbstractContextManager[None]:
        """Writes inside join one transaction (nested units are savepoints); a raise rolls all back."""
        ...

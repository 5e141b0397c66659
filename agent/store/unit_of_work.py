"""The unit of work across the store's repositories, and the listeners it holds back until commit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import peewee

from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import TransactionStatus
from agent.ports.transactions import TransactionListener
from agent.store.database import write_transaction


class PeeweeUnitOfWork:
    """One database transaction around several repositories' writes; notifications after its commit."""

    def __init__(self, database: peewee.Database) -> None:
        self.database = database
        self._listeners: list[TransactionListener] = []
        # Per thread, as peewee's connections and transactions are: another thread's writes are not ours.
        self._unit = threading.local()

    def add_listener(self, listener: TransactionListener) -> None:
        """Called after each commit that records a transaction or changes its status (not by bulk_record)."""
        self._listeners.append(listener)

    def notify(self, stx: SignedTransaction, status: TransactionStatus) -> None:
        """Tell the listeners now, or when the enclosing unit of work commits (never if it rolls back)."""
        pending: list[tuple[SignedTransaction, TransactionStatus]] | None = getattr(
            self._unit, "pending", None
        )
        if pending is not None:
            pending.append((stx, status))
            return
        for listener in self._listeners:
            listener(stx, status)

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One database transaction around several writes (a flow step's effects and its checkpoint).

        Writes inside nest as savepoints; listeners hear of recorded transactions after the commit.
        """
        outer = getattr(self._unit, "pending", None) is None
        if outer:
            self._unit.pending = []
        try:
            with write_transaction(self.database):
                yield
        except BaseException:
            if outer:
                self._unit.pending = None
            raise
        if outer:
            events, self._unit.pending = self._unit.pending, None
            for stx, status in events:
                self.notify(stx, status)

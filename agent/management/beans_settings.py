"""The settings an operator changes at run time, as writable attributes (Jolokia write, JSON-RPC's
setX and write): LedgerSync's limits on ledgeragent:type=LedgerSync, and the log levels on
ledgeragent:type=Logging.

    LedgerSync  MaxNumberOfIbfFilterFlows, MaxNumberOfParallelReconciliationRequests,
                MaxAllowedReconciliationRequestsPerTimeWindow, TransactionReaderPageSize,
                TransactionReaderPoolSize (int, the reference's ranges); MaxReconciliationRetryAttemptTimeout,
                TimeWindowForReconciliationRequestLimit (a duration as the .conf writes it: 1H, 30M, 5H3M2S)
    Logging     Level (the agent's loggers), LibraryLevel (httpx, httpcore, cheroot, werkzeug): DEBUG,
                INFO, WARNING, ERROR or CRITICAL, any case

A write needs the operator role. Each write checks its caller itself (an attribute guard) so that it
is written to the audit log like an operator's command: action `write`, target `<bean> <Attribute> =
<value>`, outcome done (with the old value), refused (a read-only user, before the value is looked at)
or error (a value out of range: the message names the attribute and what is allowed, and nothing
changes). A write lasts until the agent stops: the .conf files are not rewritten.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from agent.errors import ConfigurationError, shown
from agent.hospital.records import AuditEntry
from agent.ledgersync.app import LedgerSync
from agent.ledgersync.config import (
    DURATION_ALLOWED,
    DURATION_KEYS,
    INT_KEYS,
    LedgerSyncConfig,
    field_name,
    parse_duration,
)
from agent.logs.settings import LEVELS
from agent.logs.setup import LIBRARY_LOGGERS
from agent.management.audit import CommandGate, actor_of
from mbeans.access import require_action
from mbeans.caller import Caller
from mbeans.errors import IllegalArgumentException, SecurityException
from mbeans.model import JavaType, MBean, WriteGuard
from mbeans.objectname import ObjectName

LOGGING = ObjectName.parse("ledgeragent:type=Logging")
WRITE_ACTION = "write"  # the audit log's action for an attribute's write
MAX_VALUE_CHARS = 200  # of a written value in the audit log's target


def attribute_name(key: str) -> str:
    """The .conf's key as a JMX attribute: maxNumberOfIbfFilterFlows -> MaxNumberOfIbfFilterFlows."""
    return key[0].upper() + key[1:]


def duration_text(value: timedelta) -> str:
    """A duration as the .conf writes it (1H, 30M, 5H3M2S; 0S for none)."""
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return text or "0S"


class AuditedWrites:
    """The guard and the audit entries of one bean's writable settings."""

    def __init__(self, bean: ObjectName, gate: CommandGate) -> None:
        self.bean = bean
        self.gate = gate

    def guard(self, attribute: str) -> WriteGuard:
        def check(caller: Caller | None, value: Any) -> None:
            if caller is None:
                return
            try:
                require_action(caller.principal, f"write {self.bean} {attribute}")
            except SecurityException as exc:
                self.record(caller, attribute, value, f"refused: {exc}")
                raise

        return check

    def record(self, caller: Caller | None, attribute: str, value: Any, outcome: str) -> None:
        actor = actor_of(caller)
        entry = AuditEntry(
            at=self.gate.clock.now(),
            user=actor.user,
            role=actor.role,
            action=WRITE_ACTION,
            reason=None,
            target=f"{self.bean} {attribute} = {shown(value, MAX_VALUE_CHARS)}",
            outcome=outcome,
            surface=actor.surface,
        )
        self.gate.append(entry)

    def writer(
        self, attribute: str, read: Callable[[], Any], apply: Callable[[Any], None]
    ) -> Callable[[Caller | None, Any], None]:
        """write(caller, value): apply (which refuses a bad value with IllegalArgumentException, having
        changed nothing), then the audit log's entry either way."""

        def write(caller: Caller | None, value: Any) -> None:
            old = read()
            try:
                apply(value)
            except IllegalArgumentException as exc:
                self.record(caller, attribute, value, f"error: {exc}")
                raise
            self.record(caller, attribute, value, f"done: was {shown(old)}")

        return write


def add_ledgersync_limits(bean: MBean, sync: LedgerSync, gate: CommandGate) -> None:
    """LedgerSync's limits on its bean, each writable by an operator (the reference's ranges)."""
    writes = AuditedWrites(bean.name, gate)
    lock = threading.Lock()  # one write at a time: each replaces the whole config

    def replace(attribute: str, key: str, value: Any) -> None:
        with lock:
            try:
                new = dataclasses.replace(sync.config, **{field_name(key): value})
            except ConfigurationError as exc:
                raise IllegalArgumentException(f"{attribute}: {shown(value)}; {exc.allowed}") from exc
            _reconfigure(sync, new)

    for key, (_, low, high) in INT_KEYS.items():
        name = attribute_name(key)

        def read_int(key: str = key) -> int:
            return int(getattr(sync.config, field_name(key)))

        def apply_int(value: Any, key: str = key, name: str = name, low: int = low, high: int = high) -> None:
            if not low <= value <= high:
                raise IllegalArgumentException(
                    f"{name}: {shown(value)}; allowed: an integer from {low} to {high}"
                )
            replace(name, key, value)

        bean.attribute(
            name,
            JavaType.INT,
            f"LedgerSync's {key} ({low} to {high}); an operator may write it, until the agent stops",
            read_int,
            writes.writer(name, read_int, apply_int),
            guard=writes.guard(name),
        )
    for key in DURATION_KEYS:
        name = attribute_name(key)

        def read_duration(key: str = key) -> str:
            return duration_text(getattr(sync.config, field_name(key)))

        def apply_duration(value: Any, key: str = key, name: str = name) -> None:
            try:
                duration = parse_duration(value, key)
            except ConfigurationError:
                raise IllegalArgumentException(f"{name}: {shown(value)}; {DURATION_ALLOWED}") from None
            replace(name, key, duration)

        bean.attribute(
            name,
            JavaType.STRING,
            f"LedgerSync's {key}, a duration (1H, 30M, 5H3M2S; 0S or more); an operator may write it, "
            "until the agent stops",
            read_duration,
            writes.writer(name, read_duration, apply_duration),
            guard=writes.guard(name),
        )


def _reconfigure(sync: LedgerSync, new: LedgerSyncConfig) -> None:
    """Every part of LedgerSync reads its limits from its config when it needs them: hand each the new
    one. The scheduler's slots were sized at start: resize them, and wake the waiting if they grew
    (reconciliations running past a lowered limit finish; no new one starts until under it)."""
    sync.config = new
    sync.incoming.config = new
    sync.service.config = new
    sync.scheduler.config = new
    slots = sync.scheduler.slots
    slots.capacity = new.max_number_of_parallel_reconciliation_requests
    slots.wake()


def logging_bean(gate: CommandGate, root: logging.Logger | None = None) -> MBean:
    """ledgeragent:type=Logging: the log levels, writable by an operator (node.conf's logging block
    sets them at start)."""
    logger = root or logging.getLogger()
    bean = MBean(LOGGING, "The agent's log: its levels, writable at run time", "ledgeragent.Logging")
    writes = AuditedWrites(LOGGING, gate)
    allowed = f"allowed: {', '.join(LEVELS)} (any case)"

    def level_of(value: Any, name: str) -> int:
        text = value.upper() if isinstance(value, str) else value
        if text not in LEVELS:
            raise IllegalArgumentException(f"{name}: {shown(value)}; {allowed}")
        return logging.getLevelNamesMapping()[text]

    def read_level() -> str:
        return logging.getLevelName(logger.level)

    def apply_level(value: Any) -> None:
        logger.setLevel(level_of(value, "Level"))

    def read_library_level() -> str:
        return logging.getLevelName(logging.getLogger(LIBRARY_LOGGERS[0]).level)

    def apply_library_level(value: Any) -> None:
        level = level_of(value, "LibraryLevel")
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).setLevel(level)

    bean.attribute(
        "Level",
        JavaType.STRING,
        f"The agent's log level (node.conf logging.level); {allowed}",
        read_level,
        writes.writer("Level", read_level, apply_level),
        guard=writes.guard("Level"),
    )
    bean.attribute(
        "LibraryLevel",
        JavaType.STRING,
        f"The level of {', '.join(LIBRARY_LOGGERS)} (node.conf logging.libraryLevel); {allowed}",
        read_library_level,
        writes.writer("LibraryLevel", read_library_level, apply_library_level),
        guard=writes.guard("LibraryLevel"),
    )
    return bean

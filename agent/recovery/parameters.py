"""LedgerRecoveryFlow's parameters, in both shapes Corda gave them, checked field by field.

The first 4.11 API (ledger-recovery.md): recoveryPeers, timeWindow, useAllNetworkNodes,
transactionRole, dryRun, optimisticInitiatorRecovery. What Corda 4.11 shipped,
LedgerRecoveryParameters: recoveryPeers, timeWindow, useAllNetworkNodes, dryRun,
useTimeWindowNarrowing, verboseLogging, recoveryBatchSize, alsoFinalize. Both are accepted, flat or
under "parameters" (the shipped class as one argument); the union of their fields is one dataclass.
A timeWindow left out is node.conf's transactionRecoveryPeriod back from now; with none, the flow
refuses, as Corda's does.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent.clock import from_epoch_ms, to_epoch_ms
from agent.errors import ConfigurationError, InvalidNameError
from agent.ledger.identity import X500Name

MAX_BATCH_SIZE = 10_000
DEFAULT_BATCH_SIZE = 1000


class TransactionRole(enum.Enum):
    """Which of our transactions to recover, from our point of view (ledger-recovery.md)."""

    ALL = "ALL"
    INITIATOR = "INITIATOR"  # we sent it: rebuilt from the peers' receiver records
    PEER = "PEER"  # we were a participant: rebuilt from the peers' sender records
    OBSERVER = "OBSERVER"  # we only observed it
    PEER_AND_OBSERVER = "PEER_AND_OBSERVER"

    def covers(self, role: str) -> bool:
        """Whether a transaction in which we had `role` (INITIATOR, PEER, OBSERVER) is wanted."""
        if self is TransactionRole.ALL:
            return True
        if self is TransactionRole.PEER_AND_OBSERVER:
            return role in ("PEER", "OBSERVER")
        return role == str(self.value)


@dataclass(frozen=True)
class RecoveryTimeWindow:
    """[fromTime, untilTime]: untilTime defaults to now, as Corda's RecoveryTimeWindow does."""

    from_time: datetime
    until_time: datetime


@dataclass(frozen=True)
class LedgerRecoveryParameters:
    recovery_peers: tuple[X500Name, ...]
    time_window: RecoveryTimeWindow
    use_all_network_nodes: bool = False
    transaction_role: TransactionRole = TransactionRole.ALL
    dry_run: bool = False
    optimistic_initiator_recovery: bool = False
    use_time_window_narrowing: bool = True
    recovery_batch_size: int = DEFAULT_BATCH_SIZE
    also_finalize: bool = False
    verbose_logging: bool = False
    force_recover_flow_ids: tuple[str, ...] = field(default=())
    reconcile_first: bool = False  # ours: LedgerSync with each peer first (`ledger-agent recover`)
    retry_only: bool = False  # the service's slow retry: no records walked, only what no peer supplied

    def to_state(self) -> dict[str, Any]:
        """As a checkpoint holds it (CBOR values only)."""
        return {
            "recoveryPeers": [str(p) for p in self.recovery_peers],
            "timeWindow": [to_epoch_ms(self.time_window.from_time), to_epoch_ms(self.time_window.until_time)],
            "useAllNetworkNodes": self.use_all_network_nodes,
            "transactionRole": self.transaction_role.value,
            "dryRun": self.dry_run,
            "optimisticInitiatorRecovery": self.optimistic_initiator_recovery,
            "useTimeWindowNarrowing": self.use_time_window_narrowing,
            "recoveryBatchSize": self.recovery_batch_size,
            "alsoFinalize": self.also_finalize,
            "verboseLogging": self.verbose_logging,
            "forceRecoverFlowIds": list(self.force_recover_flow_ids),
            "reconcileFirst": self.reconcile_first,
            "retryOnly": self.retry_only,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> LedgerRecoveryParameters:
        window = state["timeWindow"]
        return cls(
            recovery_peers=tuple(X500Name.parse(p) for p in state["recoveryPeers"]),
            time_window=RecoveryTimeWindow(from_epoch_ms(window[0]), from_epoch_ms(window[1])),
            use_all_network_nodes=bool(state["useAllNetworkNodes"]),
            transaction_role=TransactionRole(state["transactionRole"]),
            dry_run=bool(state["dryRun"]),
            optimistic_initiator_recovery=bool(state["optimisticInitiatorRecovery"]),
            use_time_window_narrowing=bool(state["useTimeWindowNarrowing"]),
            recovery_batch_size=int(state["recoveryBatchSize"]),
            also_finalize=bool(state["alsoFinalize"]),
            verbose_logging=bool(state["verboseLogging"]),
            force_recover_flow_ids=tuple(state.get("forceRecoverFlowIds", ())),
            reconcile_first=bool(state.get("reconcileFirst", False)),
            retry_only=bool(state.get("retryOnly", False)),
        )

    def describe(self) -> str:
        window = self.time_window
        return (
            f"peers [{', '.join(str(p) for p in self.recovery_peers)}], timeWindow "
            f"{window.from_time.isoformat()} to {window.until_time.isoformat()}, "
            f"transactionRole {self.transaction_role.value}, dryRun {str(self.dry_run).lower()}"
            + (", reconciling first" if self.reconcile_first else "")
        )


_FIELDS = {
    "recoveryPeers",
    "timeWindow",
    "useAllNetworkNodes",
    "transactionRole",
    "dryRun",
    "optimisticInitiatorRecovery",
    "useTimeWindowNarrowing",
    "recoveryBatchSize",
    "alsoFinalize",
    "verboseLogging",
    "forceRecoverFlowIds",
    "reconcileFirst",
}


def parse_parameters(
    given: Mapping[str, Any],
    *,
    now: datetime,
    me: X500Name,
    network_nodes: Callable[[], Sequence[X500Name]],
    known: Callable[[X500Name], bool],
    recovery_period: timedelta | None,
) -> LedgerRecoveryParameters:
    """Check every field; errors name the parameter and what is allowed.

    network_nodes: the network map's nodes, notaries and ourselves left out (useAllNetworkNodes).
    known: whether a name is in the network map. recovery_period: node.conf's transactionRecoveryPeriod.
    """
    args = dict(given)
    nested = args.pop("parameters", None)
    if nested is not None:  # LedgerRecoveryParameters(...) as one argument, the shipped shape
        if not isinstance(nested, Mapping):
            raise ConfigurationError(
                "parameters", nested, "allowed: an object of LedgerRecoveryParameters' fields"
            )
        if args:
            raise ConfigurationError(
                ", ".join(sorted(args)), "...", "give the fields either flat or inside parameters, not both"
            )
        args = dict(nested)
    unknown = sorted(set(args) - _FIELDS)
    if unknown:
        raise ConfigurationError(
            unknown[0], args[unknown[0]], f"unknown parameter; allowed: {', '.join(sorted(_FIELDS))}"
        )
    use_all = _bool(args, "useAllNetworkNodes", False)
    peers = _peers(args.get("recoveryPeers"), me, known)
    if use_all:
        peers = tuple(p for p in network_nodes() if p != me)
    if not peers:
        raise ConfigurationError(
            "recoveryPeers",
            args.get("recoveryPeers"),
            "allowed: one or more X.500 names of the network map (or useAllNetworkNodes: true)",
        )
    window = _window(args.get("timeWindow"), now, recovery_period)
    role_text = args.get("transactionRole", TransactionRole.ALL.value)
    try:
        role = TransactionRole(str(role_text).upper()) if isinstance(role_text, str) else None
    except ValueError:
        role = None
    if role is None:
        raise ConfigurationError(
            "transactionRole", role_text, f"allowed: {', '.join(r.value for r in TransactionRole)}"
        )
    size = args.get("recoveryBatchSize", DEFAULT_BATCH_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH_SIZE:
        raise ConfigurationError(
            "recoveryBatchSize", size, f"allowed: a whole number from 1 to {MAX_BATCH_SIZE}"
        )
    force = args.get("forceRecoverFlowIds", [])
    if not isinstance(force, list) or not all(isinstance(f, str) for f in force):
        raise ConfigurationError("forceRecoverFlowIds", force, "allowed: a list of flow ids")
    dry_run = _bool(args, "dryRun", False)
    optimistic = _bool(args, "optimisticInitiatorRecovery", False)
    return LedgerRecoveryParameters(
        recovery_peers=peers,
        time_window=window,
        use_all_network_nodes=use_all,
        transaction_role=role,
        dry_run=dry_run,
        optimistic_initiator_recovery=optimistic,
        use_time_window_narrowing=_bool(args, "useTimeWindowNarrowing", True),
        recovery_batch_size=size,
        also_finalize=_bool(args, "alsoFinalize", False),
        verbose_logging=_bool(args, "verboseLogging", False),
        force_recover_flow_ids=tuple(force),
        reconcile_first=_bool(args, "reconcileFirst", False),
    )


def _bool(args: Mapping[str, Any], key: str, default: bool) -> bool:
    value = args.get(key, default)
    if not isinstance(value, bool):
        raise ConfigurationError(key, value, "allowed: true or false")
    return value


def _peers(value: Any, me: X500Name, known: Callable[[X500Name], bool]) -> tuple[X500Name, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigurationError("recoveryPeers", value, "allowed: a list of X.500 names")
    peers: list[X500Name] = []
    for item in items:
        try:
            name = X500Name.parse(str(item))
        except InvalidNameError as exc:
            raise ConfigurationError("recoveryPeers", item, str(exc)) from exc
        if name == me:
            raise ConfigurationError("recoveryPeers", item, "a node cannot recover from itself")
        if not known(name):
            raise ConfigurationError("recoveryPeers", item, "not a node of the network map")
        if name not in peers:
            peers.append(name)
    return tuple(peers)


def _instant(key: str, value: Any) -> datetime:
    if isinstance(value, int) and not isinstance(value, bool):
        return from_epoch_ms(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise ConfigurationError(
        key, value, "allowed: an ISO-8601 instant (2026-12-03T10:15:30Z) or epoch milliseconds"
    )


def _window(value: Any, now: datetime, period: timedelta | None) -> RecoveryTimeWindow:
    if value is None:
        if period is None:
            raise ConfigurationError(
                "timeWindow",
                None,
                "required: give timeWindow {fromTime, untilTime}, or set transactionRecoveryPeriod in node.conf",
            )
        return RecoveryTimeWindow(now - period, now)
    if not isinstance(value, Mapping) or "fromTime" not in value:
        raise ConfigurationError(
            "timeWindow", value, "allowed: {fromTime: <instant>, untilTime: <instant, default now>}"
        )
    extra = sorted(set(value) - {"fromTime", "untilTime"})
    if extra:
        raise ConfigurationError(
            f"timeWindow.{extra[0]}", value[extra[0]], "unknown; allowed: fromTime, untilTime"
        )
    start = _instant("timeWindow.fromTime", value["fromTime"])
    until = now if value.get("untilTime") is None else _instant("timeWindow.untilTime", value["untilTime"])
    if until <= start:
        raise ConfigurationError("timeWindow.untilTime", value.get("untilTime"), "must be after fromTime")
    return RecoveryTimeWindow(start, until)

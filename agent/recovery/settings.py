"""node.conf's ledgerRecovery section (all optional) and transactionRecoveryPeriod's neighbour keys.

transactionRecoveryPeriod = 7d          # LedgerRecoveryFlow's default time window: this far back
ledgerRecovery {
    unrecoverableRetryInterval = 1h     # how often what no peer supplied is asked for again (1m to 7d)
    holdNewFlowsUntilRecovered = false  # true: issue, pay and exit are refused while a recovery
                                        # runs or transactions it found are still missing
}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import ConfigurationError
from agent.hospital.policy import parse_duration

SECTION = "ledgerRecovery"
LEDGER_RECOVERY_KEYS = tuple(
    f"{SECTION}.{k}" for k in ("unrecoverableRetryInterval", "holdNewFlowsUntilRecovered")
)
RETRY_INTERVAL_RANGE_S = (60.0, 7 * 86400.0)


@dataclass(frozen=True, kw_only=True)
class LedgerRecoverySettings:
    unrecoverable_retry_interval_s: float = 3600.0
    hold_new_flows_until_recovered: bool = False


def parse_ledger_recovery_settings(flat: Mapping[str, Any]) -> LedgerRecoverySettings:
    default = LedgerRecoverySettings()
    key = f"{SECTION}.unrecoverableRetryInterval"
    value = flat.get(key, default.unrecoverable_retry_interval_s)
    seconds = parse_duration(key, value, allow_zero=False)
    low, high = RETRY_INTERVAL_RANGE_S
    if not low <= seconds <= high:
        raise ConfigurationError(key, value, "allowed: a duration from 1m to 7d")
    key = f"{SECTION}.holdNewFlowsUntilRecovered"
    hold = flat.get(key, default.hold_new_flows_until_recovered)
    if not isinstance(hold, bool):
        raise ConfigurationError(key, hold, "allowed: true or false")
    return LedgerRecoverySettings(unrecoverable_retry_interval_s=seconds, hold_new_flows_until_recovered=hold)

"""What monitoring reads of finality: the Node bean's IN_FLIGHT ages, for /metrics (mbeans.prometheus).

    OldestInFlightAgeSeconds  seconds since the oldest IN_FLIGHT transaction here was recorded (0 without)
    InFlightByAge             IN_FLIGHT transactions at most 1m, 10m, 1h, 1d old, and "+Inf" (all)
    AutoRecoveryScans         scans of the automatic recovery begun since the start (0 while it is off)

Each read is one aggregate query of node_transactions (agent.finality.ages). The bean is
agent.management.beans's node_bean; agent.management.app adds these to it.
"""

from __future__ import annotations

from agent.clock import Clock
from agent.finality.ages import InFlightAges
from agent.finality.auto_recovery import AutoRecovery
from agent.ports.transactions import TransactionReader
from mbeans.model import JavaType, MBean

OLDEST_IN_FLIGHT_AGE = "OldestInFlightAgeSeconds"
IN_FLIGHT_BY_AGE = "InFlightByAge"
AUTO_RECOVERY_SCANS = "AutoRecoveryScans"


def add_in_flight_attributes(bean: MBean, transactions: TransactionReader, clock: Clock) -> MBean:
    """bean, with the attributes above read from transactions at clock's time."""
    bean.attribute(
        OLDEST_IN_FLIGHT_AGE,
        JavaType.DOUBLE,
        "Seconds since the oldest transaction IN_FLIGHT here (finality begun, not finished) was recorded; "
        "0 without one",
        lambda: round(InFlightAges.read(transactions, clock.now()).oldest_age_s, 3),
    )
    bean.attribute(
        IN_FLIGHT_BY_AGE,
        JavaType.MAP,
        "Transactions IN_FLIGHT here at most 1m, 10m, 1h and 1d old, and +Inf (all), cumulative",
        lambda: InFlightAges.read(transactions, clock.now()).by_age,
    )
    return bean


def add_auto_recovery_attributes(bean: MBean, auto_recovery: AutoRecovery) -> MBean:
    """bean, with AutoRecoveryScans read from auto_recovery (how a test or an operator sees it scan)."""
    bean.attribute(
        AUTO_RECOVERY_SCANS,
        JavaType.LONG,
        "Scans of the automatic finality recovery (finalityRecovery.autoRecover) begun since the agent "
        "started; 0 while it is off",
        lambda: auto_recovery.scans,
    )
    return bean

"""How a flow's result prints, as the Corda shell prints it; the flows themselves are in catalogue."""

from __future__ import annotations

from typing import Any

# Re-exported (hence `as`): agent.ledgersync.protocol takes the reconciliation methods from here.
from agent.operator_api.catalogue import METHOD_LIST as METHOD_LIST  # noqa: PLC0414
from agent.operator_api.catalogue import METHOD_RIBLT as METHOD_RIBLT  # noqa: PLC0414
from agent.operator_api.catalogue import METHODS as METHODS  # noqa: PLC0414
from agent.operator_api.status import ReconciliationStatus


def result_text(result: Any, *, unit: bool = False) -> str:
    """A result as the Corda shell prints it after "Flow completed with result: "."""
    if unit:
        return "kotlin.Unit"
    if result is None:
        return "null"
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, ReconciliationStatus):
        return result.pretty()
    if isinstance(result, list):
        return "[" + ", ".join(result_text(r) for r in result) + "]"
    return str(result)

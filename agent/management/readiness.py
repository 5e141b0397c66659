"""Readiness, apart from liveness: GET /health says the agent answers; GET /ready whether it should be
sent work (a load balancer's or Kubernetes' readiness probe, a deploy script's wait).

Not ready while the ledger graph is not built yet or not self-consistent (LedgerSync's check: a node
whose ledger is corrupt must not look healthy), or while a LedgerRecoveryFlow runs (the ledger is
being given back; what it answers may still lack transactions). Each reason is a sentence an operator
acts on. Like /health, anyone may ask: load balancers do not log in, and the answer says no more than
the LedgerSelfConsistencyFailing alert does.
"""

from __future__ import annotations

from agent.management.ledger_recovery_monitoring import running_flows
from agent.runtime import AgentRuntime


def not_ready_reasons(runtime: AgentRuntime) -> list[str]:
    """Why the agent is not ready; empty when it is."""
    reasons = []
    sync = runtime.ledgersync
    if sync is not None:
        report = sync.report
        if not report.is_initialized:
            reasons.append("the ledger graph is not built yet")
        elif not report.is_self_consistent:
            reasons.append(
                f"the ledger is not self-consistent ({report.error_count} error(s); see LedgerGraph.Errors)"
            )
    running = running_flows(runtime.node.store.checkpoints)
    if running:
        reasons.append(f"{running} LedgerRecoveryFlow(s) running: the ledger is being recovered")
    return reasons

"""The ObjectNames of the agent's beans: the management model's names, which adapters and tools use.

The beans themselves (what each attribute reads, what each operation does) are the agent's
(agent.management.beans); the names are here so that the adapters of this library (the Prometheus
collector, JSON-RPC's method names) know them without importing the agent.
"""

from __future__ import annotations

from mbeans.objectname import ObjectName

DOMAIN = "ledgeragent"
NODE = ObjectName.parse(f"{DOMAIN}:type=Node")
FLOWS = ObjectName.parse(f"{DOMAIN}:type=Flows")
TOKENS = ObjectName.parse(f"{DOMAIN}:type=Tokens")
LEDGER_GRAPH = ObjectName.parse(f"{DOMAIN}:type=LedgerGraph")
LEDGER_SYNC = ObjectName.parse(f"{DOMAIN}:type=LedgerSync")
FLOW_HOSPITAL = ObjectName.parse(f"{DOMAIN}:type=FlowHospital")
FLOW_RPC_OPS = ObjectName.parse(f"{DOMAIN}:type=FlowRPCOps")
NODE_FLOW_STATUS_RPC_OPS = ObjectName.parse(f"{DOMAIN}:type=NodeFlowStatusRpcOps")
LEDGER_RECOVERY = ObjectName.parse(f"{DOMAIN}:type=LedgerRecovery")

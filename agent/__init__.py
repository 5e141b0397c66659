"""ledger-agent: the recovery and reconciliation sidecar of a Corda-style ledger node."""

__version__ = "0.1.0"

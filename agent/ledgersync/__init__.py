"""LedgerSync: reconciliation of two nodes' common ledger data (collaborative recovery)."""

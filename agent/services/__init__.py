"""Services of the node: they use the ledger core and the store, and know nothing of the adapters."""

"""The ledger core: identities, transactions, contracts, verification, vault rules.

Pure domain code: no database, no HTTP. The store and the services depend on it, not the reverse.
"""

"""The store's ports: one small typing.Protocol per repository, and a unit of work spanning them.

The domain and the services depend on these, never on peewee; `agent/store/` is the one adapter
(SQLite and PostgreSQL), and tests/ports/ is the contract every adapter must pass on both.

- transactions: recording, finalising and reading node_transactions (plus listeners)
- vault: vault_states as paged reads
- distribution: sender and receiver distribution records, by transaction, peer or time window
- checkpoints: node_checkpoints, as the flow engine needs them, and their counts
- keys: the node's wrapped AES keys
- uniqueness: the notary's committed states
- graph_scans: what LedgerSync's graph build and consistency check read, in raw pages
- reconciliation: LedgerSync's statuses and the responder's window of admitted requests
- unit_of_work: one database transaction around writes to several of them
- paging: the page-size contract every paged read shares
"""

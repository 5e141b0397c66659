"""Ledger Recovery: a restored node gets back, from its peers, what it lost (docs/ledger-recovery.md).

distribution_list and aes_keys: the encrypted metadata finality leaves behind; parameters, flow,
fetch, reconcile: LedgerRecoveryFlow; responder: the peer's side; naming: who a transaction names;
service: all of it on a node; settings: node.conf's ledgerRecovery.
"""

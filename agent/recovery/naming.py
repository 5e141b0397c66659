"""Who a transaction names: the participants of its input, reference and output states, and the
parties whose keys must sign it. What entitles a peer to a transaction it has no record of, and what
tells a transaction no peer holds."""

from __future__ import annotations

from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.network.network_map import NetworkMap
from agent.ports.transactions import TransactionReader

UNKNOWN_SIGNER = X500Name.parse("O=Unknown signer, L=Nowhere, C=ZZ")


def named_parties(
    stx: SignedTransaction, transactions: TransactionReader, network_map: NetworkMap
) -> set[X500Name]:
    """Every party the transaction names; a signer whose key the map does not know is UNKNOWN_SIGNER."""
    tx = stx.tx
    names = {p.name for state in tx.outputs for p in state.participants}
    for ref in (*tx.inputs, *tx.references):
        wire = transactions.producing_transaction(ref.txhash)
        if wire is not None and ref.index < len(wire.outputs):
            names.update(p.name for p in wire.outputs[ref.index].participants)
    by_key = {n.party.owning_key: n.name for n in network_map.nodes}
    names.update(by_key.get(key, UNKNOWN_SIGNER) for key in tx.required_signers())
    return names

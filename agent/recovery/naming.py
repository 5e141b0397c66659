"""Who a transaction names: the participants of its input, reference and output states, and the
parties whose keys must sign it. What entitles a peer to a transaction it has no record of, and what
tells a transaction no peer holds."""

from __future__ import annotations

from collections.abc import Mapping

from agent.ledger.hashing import SecureHash
from agent.ledger.identity import X500Name
from agent.ledger.transactions import SignedTransaction
from agent.network.network_map import NetworkMap
from agent.ports.transactions import TransactionReader

UNKNOWN_SIGNER = X500Name.parse("O=Unknown signer, L=Nowhere, C=ZZ")


def named_parties(
    stx: SignedTransaction, transactions: TransactionReader, network_map: NetworkMap
) -> set[X500Name]:
    """Every party the transaction names; a signer whose key the map does not know is UNKNOWN_SIGNER."""
    return parties_named({stx.id: stx}, transactions, network_map)[stx.id]


def parties_named(
    stxs: Mapping[SecureHash, SignedTransaction], transactions: TransactionReader, network_map: NetworkMap
) -> dict[SecureHash, set[X500Name]]:
    """named_parties of each, the states they spend or reference read in a few queries (a peer's
    entitlement check of a whole request)."""
    producers = transactions.producing_transactions(
        {ref.txhash for stx in stxs.values() for ref in (*stx.tx.inputs, *stx.tx.references)}
    )
    by_key = {n.party.owning_key: n.name for n in network_map.nodes}
    named: dict[SecureHash, set[X500Name]] = {}
    for tx_id, stx in stxs.items():
        tx = stx.tx
        names = {p.name for state in tx.outputs for p in state.participants}
        for ref in (*tx.inputs, *tx.references):
            wire = producers.get(ref.txhash)
            if wire is not None and ref.index < len(wire.outputs):
                names.update(p.name for p in wire.outputs[ref.index].participants)
        names.update(by_key.get(key, UNKNOWN_SIGNER) for key in tx.required_signers())
        named[tx_id] = names
    return named

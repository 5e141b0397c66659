"""The notary service: checks a request, commits its inputs, and signs.

A non-validating notary, as most Corda networks run: it checks what uniqueness needs (it is the
named notary, the time window holds, the requester's signatures are good) and never sees the
back-chain. Forged signatures are still refused, so nobody can burn another party's states.
"""

from __future__ import annotations

from agent.clock import Clock
from agent.errors import NotaryRejectionError
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair
from agent.ledger.transactions import SignedTransaction, TransactionSignature, sign
from agent.ledger.verification import check_structure, verify_signatures
from agent.notary.uniqueness import UniquenessProvider


class NotaryService:
    def __init__(self, identity: Party, key: KeyPair, uniqueness: UniquenessProvider, clock: Clock) -> None:
        if key.public != identity.owning_key:
            raise ValueError("the notary's key pair does not match its identity")
        self.identity = identity
        self._key = key
        self.uniqueness = uniqueness
        self.clock = clock

    def notarise(self, stx: SignedTransaction, requester: X500Name | None = None) -> TransactionSignature:
        """The notary's signature over the transaction id, or a NotaryError saying why not.

        Idempotent: the same transaction gets the same signature again (Ed25519 is deterministic).
        References must be unconsumed and stay so, which is what finality recovery's notarisation
        check relies on: a transaction holding a state as a reference learns who consumed it from the
        conflict, and consumes nothing.
        """
        tx = stx.tx
        tx_id = str(tx.id)
        if tx.notary != self.identity:
            raise NotaryRejectionError(tx_id, f"it names notary {tx.notary}, this is {self.identity}")
        if not tx.needs_notarisation:
            raise NotaryRejectionError(tx_id, "it has no inputs, references or time window to notarise")
        check_structure(tx)
        now = self.clock.now()
        # A transaction this notary committed is signed again whatever the time now (Corda's
        # uniqueness provider too): finality recovery re-notarises, perhaps after the window closed.
        outside = tx.time_window is not None and not tx.time_window.contains(now)
        if outside and not self.uniqueness.is_committed(tx.id):
            tw = tx.time_window
            assert tw is not None
            raise NotaryRejectionError(
                tx_id,
                f"time window [{tw.from_time}, {tw.until_time}) does not contain the notary's time {now}",
            )
        verify_signatures(stx, allowed_missing=(self.identity.owning_key,))
        self.uniqueness.commit(tx.id, tx.inputs, tx.references, requester)
        return sign(tx.id, self._key)

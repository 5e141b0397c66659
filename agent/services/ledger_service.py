"""Verify, then record: the one way transactions enter a node's ledger."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agent.ledger.contracts import ContractRegistry
from agent.ledger.distribution import ReceiverDistribution, SenderDistribution
from agent.ledger.transactions import SignedTransaction
from agent.ledger.vault import StatesToRecord, TransactionStatus
from agent.ledger.verification import verify, verify_chain
from agent.ports.transactions import TransactionStore


class LedgerService:
    def __init__(self, transactions: TransactionStore, contracts: ContractRegistry) -> None:
        self.transactions = transactions
        self.contracts = contracts

    def verify(self, stx: SignedTransaction, *, check_notary_signature: bool = True) -> None:
        """Verify against this node's ledger (its VERIFIED transactions are the back-chain)."""
        verify(stx, self.transactions, self.contracts, check_notary_signature=check_notary_signature)

    def record(
        self,
        stx: SignedTransaction,
        *,
        status: TransactionStatus = TransactionStatus.VERIFIED,
        states_to_record: StatesToRecord = StatesToRecord.ONLY_RELEVANT,
        state_machine_run_id: str | None = None,
        sender_records: Iterable[SenderDistribution] = (),
        receiver_record: ReceiverDistribution | None = None,
    ) -> bool:
        """Verify and record; False when already recorded (recording twice is not an error).

        IN_FLIGHT is the first phase of finality: everything is checked but the notary's signature.
        A transaction that fails verification leaves nothing behind.
        """
        if self.transactions.transaction_status(stx.id) is TransactionStatus.VERIFIED:
            return False
        self.verify(stx, check_notary_signature=status is TransactionStatus.VERIFIED)
        return self.transactions.record_transaction(
            stx,
            status=status,
            states_to_record=states_to_record,
            state_machine_run_id=state_machine_run_id,
            sender_records=sender_records,
            receiver_record=receiver_record,
        )

    def verify_chain(self, batch: Sequence[SignedTransaction]) -> list[SignedTransaction]:
        """Verify a fetched back-chain as a whole; the transactions not yet VERIFIED here, parents first.

        Apart from record_chain so that a flow verifies in its step and records in the step's commit.
        """
        missing = [
            stx
            for stx in batch
            if self.transactions.transaction_status(stx.id) is not TransactionStatus.VERIFIED
        ]
        return verify_chain(missing, self.transactions, self.contracts)

    def record_chain(
        self,
        batch: Sequence[SignedTransaction],
        states_to_record: StatesToRecord = StatesToRecord.ONLY_RELEVANT,
    ) -> list[SignedTransaction]:
        """Verify a fetched back-chain as a whole, then record it parents first; returns what was new."""
        return [
            stx
            for stx in self.verify_chain(batch)
            if self.transactions.record_transaction(stx, states_to_record=states_to_record)
        ]

"""Verification of a signed transaction: structure, signatures, back-chain and contracts.

The order is cheapest first, and each failure is a named error (see errors.py) that carries the id of
the transaction at fault.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from agent.errors import (
    InvalidSignatureError,
    InvalidTransactionError,
    MissingSignatureError,
    TransactionResolutionError,
)
from agent.ledger.contracts import ContractRegistry, LedgerTransaction
from agent.ledger.hashing import SecureHash
from agent.ledger.keys import PublicKey, verify_batch
from agent.ledger.transactions import SignedTransaction, StateAndRef, StateRef, WireTransaction


class TransactionResolver(Protocol):
    """Where the back-chain comes from: the producing transaction, if present and verified."""

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None: ...


def check_structure(tx: WireTransaction) -> None:
    """Ledger rules that need nothing but the transaction itself."""
    tx_id = str(tx.id)
    if not tx.commands:
        raise InvalidTransactionError(tx_id, "a transaction needs at least one command")
    if not (tx.inputs or tx.outputs):
        raise InvalidTransactionError(tx_id, "a transaction needs inputs or outputs")
    if tx.notary is None and (tx.needs_notarisation or tx.outputs):
        raise InvalidTransactionError(tx_id, "notary: required for a transaction with states")
    if len(set(tx.inputs)) != len(tx.inputs):
        raise InvalidTransactionError(tx_id, "an input is listed twice")
    if len(set(tx.references)) != len(tx.references):
        raise InvalidTransactionError(tx_id, "a reference input is listed twice")
    both = set(tx.inputs) & set(tx.references)
    if both:
        raise InvalidTransactionError(tx_id, f"{min(both)} is both an input and a reference")
    tw = tx.time_window
    if tw is not None and tw.from_time and tw.until_time and tw.from_time >= tw.until_time:
        raise InvalidTransactionError(tx_id, "time window: from must be before until")
    for cmd in tx.commands:
        if not cmd.signers:
            raise InvalidTransactionError(tx_id, f"command {cmd.name} has no signers")


def bad_signature(stx: SignedTransaction) -> InvalidSignatureError | None:
    """The first signature that does not verify over the id, as its error; None when all do. (The
    Ed25519 check releases the GIL: threads can run this for a batch on several cores.)"""
    tx_id = stx.id
    for sig in stx.sigs:
        if not sig.verify(tx_id):
            return InvalidSignatureError(str(tx_id), sig.by.hex)
    return None


def bad_signatures(stxs: Sequence[SignedTransaction]) -> dict[SecureHash, InvalidSignatureError]:
    """bad_signature for many transactions in one batch of checks (keys.verify_batch: the GIL released
    once, not once a signature): the transactions with a signature that does not verify, each with its
    first such signature, as bad_signature names it."""
    checks = [(sig.by, sig.signature, bytes(stx.id)) for stx in stxs for sig in stx.sigs]
    verdicts = iter(verify_batch(checks))
    found: dict[SecureHash, InvalidSignatureError] = {}
    for stx in stxs:
        for sig in stx.sigs:
            if not next(verdicts) and stx.id not in found:
                found[stx.id] = InvalidSignatureError(str(stx.id), sig.by.hex)
    return found


def verify_signatures(
    stx: SignedTransaction, *, allowed_missing: Iterable[PublicKey] = (), checked: bool = False
) -> None:
    """Every signature verifies over the id (checked: bad_signature found none already), and every
    required signer signed (but allowed_missing)."""
    tx_id = stx.id
    if not checked:
        error = bad_signature(stx)
        if error is not None:
            raise error
    missing = required_signers(stx.tx) - stx.signers() - set(allowed_missing)
    if missing:
        raise MissingSignatureError(str(tx_id), sorted(k.hex for k in missing))


def required_signers(tx: WireTransaction) -> set[PublicKey]:
    """The command signers, and the notary when the transaction needs notarisation."""
    keys = tx.required_signers()
    if tx.needs_notarisation and tx.notary is not None:
        keys.add(tx.notary.owning_key)
    return keys


def resolve(tx: WireTransaction, resolver: TransactionResolver) -> LedgerTransaction:
    """Look up every input and reference; all missing producers are named at once."""
    producers: dict[SecureHash, WireTransaction | None] = {}
    for ref in (*tx.inputs, *tx.references):
        if ref.txhash not in producers:
            producers[ref.txhash] = resolver.producing_transaction(ref.txhash)
    missing = sorted(str(h) for h, p in producers.items() if p is None)
    if missing:
        raise TransactionResolutionError(str(tx.id), missing)

    def state_and_ref(ref: StateRef) -> StateAndRef:
        producer = producers[ref.txhash]
        assert producer is not None
        if ref.index >= len(producer.outputs):
            raise InvalidTransactionError(
                str(tx.id), f"{ref} points past the {len(producer.outputs)} outputs"
            )
        return StateAndRef(producer.outputs[ref.index], ref, producer.notary)

    inputs = tuple(state_and_ref(r) for r in tx.inputs)
    references = tuple(state_and_ref(r) for r in tx.references)
    for sar in inputs:
        if sar.notary != tx.notary:
            raise InvalidTransactionError(
                str(tx.id), f"input {sar.ref} is under notary {sar.notary}, the transaction names {tx.notary}"
            )
    return LedgerTransaction(tx.id, inputs, references, tx.outputs, tx.commands, tx.notary, tx.time_window)


def verify_contracts(ltx: LedgerTransaction, contracts: ContractRegistry) -> None:
    for name in sorted(ltx.contracts()):
        contracts.get(name, ltx.id).verify(ltx)


def verify(
    stx: SignedTransaction,
    resolver: TransactionResolver,
    contracts: ContractRegistry,
    *,
    check_notary_signature: bool = True,
    signatures_checked: bool = False,
) -> LedgerTransaction:
    """Full verification; without the notary's signature for the first phase of finality.
    signatures_checked: bad_signature already found every signature good (the signers are still
    checked here)."""
    tx = stx.tx
    check_structure(tx)
    allowed = () if check_notary_signature or tx.notary is None else (tx.notary.owning_key,)
    verify_signatures(stx, allowed_missing=allowed, checked=signatures_checked)
    ltx = resolve(tx, resolver)
    verify_contracts(ltx, contracts)
    return ltx


class ChainResolver:
    """The store's resolver, overlaid with the batch being verified (its earlier members)."""

    def __init__(self, base: TransactionResolver) -> None:
        self.base = base
        self.verified: dict[SecureHash, WireTransaction] = {}

    def producing_transaction(self, txhash: SecureHash) -> WireTransaction | None:
        return self.verified.get(txhash) or self.base.producing_transaction(txhash)


def back_chain(parents: Iterable[SecureHash], resolver: TransactionResolver) -> set[SecureHash]:
    """Every transaction in the back-chain that starts at these parents (the inputs and references of
    the transactions whose back-chain is wanted), as far as the resolver's VERIFIED ones reach."""
    seen: set[SecureHash] = set()
    stack = list(parents)
    while stack:
        h = stack.pop()
        if h in seen:
            continue
        seen.add(h)
        wire = resolver.producing_transaction(h)
        if wire is not None:
            stack.extend(r.txhash for r in (*wire.inputs, *wire.references))
    return seen


def dependency_order(batch: Sequence[SignedTransaction]) -> list[SignedTransaction]:
    """The batch with each transaction after those of the batch it spends or references."""
    by_id = {stx.id: stx for stx in batch}
    ordered: list[SignedTransaction] = []
    state: dict[SecureHash, int] = {}  # 1 visiting, 2 done

    def visit(stx: SignedTransaction) -> None:
        stack = [(stx, iter({r.txhash for r in (*stx.tx.inputs, *stx.tx.references)}))]
        state[stx.id] = 1
        while stack:
            node, deps = stack[-1]
            for dep in deps:
                if dep in by_id and state.get(dep) != 2:
                    if state.get(dep) == 1:
                        raise InvalidTransactionError(str(node.id), "dependency cycle in back-chain")
                    state[dep] = 1
                    parent = by_id[dep]
                    stack.append(
                        (parent, iter({r.txhash for r in (*parent.tx.inputs, *parent.tx.references)}))
                    )
                    break
            else:
                stack.pop()
                state[node.id] = 2
                ordered.append(node)

    for stx in batch:
        if state.get(stx.id) != 2:
            visit(stx)
    return ordered


def verify_chain(
    batch: Sequence[SignedTransaction], resolver: TransactionResolver, contracts: ContractRegistry
) -> list[SignedTransaction]:
    """Verify a back-chain fetched from a peer: returns it in dependency order, parents first."""
    ordered = dependency_order(batch)
    chain = ChainResolver(resolver)
    for stx in ordered:
        verify(stx, chain, contracts)
        chain.verified[stx.id] = stx.tx
    return ordered

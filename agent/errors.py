"""The agent's errors: one root, a tree a newcomer can read in one screen.

    AgentError
    ├── ConfigurationError            a config key has a bad or unknown value
    ├── InvalidNameError              an X.500 name breaks CordaX500Name's rules
    ├── SerializationError            bytes that are not a well-formed transaction (or part of one)
    ├── IdentityError                 a certificate, key or network map that does not check out
    ├── TransactionVerificationError  a transaction that must not be recorded
    │   ├── InvalidTransactionError       its structure breaks a ledger rule
    │   ├── SignatureError
    │   │   ├── InvalidSignatureError         a signature does not verify
    │   │   └── MissingSignatureError         a required signer has not signed
    │   ├── UnknownContractError          a state names a contract nobody registered
    │   ├── ContractRejection             a contract's rules refuse it
    │   │   └── AmountsNotConservedError
    │   └── TransactionResolutionError    its back-chain is not all here
    ├── NotaryError
    │   ├── NotaryConflictError           an input was already consumed (a double spend)
    │   └── NotaryRejectionError          wrong notary, time window out of range, ...
    └── StoreError
        ├── TransactionNotFoundError
        └── MigrationError

Adapters map these to their protocol (JSON-RPC codes, Jolokia status, HTTP status); the domain only
raises them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class ConfigurationError(AgentError):
    """A configuration key has a value outside what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"{key}: {value!r} is not allowed; {allowed}")


class InvalidNameError(AgentError, ValueError):
    """An X.500 name that CordaX500Name would refuse; names the attribute at fault."""

    def __init__(self, name: str, attribute: str | None, reason: str) -> None:
        self.name = name
        self.attribute = attribute
        self.reason = reason
        where = f"attribute {attribute}" if attribute else "name"
        super().__init__(f"invalid X.500 name {name!r}: {where}: {reason}")


class SerializationError(AgentError, ValueError):
    """Bytes or a structure that do not decode to what was expected; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class IdentityError(AgentError):
    """A key, certificate or signed network map that fails its checks."""


class TransactionVerificationError(AgentError):
    """A transaction that must not be recorded."""

    def __init__(self, tx_id: str, reason: str) -> None:
        self.tx_id = tx_id
        self.reason = reason
        super().__init__(f"transaction {tx_id}: {reason}")


class InvalidTransactionError(TransactionVerificationError):
    """The transaction's structure breaks a ledger rule (notary, duplicate inputs, ...)."""


class SignatureError(TransactionVerificationError):
    """A signature problem."""


class InvalidSignatureError(SignatureError):
    """A signature that does not verify over the transaction id."""

    def __init__(self, tx_id: str, key_hex: str) -> None:
        self.key_hex = key_hex
        super().__init__(tx_id, f"signature by key {key_hex} does not verify")


class MissingSignatureError(SignatureError):
    """Required signers that have not signed."""

    def __init__(self, tx_id: str, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(tx_id, f"missing signatures from {', '.join(self.missing)}")


class UnknownContractError(TransactionVerificationError):
    """A state refers to a contract that no one registered."""

    def __init__(self, tx_id: str, contract: str) -> None:
        self.contract = contract
        super().__init__(tx_id, f"unknown contract {contract!r}")


class ContractRejection(TransactionVerificationError):
    """A contract's rules refuse the transaction."""

    def __init__(self, tx_id: str, contract: str, reason: str) -> None:
        self.contract = contract
        super().__init__(tx_id, f"contract {contract} rejected it: {reason}")


class AmountsNotConservedError(ContractRejection):
    """A fungible move or exit whose amounts do not add up."""


class TransactionResolutionError(TransactionVerificationError):
    """Transactions of the back-chain that are not present (or not verified) here."""

    def __init__(self, tx_id: str, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(tx_id, f"back-chain incomplete: missing {', '.join(self.missing)}")


class NotaryError(AgentError):
    """The notary refused to sign."""


class NotaryConflictError(NotaryError):
    """Inputs or references that another transaction already consumed."""

    def __init__(self, tx_id: str, conflicts: Mapping[str, str]) -> None:
        self.tx_id = tx_id
        self.conflicts = dict(conflicts)
        detail = ", ".join(f"{ref} consumed by {by}" for ref, by in sorted(self.conflicts.items()))
        super().__init__(f"notary conflict for transaction {tx_id}: {detail}")


class NotaryRejectionError(NotaryError):
    """A request the notary will not serve: not its notary, time window, bad signatures."""

    def __init__(self, tx_id: str, reason: str) -> None:
        self.tx_id = tx_id
        self.reason = reason
        super().__init__(f"notary refused transaction {tx_id}: {reason}")


class StoreError(AgentError):
    """The store cannot do what was asked."""


class TransactionNotFoundError(StoreError, KeyError):
    """No transaction with that id (in the wanted status)."""

    def __init__(self, tx_id: str) -> None:
        self.tx_id = tx_id
        super().__init__(f"transaction {tx_id} not found")

    def __str__(self) -> str:
        return str(self.args[0])


class MigrationError(StoreError):
    """The schema cannot be brought to the version this code needs."""

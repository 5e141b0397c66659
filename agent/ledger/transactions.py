"""Transactions with Corda's shape: state refs, outputs, commands, a notary, a time window, signatures.

The id of a transaction is the SHA-256 of its canonical serialisation (see serialization.py); signers
sign the 32 bytes of the id.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

from agent.clock import from_epoch_ms, to_epoch_ms
from agent.errors import SerializationError
from agent.ledger import serialization as ser
from agent.ledger.hashing import SecureHash
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair, PublicKey

WIRE_VERSION = 1
SALT_SIZE = 32


@dataclass(frozen=True, order=True)
class StateRef:
    """A pointer to an output: the producing transaction's id and the output's index."""

    txhash: SecureHash
    index: int

    def __str__(self) -> str:
        return f"{self.txhash}({self.index})"


@dataclass(frozen=True)
class TransactionState:
    """An output: the contract that governs it, its data and the parties it concerns."""

    contract: str
    data: Mapping[str, Any]
    participants: tuple[Party, ...]


@dataclass(frozen=True)
class StateAndRef:
    state: TransactionState
    ref: StateRef
    notary: Party | None = None


@dataclass(frozen=True)
class Command:
    """An instruction to a contract, with the keys that must sign for it."""

    contract: str
    name: str
    signers: tuple[PublicKey, ...]
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TimeWindow:
    """From (inclusive) and until (exclusive), either open; checked by the notary."""

    from_time: datetime | None = None
    until_time: datetime | None = None

    def contains(self, moment: datetime) -> bool:
        if self.from_time is not None and moment < self.from_time:
            return False
        return self.until_time is None or moment < self.until_time


@dataclass(frozen=True)
class TransactionSignature:
    by: PublicKey
    signature: bytes

    def verify(self, tx_id: SecureHash) -> bool:
        return self.by.verify(self.signature, bytes(tx_id))


# -- encoding of the parts ---------------------------------------------------------------------------


def _party_obj(party: Party) -> list[Any]:
    return [str(party.name), party.owning_key.raw]


def _check_version(version: Any, field_name: str) -> None:
    # An exact int: True and 1.0 compare equal to 1 but encode differently, which would give one
    # content two ids.
    if type(version) is not int or version != WIRE_VERSION:
        raise SerializationError(
            field_name, f"unsupported version {version!r} (this agent reads {WIRE_VERSION})"
        )


@lru_cache(maxsize=8192)
def cached_party(name: str, key: bytes) -> Party:
    """Party from its name and raw key; raises InvalidNameError."""
    # A ledger names few parties many times: parse and validate each (name, key) once.
    return Party(X500Name.parse(name), PublicKey(key))


def _party_from(obj: Any, field_name: str) -> Party:
    name, key = ser.expect_list(obj, field_name, 2)
    ser.expect(name, str, f"{field_name}.name")
    ser.expect(key, bytes, f"{field_name}.key")
    try:
        party = cached_party(name, key)
    except ValueError as exc:
        raise SerializationError(field_name, str(exc)) from exc
    if str(party.name) != name:
        # Only the printed form: another spelling of the same name would be another id.
        raise SerializationError(f"{field_name}.name", f"{name!r} is not in printed form ({party.name})")
    return party


def encode_state(state: TransactionState, *, checked: bool = False) -> bytes:
    """One output on its own, as the vault keeps it; checked=True for an output of a WireTransaction,
    whose data was checked when the transaction was built."""
    return ser.encode(
        [state.contract, dict(state.data), [_party_obj(p) for p in state.participants]], checked=checked
    )


def decode_state(data: bytes) -> TransactionState:
    contract, body, parts = ser.expect_list(ser.decode(data, "state"), "state", 3)
    return TransactionState(
        ser.expect(contract, str, "state.contract"),
        ser.expect(body, dict, "state.data"),
        tuple(
            _party_from(p, f"state.participants[{j}]")
            for j, p in enumerate(ser.expect_list(parts, "state.participants"))
        ),
    )


def _ref_from(obj: Any, field_name: str) -> StateRef:
    txhash, index = ser.expect_list(obj, field_name, 2)
    index = ser.expect(index, int, f"{field_name}.index")
    if index < 0:
        raise SerializationError(f"{field_name}.index", "must not be negative")
    return StateRef(SecureHash(ser.expect(txhash, bytes, f"{field_name}.txhash")), index)


def _time_from(value: Any, field_name: str) -> datetime | None:
    if value is None:
        return None
    return from_epoch_ms(ser.expect(value, int, field_name), field_name)


@dataclass(frozen=True)
class WireTransaction:
    """The signed-over content of a transaction."""

    inputs: tuple[StateRef, ...]
    references: tuple[StateRef, ...]
    outputs: tuple[TransactionState, ...]
    commands: tuple[Command, ...]
    notary: Party | None
    time_window: TimeWindow | None = None
    salt: bytes = field(default_factory=lambda: os.urandom(SALT_SIZE))

    def __post_init__(self) -> None:
        for i, out in enumerate(self.outputs):
            ser.check_plain(out.data, f"outputs[{i}].data")
        for i, cmd in enumerate(self.commands):
            ser.check_plain(cmd.args, f"commands[{i}].args")
        if len(self.salt) != SALT_SIZE:
            raise SerializationError("salt", f"expected {SALT_SIZE} bytes, got {len(self.salt)}")

    def to_obj(self) -> list[Any]:
        tw = self.time_window
        return [
            WIRE_VERSION,
            [[bytes(r.txhash), r.index] for r in self.inputs],
            [[bytes(r.txhash), r.index] for r in self.references],
            [[o.contract, dict(o.data), [_party_obj(p) for p in o.participants]] for o in self.outputs],
            [[c.contract, c.name, [k.raw for k in c.signers], dict(c.args)] for c in self.commands],
            _party_obj(self.notary) if self.notary else None,
            None
            if tw is None
            else [
                to_epoch_ms(tw.from_time) if tw.from_time else None,
                to_epoch_ms(tw.until_time) if tw.until_time else None,
            ],
            self.salt,
        ]

    @classmethod
    def from_obj(cls, obj: Any) -> WireTransaction:
        version, inputs, refs, outputs, commands, notary, tw, salt = ser.expect_list(obj, "transaction", 8)
        _check_version(version, "transaction.version")
        outs = []
        for i, o in enumerate(ser.expect_list(outputs, "outputs")):
            contract, data, parts = ser.expect_list(o, f"outputs[{i}]", 3)
            outs.append(
                TransactionState(
                    ser.expect(contract, str, f"outputs[{i}].contract"),
                    ser.expect(data, dict, f"outputs[{i}].data"),
                    tuple(
                        _party_from(p, f"outputs[{i}].participants[{j}]")
                        for j, p in enumerate(ser.expect_list(parts, f"outputs[{i}].participants"))
                    ),
                )
            )
        cmds = []
        for i, c in enumerate(ser.expect_list(commands, "commands")):
            contract, name, signers, args = ser.expect_list(c, f"commands[{i}]", 4)
            cmds.append(
                Command(
                    ser.expect(contract, str, f"commands[{i}].contract"),
                    ser.expect(name, str, f"commands[{i}].name"),
                    tuple(
                        PublicKey(ser.expect(k, bytes, f"commands[{i}].signers[{j}]"))
                        for j, k in enumerate(ser.expect_list(signers, f"commands[{i}].signers"))
                    ),
                    ser.expect(args, dict, f"commands[{i}].args"),
                )
            )
        window = None
        if tw is not None:
            start, until = ser.expect_list(tw, "time_window", 2)
            window = TimeWindow(_time_from(start, "time_window.from"), _time_from(until, "time_window.until"))
        return cls(
            inputs=tuple(
                _ref_from(r, f"inputs[{i}]") for i, r in enumerate(ser.expect_list(inputs, "inputs"))
            ),
            references=tuple(
                _ref_from(r, f"references[{i}]") for i, r in enumerate(ser.expect_list(refs, "references"))
            ),
            outputs=tuple(outs),
            commands=tuple(cmds),
            notary=None if notary is None else _party_from(notary, "notary"),
            time_window=window,
            salt=ser.expect(salt, bytes, "salt"),
        )

    @cached_property
    def serialized(self) -> bytes:
        return ser.encode(self.to_obj(), checked=True)

    @classmethod
    def deserialize(cls, data: bytes) -> WireTransaction:
        # from_obj checks every value by field (plain data by check_plain) before the canonical check.
        wtx = ser.decode_parsed(data, "transaction", cls.from_obj)
        wtx.__dict__["serialized"] = bytes(data)
        return wtx

    @cached_property
    def id(self) -> SecureHash:
        return SecureHash.of(self.serialized)

    @property
    def needs_notarisation(self) -> bool:
        """Inputs, reference inputs or a time window need the notary; an issuance does not."""
        return bool(self.inputs or self.references or self.time_window)

    def required_signers(self) -> set[PublicKey]:
        """Every command signer; the notary's key is added by the verifier when notarisation applies."""
        return {key for cmd in self.commands for key in cmd.signers}

    def output_ref(self, index: int) -> StateRef:
        return StateRef(self.id, index)

    def out_ref(self, index: int) -> StateAndRef:
        return StateAndRef(self.outputs[index], StateRef(self.id, index), self.notary)


@dataclass(frozen=True)
class SignedTransaction:
    """A wire transaction and the signatures over its id."""

    tx: WireTransaction
    sigs: tuple[TransactionSignature, ...] = ()

    @cached_property
    def id(self) -> SecureHash:
        # Cached in the instance: asked for many times a transaction by recovery's batches.
        return self.tx.id

    def with_signatures(self, *sigs: TransactionSignature) -> SignedTransaction:
        known = {(s.by, s.signature) for s in self.sigs}
        extra = tuple(s for s in sigs if (s.by, s.signature) not in known)
        return SignedTransaction(self.tx, self.sigs + extra)

    def signed_by(self, *keys: KeyPair) -> SignedTransaction:
        return self.with_signatures(*(sign(self.tx.id, k) for k in keys))

    def signers(self) -> set[PublicKey]:
        return {s.by for s in self.sigs}

    def serialize_signatures(self) -> bytes:
        return self.serialized_signatures

    @cached_property
    def serialized_signatures(self) -> bytes:
        """The signatures as the store keeps them (deserialize fills it in from the bytes it read)."""
        return encode_signatures(self.sigs)

    def serialize(self) -> bytes:
        return ser.encode([WIRE_VERSION, self.tx.serialized, [[s.by.raw, s.signature] for s in self.sigs]])

    @staticmethod
    def serialize_parts(wire: bytes, signatures: bytes) -> bytes:
        """serialize() of the transaction the store's two columns hold, without parsing it."""
        sigs = ser.expect_list(ser.decode(signatures, "signatures", plain=False), "signatures")
        return ser.encode([WIRE_VERSION, wire, sigs])

    @classmethod
    def deserialize(cls, data: bytes) -> SignedTransaction:
        stx = ser.decode_parsed(data, "signed transaction", cls._from_obj)
        wire = stx.tx.serialized
        # Canonical [1, wire, signatures]: the signatures' encoding is what follows the wire's bytes
        # (array and version one byte each, then the byte string's head), kept for the store.
        stx.__dict__["serialized_signatures"] = bytes(data[2 + _bytes_head(len(wire)) + len(wire) :])
        return stx

    @classmethod
    def _from_obj(cls, obj: Any) -> SignedTransaction:
        # Every value checked (the wire by its own parser, each signature's two byte strings), so that
        # decode_parsed needs no check_shape walk.
        version, wire, sigs = ser.expect_list(obj, "signed transaction", 3)
        _check_version(version, "signed transaction.version")
        tx = WireTransaction.deserialize(ser.expect(wire, bytes, "signed transaction.transaction"))
        return cls(tx, _signatures_from(sigs))

    @classmethod
    def from_parts(cls, wire: bytes, signatures: bytes) -> SignedTransaction:
        """Rebuild from the two columns the store keeps."""
        return cls(WireTransaction.deserialize(wire), decode_signatures(signatures))


def _bytes_head(length: int) -> int:
    """The size of a canonical CBOR byte string's head, for a string of length bytes."""
    if length < 24:
        return 1
    if length < 0x100:
        return 2
    if length < 0x10000:
        return 3
    return 5 if length < 0x100000000 else 9


def sign(tx_id: SecureHash, key: KeyPair) -> TransactionSignature:
    return TransactionSignature(key.public, key.sign(bytes(tx_id)))


def encode_signatures(sigs: Iterable[TransactionSignature]) -> bytes:
    return ser.encode([[s.by.raw, s.signature] for s in sigs])


def decode_signatures(data: bytes) -> tuple[TransactionSignature, ...]:
    return _signatures_from(ser.decode(data, "signatures", plain=False))


def _signatures_from(obj: Any) -> tuple[TransactionSignature, ...]:
    out = []
    for i, pair in enumerate(ser.expect_list(obj, "signatures")):
        key, sig = ser.expect_list(pair, f"signatures[{i}]", 2)
        out.append(
            TransactionSignature(
                PublicKey(ser.expect(key, bytes, f"signatures[{i}].by")),
                ser.expect(sig, bytes, f"signatures[{i}].signature"),
            )
        )
    return tuple(out)


@dataclass
class TransactionBuilder:
    """Collects the parts of a transaction, then freezes them into a WireTransaction."""

    notary: Party | None = None
    inputs: list[StateAndRef] = field(default_factory=list)
    references: list[StateAndRef] = field(default_factory=list)
    outputs: list[TransactionState] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    time_window: TimeWindow | None = None

    def add_input(self, state: StateAndRef) -> TransactionBuilder:
        self.inputs.append(state)
        return self

    def add_reference(self, state: StateAndRef) -> TransactionBuilder:
        self.references.append(state)
        return self

    def add_output(self, state: TransactionState) -> TransactionBuilder:
        self.outputs.append(state)
        return self

    def add_command(self, command: Command) -> TransactionBuilder:
        self.commands.append(command)
        return self

    def to_wire(self, salt: bytes | None = None) -> WireTransaction:
        return WireTransaction(
            inputs=tuple(s.ref for s in self.inputs),
            references=tuple(s.ref for s in self.references),
            outputs=tuple(self.outputs),
            commands=tuple(self.commands),
            notary=self.notary,
            time_window=self.time_window,
            salt=salt if salt is not None else os.urandom(SALT_SIZE),
        )

    def sign(self, keys: Sequence[KeyPair], salt: bytes | None = None) -> SignedTransaction:
        return SignedTransaction(self.to_wire(salt)).signed_by(*keys)

"""The encrypted distribution list of a ReceiverDistribution record, byte for byte as Corda lays it out.

    plaintext  u8 senderStatesToRecord | i32 count | count x (32-byte peer hash, u8 StatesToRecord)
    header     u8 version=1 | i64 senderRecordedTimestamp (epoch ms) | i32 timeDiscriminator   (13 bytes)
    envelope   u8 version=1 | 16-byte key id (UUID msb, lsb) | i32 aadLen | header | 12-byte IV
               | AES-GCM ciphertext with its 16-byte tag

All integers big-endian. The header is the AES-GCM additional data: in clear text, so a receiver can
read the sender's timestamp without the key, and authenticated, so the sender, the only one who can
decrypt, learns of any tampering when it reads the list back during recovery. The key id is not in
the additional data; a tampered id names another key (or none) and decryption fails all the same.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.clock import from_epoch_ms, to_epoch_ms
from agent.errors import SerializationError
from agent.ledger.vault import StatesToRecord

VERSION = 1
HEADER = struct.Struct(">BqI")  # version, senderRecordedTimestamp ms, timeDiscriminator
IV_SIZE = 12
PEER_HASH_SIZE = 32
_PREFIX = struct.Struct(">B16sI")  # version, key id, aad length


class DistributionListError(SerializationError):
    """A distribution list that cannot be read back: malformed, unknown key, or tampered with."""

    def __init__(self, reason: str) -> None:
        super().__init__("distribution_list", reason)


@dataclass(frozen=True)
class DistributionList:
    """Who the sender sent a transaction to, with what each was told to record."""

    sender_states_to_record: StatesToRecord
    peers: Mapping[str, StatesToRecord]  # peer id (hex SHA-256 of the X.500 name) -> StatesToRecord


@dataclass(frozen=True)
class PublicHeader:
    """The clear-text, authenticated part: when the sender recorded the transaction."""

    sender_recorded_timestamp: datetime
    time_discriminator: int


def encode_plaintext(dl: DistributionList) -> bytes:
    parts = [struct.pack(">Bi", dl.sender_states_to_record, len(dl.peers))]
    for peer_id in sorted(dl.peers):
        raw = bytes.fromhex(peer_id)
        if len(raw) != PEER_HASH_SIZE:
            raise SerializationError("distribution_list.peers", f"peer id {peer_id!r} is not a SHA-256 hex")
        parts.append(raw + bytes([dl.peers[peer_id]]))
    return b"".join(parts)


def decode_plaintext(data: bytes) -> DistributionList:
    if len(data) < 5:
        raise DistributionListError("plaintext shorter than its 5-byte prefix")
    sender, count = struct.unpack_from(">Bi", data)
    if count < 0 or len(data) != 5 + count * (PEER_HASH_SIZE + 1):
        raise DistributionListError(f"plaintext of {len(data)} bytes cannot hold {count} peers")
    peers = {}
    for i in range(count):
        at = 5 + i * (PEER_HASH_SIZE + 1)
        peers[data[at : at + PEER_HASH_SIZE].hex()] = _states_to_record(data[at + PEER_HASH_SIZE])
    return DistributionList(_states_to_record(sender), peers)


def _states_to_record(ordinal: int) -> StatesToRecord:
    try:
        return StatesToRecord(ordinal)
    except ValueError:
        raise DistributionListError(f"unknown StatesToRecord ordinal {ordinal}") from None


def encode_header(header: PublicHeader) -> bytes:
    return HEADER.pack(VERSION, to_epoch_ms(header.sender_recorded_timestamp), header.time_discriminator)


def encrypt(dl: DistributionList, header: PublicHeader, key_id: uuid.UUID, key: bytes) -> bytes:
    """Seal the list with one of the node's keys and a fresh IV."""
    aad = encode_header(header)
    iv = os.urandom(IV_SIZE)
    sealed = AESGCM(key).encrypt(iv, encode_plaintext(dl), aad)
    return _PREFIX.pack(VERSION, key_id.bytes, len(aad)) + aad + iv + sealed


def _split(envelope: bytes) -> tuple[uuid.UUID, bytes, bytes, bytes]:
    if len(envelope) < _PREFIX.size:
        raise DistributionListError("envelope shorter than its prefix")
    version, key_id, aad_len = _PREFIX.unpack_from(envelope)
    if version != VERSION:
        raise DistributionListError(f"unsupported envelope version {version}")
    if aad_len != HEADER.size:
        raise DistributionListError(f"header of {aad_len} bytes, expected {HEADER.size}")
    at = _PREFIX.size
    aad = envelope[at : at + aad_len]
    iv = envelope[at + aad_len : at + aad_len + IV_SIZE]
    sealed = envelope[at + aad_len + IV_SIZE :]
    if len(iv) != IV_SIZE or len(sealed) < 16:
        raise DistributionListError("envelope truncated")
    return _key_id(key_id), aad, iv, sealed


@lru_cache(maxsize=64)
def _key_id(raw: bytes) -> uuid.UUID:
    # A node has a few keys, and UUID(bytes=) is slow Python: once for every list a recovery opens.
    return uuid.UUID(bytes=raw)


def read_header(envelope: bytes) -> PublicHeader:
    """The header as a receiver reads it: without the key, and so without authenticating it."""
    _, aad, _, _ = _split(envelope)
    version, millis, discriminator = HEADER.unpack(aad)
    if version != VERSION:
        raise DistributionListError(f"unsupported header version {version}")
    try:
        return PublicHeader(from_epoch_ms(millis), discriminator)
    except SerializationError as exc:
        raise DistributionListError(f"its header's {exc}") from None


def decrypt(envelope: bytes, keys: Mapping[uuid.UUID, bytes]) -> tuple[DistributionList, PublicHeader]:
    """Open a list this node sealed; a changed byte anywhere (header included) is refused."""
    key_id, aad, iv, sealed = _split(envelope)
    key = keys.get(key_id)
    if key is None:
        raise DistributionListError(f"sealed with key {key_id}, which this node does not hold")
    try:
        plaintext = AESGCM(key).decrypt(iv, sealed, aad)
    except InvalidTag:
        raise DistributionListError(
            "authentication failed: the list or its header was tampered with"
        ) from None
    return decode_plaintext(plaintext), read_header(envelope)

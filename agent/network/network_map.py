"""The network map: who is on the network, where to reach them, in what role, signed by the operator.

A node trusts the map only as far as it trusts the root: the signer's certificate must chain to the
root in the "network-map" role, the signature must cover the map, and every entry's certificate must
chain to the root in the role the entry declares, with the declared name as its subject. So a map
edited by hand, or signed by a node, is refused as a whole rather than partly believed.

What is signed is the canonical JSON of the map object (sorted keys, no white space, UTF-8), not the
file's bytes: the file stays readable (indented) and the check covers exactly what is then decoded.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeGuard

from cryptography import x509

from agent.clock import Clock
from agent.errors import IdentityError, InvalidNameError
from agent.files import write_private
from agent.ledger.identity import Party, X500Name
from agent.ledger.keys import KeyPair
from agent.network.pki import (
    NETWORK_MAP_ROLE,
    NODE_ROLE,
    NOTARY_ROLE,
    certificate_from_pem,
    certificate_role,
    certificate_to_pem,
    public_key_of,
    verify_certificate,
)

# The roles an entry of the map may have; the network-map role signs the map and is never an entry.
ENTRY_ROLES = (NODE_ROLE, NOTARY_ROLE)


@dataclass(frozen=True)
class NetworkParameters:
    """Rules every node on the network agrees on."""

    max_message_size: int = 10 * 1024 * 1024
    minimum_platform_version: int = 1
    epoch: int = 1

    def __post_init__(self) -> None:
        for field, value in (
            ("max_message_size", self.max_message_size),
            ("minimum_platform_version", self.minimum_platform_version),
            ("epoch", self.epoch),
        ):
            if not _is_int(value) or value < 1:
                raise IdentityError(f"network parameters: {field} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class NodeInfo:
    """One participant: its name, where it listens, its identity certificate and its role."""

    name: X500Name
    addresses: tuple[str, ...]
    certificate: x509.Certificate
    role: str

    def __post_init__(self) -> None:
        if self.role not in ENTRY_ROLES:
            raise IdentityError(
                f"node {self.name}: role {self.role!r} is not one of {', '.join(ENTRY_ROLES)}"
            )

    @property
    def party(self) -> Party:
        return Party(self.name, public_key_of(self.certificate))

    @property
    def is_notary(self) -> bool:
        return self.role == NOTARY_ROLE


@dataclass(frozen=True)
class NetworkMap:
    """Every participant of the network, under one serial number."""

    parameters: NetworkParameters
    nodes: tuple[NodeInfo, ...]
    serial: int

    def __post_init__(self) -> None:
        seen: set[X500Name] = set()
        for info in self.nodes:
            if info.name in seen:
                raise IdentityError(f"network map lists {info.name} more than once")
            seen.add(info.name)
        if not _is_int(self.serial) or self.serial < 0:
            raise IdentityError(f"network map serial must be a non-negative integer, got {self.serial!r}")

    @cached_property
    def _by_name(self) -> dict[X500Name, NodeInfo]:
        return {info.name: info for info in self.nodes}

    @cached_property
    def _by_peer_id(self) -> dict[str, NodeInfo]:
        return {info.name.peer_id: info for info in self.nodes}

    def at_address(self, address: str) -> NodeInfo:
        """The participant the map puts at address; IdentityError for an address it does not list."""
        for info in self.nodes:
            if address in info.addresses:
                return info
        raise IdentityError(f"no participant at {address} in the network map")

    def node(self, name: X500Name | str) -> NodeInfo:
        """The entry for name; IdentityError when the map does not list it."""
        key = name if isinstance(name, X500Name) else X500Name.parse(name)
        try:
            return self._by_name[key]
        except KeyError:
            raise IdentityError(f"{key} is not in the network map") from None

    @property
    def notaries(self) -> tuple[NodeInfo, ...]:
        return tuple(info for info in self.nodes if info.is_notary)

    def peers_of(self, name: X500Name | str) -> tuple[NodeInfo, ...]:
        """Every non-notary node but name itself; name must be on the map (a stranger has no peers)."""
        me = self.node(name).name
        return tuple(info for info in self.nodes if info.name != me and not info.is_notary)

    def by_peer_id(self, peer_id: str) -> NodeInfo:
        """The entry whose name hashes to peer_id (the id recovery records carry)."""
        try:
            return self._by_peer_id[peer_id]
        except KeyError:
            raise IdentityError(f"no party with peer id {peer_id} in the network map") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "networkParameters": {
                "maxMessageSize": self.parameters.max_message_size,
                "minimumPlatformVersion": self.parameters.minimum_platform_version,
                "epoch": self.parameters.epoch,
            },
            "nodes": [
                {
                    "name": str(info.name),
                    "addresses": list(info.addresses),
                    "role": info.role,
                    "certificate": certificate_to_pem(info.certificate),
                }
                for info in self.nodes
            ],
            "serial": self.serial,
        }

    @classmethod
    def from_json(cls, data: object) -> NetworkMap:
        """Decode the map object; IdentityError naming the field when it is malformed."""
        try:
            root = _mapping(data, "networkMap")
            params = _mapping(root["networkParameters"], "networkParameters")
            parameters = NetworkParameters(
                max_message_size=_int(params["maxMessageSize"], "maxMessageSize"),
                minimum_platform_version=_int(params["minimumPlatformVersion"], "minimumPlatformVersion"),
                epoch=_int(params["epoch"], "epoch"),
            )
            entries = root["nodes"]
            if not isinstance(entries, list):
                raise IdentityError("nodes: not a list")
            nodes = tuple(_node_from_json(entry, index) for index, entry in enumerate(entries))
            return cls(parameters, nodes, _int(root["serial"], "serial"))
        except KeyError as exc:
            raise IdentityError(f"network map: missing field {exc.args[0]!r}") from None


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int to Python, not to us.
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: object, field: str) -> int:
    if not _is_int(value):
        raise IdentityError(f"network map: {field} is not an integer: {value!r}")
    return value


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise IdentityError(f"network map: {field} is not an object")
    return value


def _node_from_json(entry: object, index: int) -> NodeInfo:
    where = f"network map: nodes[{index}]"
    node = _mapping(entry, f"nodes[{index}]")
    try:
        name = X500Name.parse(node["name"])
    except InvalidNameError as exc:
        raise IdentityError(f"{where}: {exc}") from exc
    addresses = node["addresses"]
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise IdentityError(f"{where} ({name}): addresses is not a list of strings")
    role = node["role"]
    pem = node["certificate"]
    if not isinstance(role, str) or not isinstance(pem, str):
        raise IdentityError(f"{where} ({name}): role and certificate must be strings")
    certificate = certificate_from_pem(pem, f"{where} ({name}) certificate")
    return NodeInfo(name, tuple(addresses), certificate, role)


def canonical_json(data: object) -> bytes:
    """The bytes that are signed: stable across writers, whatever their key order or indentation."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class SignedNetworkMap:
    """A network map's canonical bytes, the operator's signature over them, and the signer certificate."""

    payload: bytes
    signature: bytes
    signer_certificate: x509.Certificate

    @classmethod
    def sign(cls, network_map: NetworkMap, key: KeyPair, certificate: x509.Certificate) -> SignedNetworkMap:
        """Sign with the network-map key; refuses a key or certificate that could not pass load."""
        if public_key_of(certificate) != key.public:
            raise IdentityError("network map signing key does not match the signer certificate")
        role = certificate_role(certificate)
        if role != NETWORK_MAP_ROLE:
            raise IdentityError(f"network map signer certificate has role {role!r}, not {NETWORK_MAP_ROLE!r}")
        payload = canonical_json(network_map.to_json())
        return cls(payload, key.sign(payload), certificate)

    def to_json(self) -> dict[str, Any]:
        return {
            "networkMap": json.loads(self.payload),
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "signerCertificate": certificate_to_pem(self.signer_certificate),
        }

    def write(self, path: Path) -> None:
        """The signed map as JSON, 0600 like every file of a node's (agent.files)."""
        write_private(path, json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n")

    @classmethod
    def read(cls, path: Path) -> SignedNetworkMap:
        """Read the file without verifying anything; use load to get a map you may trust."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise IdentityError(f"{path}: network map file not found") from None
        except OSError as exc:  # a folder, unreadable
            raise IdentityError(f"{path}: network map file cannot be read: {exc.strerror or exc}") from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep, a 5,000-digit int
            raise IdentityError(f"{path}: not a JSON network map: {exc}") from exc
        if not isinstance(document, dict):
            raise IdentityError(f"{path}: not a JSON object")
        try:
            payload = canonical_json(document["networkMap"])
            signature = base64.b64decode(document["signature"], validate=True)
            signer_pem = document["signerCertificate"]
        except KeyError as exc:
            raise IdentityError(f"{path}: missing field {exc.args[0]!r}") from None
        except (TypeError, binascii.Error) as exc:
            raise IdentityError(f"{path}: signature is not base64: {exc}") from exc
        if not isinstance(signer_pem, str):
            raise IdentityError(f"{path}: signerCertificate is not a PEM string")
        return cls(payload, signature, certificate_from_pem(signer_pem, f"{path}: signerCertificate"))

    def verify(self, trust_root: x509.Certificate, clock: Clock) -> NetworkMap:
        """The map, once the signer, the signature and every entry's certificate check out."""
        signer = verify_certificate(
            self.signer_certificate, trust_root, clock, expected_role=NETWORK_MAP_ROLE
        )
        if not signer.owning_key.verify(self.signature, self.payload):
            raise IdentityError(f"network map signature by {signer.name} does not verify")
        network_map = NetworkMap.from_json(json.loads(self.payload))
        for info in network_map.nodes:
            party = verify_certificate(info.certificate, trust_root, clock, expected_role=info.role)
            if party.name != info.name:
                raise IdentityError(
                    f"network map entry {info.name}: certificate is issued to {party.name}, not to the entry"
                )
        return network_map

    @classmethod
    def load(cls, path: Path, trust_root: x509.Certificate, clock: Clock) -> NetworkMap:
        """Read and verify the signed map at path; IdentityError naming the path on any failure."""
        signed = cls.read(path)
        try:
            return signed.verify(trust_root, clock)
        except IdentityError as exc:
            raise IdentityError(f"{path}: {exc}") from exc

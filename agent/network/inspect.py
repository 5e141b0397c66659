"""`ledger-agent network inspect`: what a network folder holds, checked the way the agents check it.

The signed map (its signer, its signature, each entry's certificate against the root, as
SignedNetworkMap.verify does) and each node folder beside it (its node.conf, its TLS and management
certificates, its copy of the root, the map it reads). Unlike the agent, which refuses at the first
fault, it goes on and reports every fault it finds, each naming the file and what is wrong, so one
run shows an operator all there is to fix. Nothing is written.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.clock import Clock, SystemClock
from agent.config import NodeConfig, load_node_config
from agent.errors import AgentError, IdentityError
from agent.ledger.identity import X500Name
from agent.network.bootstrap import IDENTITY_CERT_FILE, NETWORK_MAP_FILE, ROOT_CERT_FILE, ROOT_DIR
from agent.network.network_map import NetworkMap, NodeInfo, SignedNetworkMap
from agent.network.pki import (
    NETWORK_MAP_ROLE,
    name_from_certificate,
    read_certificate,
    signed_by,
    verify_certificate,
)
from agent.operator_api.layout import (
    NODE_CONFIG_FILE,
    InspectedCertificate,
    InspectedMap,
    InspectedNetwork,
    InspectedNode,
)

EXPIRY_WARNING = timedelta(days=30)  # a certificate valid for less than this is named


def inspect_network(directory: Path, clock: Clock | None = None) -> InspectedNetwork:
    """Every member of the network map in directory, checked; IdentityError when directory holds
    no network map at all (nothing to inspect)."""
    clock = clock or SystemClock()
    directory = directory.resolve()
    map_file = directory / NETWORK_MAP_FILE
    if not map_file.is_file():
        what = "does not exist" if not directory.exists() else f"holds no {NETWORK_MAP_FILE}"
        raise IdentityError(
            f"{directory} {what}: not a network folder (`ledger-agent network init` makes one)"
        )
    root_file = directory / ROOT_DIR / ROOT_CERT_FILE
    root_entry, root = _root(root_file, clock.now())
    signed = SignedNetworkMap.read(map_file)
    inspected_map, network_map = _map(map_file, signed, root, clock)
    configs, problems = _node_configs(directory)
    nodes = []
    if network_map is not None:
        on_map = {info.name for info in network_map.nodes}
        for name, config in sorted(configs.items(), key=lambda item: str(item[1].path)):
            if name not in on_map:
                problems.append(f"{config.path}: {name} is not on the network map")
        nodes = [
            _node(info, configs.get(info.name), root, root_file, map_file, clock)
            for info in network_map.nodes
        ]
    return {
        "directory": str(directory),
        "root": root_entry,
        "map": inspected_map,
        "nodes": nodes,
        "problems": problems,
    }


def _root(path: Path, now: datetime) -> tuple[InspectedCertificate, x509.Certificate | None]:
    try:
        root = read_certificate(path)
    except IdentityError as exc:
        return _entry(str(path), None, str(exc)), None
    problem = _validity(root, now)
    if problem is None and not isinstance(root.public_key(), Ed25519PublicKey):
        problem = "its key is not Ed25519"
    return _entry(
        str(path), root, None if problem is None else f"{path}: the root CA certificate {problem}"
    ), root


def _map(
    path: Path, signed: SignedNetworkMap, root: x509.Certificate | None, clock: Clock
) -> tuple[InspectedMap, NetworkMap | None]:
    """The map's serial, signer and signature; its entries even when the signature fails (marked)."""
    problems: list[str] = []
    signer = signed.signer_certificate
    signer_name: str | None = signer.subject.rfc4514_string()
    verified = False
    if root is None:
        problems.append(f"{path}: the signature is not checked: no usable root CA certificate")
    else:
        try:
            party = verify_certificate(signer, root, clock, expected_role=NETWORK_MAP_ROLE)
            signer_name = str(party.name)
            verified = party.owning_key.verify(signed.signature, signed.payload)
            if not verified:
                problems.append(
                    f"{path}: the signature by {party.name} does not verify: the map was changed after signing"
                )
        except IdentityError as exc:
            problems.append(f"{path}: signer: {exc}")
    network_map: NetworkMap | None = None
    try:
        network_map = NetworkMap.from_json(json.loads(signed.payload))
    except IdentityError as exc:
        problems.append(f"{path}: {exc}")
    inspected: InspectedMap = {
        "file": str(path),
        "serial": network_map.serial if network_map is not None else None,
        "signer": signer_name,
        "signer_valid_until": signer.not_valid_after_utc.isoformat(),
        "signature_verified": verified,
        "problems": problems,
    }
    return inspected, network_map


def _node_configs(directory: Path) -> tuple[dict[X500Name, NodeConfig], list[str]]:
    """The node.conf of each folder directly in directory, by the node's name; a problem for each
    one that cannot be read."""
    configs: dict[X500Name, NodeConfig] = {}
    problems: list[str] = []
    for path in sorted(directory.glob(f"*/{NODE_CONFIG_FILE}")):
        try:
            config = load_node_config(path)
        except AgentError as exc:
            problems.append(f"{path}: {exc}")
            continue
        if config.my_legal_name in configs:
            other = configs[config.my_legal_name].path
            problems.append(f"{path}: {config.my_legal_name} has a node folder already, {other.parent}")
            continue
        configs[config.my_legal_name] = config
    return configs, problems


def _node(
    info: NodeInfo,
    config: NodeConfig | None,
    root: x509.Certificate | None,
    root_file: Path,
    map_file: Path,
    clock: Clock,
) -> InspectedNode:
    now = clock.now()
    identity = _entry(f"{map_file} ({info.name})", info.certificate, None)
    if root is not None:
        try:
            party = verify_certificate(info.certificate, root, clock, expected_role=info.role)
            if party.name != info.name:
                identity["problem"] = f"the map's certificate for {info.name} is issued to {party.name}"
        except IdentityError as exc:
            identity["problem"] = f"{map_file}: {info.name}: {exc}"
    node: InspectedNode = {
        "name": str(info.name),
        "role": info.role,
        "addresses": list(info.addresses),
        "management_url": None,
        "folder": None,
        "config": None,
        "identity": identity,
        "tls": None,
        "management_tls": None,
        "problems": [],
        "warnings": [],
    }
    if config is not None:
        host, port = config.management_address
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host  # IPv6, as a URL holds it
        node["management_url"] = f"{'https' if config.management_ssl else 'http'}://{host}:{port}"
        node["folder"] = str(config.base_directory)
        node["config"] = str(config.path)
        node["tls"] = _tls(config.p2p_tls_files.certificate, info, root, now)
        if config.management_ssl:
            node["management_tls"] = _tls(config.management_tls_files.certificate, info, root, now)
        node["problems"] += _folder_problems(info, config, root, root_file, map_file)
    for certificate in (node["identity"], node["tls"], node["management_tls"]):
        if certificate is None:
            continue
        if certificate["problem"] is not None:
            node["problems"].append(certificate["problem"])
        elif certificate["valid_until"] is not None:
            left = datetime.fromisoformat(certificate["valid_until"]) - now
            if left < EXPIRY_WARNING:
                node["warnings"].append(f"{certificate['file']} expires in {left.days} days")
    return node


def _folder_problems(
    info: NodeInfo, config: NodeConfig, root: x509.Certificate | None, root_file: Path, map_file: Path
) -> list[str]:
    """What in the node's folder disagrees with the network: its map, its root, its identity
    certificate, its address."""
    problems = []
    if config.network_map_file.resolve() != map_file:
        problems.append(f"{config.path}: networkMapFile is {config.network_map_file}, not {map_file}")
    own_root = config.trust_root_file
    try:
        if root is not None and read_certificate(own_root) != root:
            problems.append(f"{own_root} is not the network's root CA certificate {root_file}")
    except IdentityError as exc:
        problems.append(str(exc))
    identity = config.certificates_directory / IDENTITY_CERT_FILE
    try:
        if read_certificate(identity) != info.certificate:
            problems.append(
                f"{identity} is not the map's certificate for {info.name}: its peers would not know it"
            )
    except IdentityError as exc:
        problems.append(str(exc))
    host, port = config.p2p_address
    if f"{host}:{port}" not in info.addresses:
        problems.append(
            f"{config.path}: p2pAddress {host}:{port} is not the map's address for {info.name} "
            f"({', '.join(info.addresses) or 'none'})"
        )
    return problems


def _tls(path: Path, info: NodeInfo, root: x509.Certificate | None, now: datetime) -> InspectedCertificate:
    """A TLS certificate of the node's: there, issued by the root, to the node, valid now."""
    try:
        cert = read_certificate(path)
    except IdentityError as exc:
        return _entry(str(path), None, str(exc))
    validity = _validity(cert, now)
    problem = None if validity is None else f"it {validity}"
    if problem is None and root is not None:
        problem = _issued_by(cert, root)
    if problem is None:
        try:
            name = name_from_certificate(cert)
        except AgentError as exc:
            name = None
            problem = f"its subject is not a legal name ({exc})"
        if name is not None and name != info.name:
            problem = f"it is issued to {name}, not to {info.name}"
    return _entry(str(path), cert, None if problem is None else f"{path}: {problem}")


def _issued_by(cert: x509.Certificate, root: x509.Certificate) -> str | None:
    key = root.public_key()
    if cert.issuer != root.subject or not isinstance(key, Ed25519PublicKey):
        return f"it is issued by {cert.issuer.rfc4514_string()}, not by the network's root CA"
    if not signed_by(cert, key):
        return "its signature does not verify against the network's root CA"
    return None


def _validity(cert: x509.Certificate, now: datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"is not valid yet (from {cert.not_valid_before_utc.isoformat()})"
    if now > cert.not_valid_after_utc:
        return f"has expired ({cert.not_valid_after_utc.isoformat()})"
    return None


def _entry(file: str, cert: x509.Certificate | None, problem: str | None) -> InspectedCertificate:
    return {
        "file": file,
        "subject": None if cert is None else cert.subject.rfc4514_string(),
        "valid_from": None if cert is None else cert.not_valid_before_utc.isoformat(),
        "valid_until": None if cert is None else cert.not_valid_after_utc.isoformat(),
        "problem": problem,
    }

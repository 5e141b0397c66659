"""Bootstrap a local network in one folder: a root CA, a signed network map, and a folder per node.

This is the developer's "give me a network to run": every key is generated here and every node gets
its own configuration, so the nodes can be started side by side on one machine. It never overwrites
anything; an existing network is someone's data.

Layout of `directory`:

    network-root/root-key.pem, root-cert.pem        the trust root (key 0600)
    network-map/network-map-key.pem, -cert.pem      the map signer (key 0600)
    network-map.json                                the signed map: every node and the notary
    <Organisation>/node.conf                        HOCON, read by the node
    <Organisation>/certificates/identity-key.pem    the node's identity key (0600)
    <Organisation>/certificates/identity-cert.pem   its certificate, role node or notary
    <Organisation>/certificates/network-root.pem    the trust root the node checks everything against

Every file it writes is 0600 and every directory it creates 0700, whatever the umask: node.conf holds
the management users' password hashes, and one user's network is nobody else's to read.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.clock import Clock, SystemClock
from agent.errors import ConfigurationError, IdentityError
from agent.files import private_dir, write_private
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.network.network_map import NetworkMap, NetworkParameters, NodeInfo, SignedNetworkMap
from agent.network.pki import (
    NETWORK_MAP_ROLE,
    NODE_ROLE,
    NOTARY_ROLE,
    create_root_ca,
    issue_certificate,
    write_certificate,
)
from agent.network.tls import (
    MANAGEMENT_CERT_FILE,
    MANAGEMENT_KEY_FILE,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TRUST_ROOT_FILE,
    issue_tls_certificate,
)
from agent.operator_api.layout import (
    MONITOR_PASSWORD_FILE,
    MONITOR_USER,
    NODE_CONFIG_FILE,
    OPERATOR_USER,
    PASSWORD_FILE,
)
from agent.passwords import hash_password

ROOT_DIR = "network-root"
ROOT_KEY_FILE = "root-key.pem"
ROOT_CERT_FILE = "root-cert.pem"
NETWORK_MAP_DIR = "network-map"
NETWORK_MAP_KEY_FILE = "network-map-key.pem"
NETWORK_MAP_CERT_FILE = "network-map-cert.pem"
NETWORK_MAP_FILE = "network-map.json"
CERTIFICATES_DIR = "certificates"
IDENTITY_KEY_FILE = "identity-key.pem"
IDENTITY_CERT_FILE = "identity-cert.pem"
DATABASE_FILE = "node.db"
HOST = "127.0.0.1"

ROOT_CA_NAME = X500Name.parse("CN=Local Network Root CA, O=Ledger Agent, L=London, C=GB")
NETWORK_MAP_NAME = X500Name.parse("CN=Network Map, O=Ledger Agent, L=London, C=GB")
DEFAULT_NOTARY = X500Name.parse("O=Notary, L=Zurich, C=CH")

_CITIES = (
    ("London", "GB"),
    ("New York", "US"),
    ("Paris", "FR"),
    ("Tokyo", "JP"),
    ("Frankfurt", "DE"),
    ("Singapore", "SG"),
    ("Sydney", "AU"),
    ("Toronto", "CA"),
    ("Mumbai", "IN"),
    ("São Paulo", "BR"),
    ("Johannesburg", "ZA"),
    ("Madrid", "ES"),
    ("Milan", "IT"),
    ("Amsterdam", "NL"),
    ("Stockholm", "SE"),
    ("Oslo", "NO"),
    ("Copenhagen", "DK"),
    ("Dublin", "IE"),
    ("Seoul", "KR"),
    ("Hong Kong", "HK"),
    ("Mexico City", "MX"),
    ("Buenos Aires", "AR"),
    ("Cairo", "EG"),
    ("Nairobi", "KE"),
    ("Auckland", "NZ"),
    ("Vienna", "AT"),
)
MAX_DEFAULT_NODES = len(_CITIES)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_RESERVED = frozenset({ROOT_DIR, NETWORK_MAP_DIR, NETWORK_MAP_FILE})
_MAX_PORT = 65535


def default_node_names(n: int) -> list[X500Name]:
    """PartyA, PartyB, ... each in a different city, for networks nobody bothered to name."""
    if not 0 <= n <= MAX_DEFAULT_NODES:
        raise ConfigurationError("nodes", n, f"between 0 and {MAX_DEFAULT_NODES}")
    return [
        X500Name(organisation=f"Party{chr(ord('A') + i)}", locality=city, country=country)
        for i, (city, country) in enumerate(_CITIES[:n])
    ]


@dataclass(frozen=True)
class NodeLayout:
    """Where one bootstrapped node lives and listens."""

    name: X500Name
    folder: Path
    config: Path
    p2p_address: str
    management_address: str
    role: str


@dataclass(frozen=True)
class NetworkLayout:
    """What init_network created; nodes lists the notary first."""

    directory: Path
    root_certificate: Path
    network_map: Path
    nodes: tuple[NodeLayout, ...]

    def node(self, name: X500Name) -> NodeLayout:
        for layout in self.nodes:
            if layout.name == name:
                return layout
        raise IdentityError(f"{name} is not in the network at {self.directory}")


def folder_name(name: X500Name) -> str:
    """A folder name safe on every file system: the organisation with anything unusual dropped."""
    safe = _UNSAFE.sub("", name.organisation)
    # An organisation written wholly in another script still needs a folder; its peer id is stable.
    return safe or f"node-{name.peer_id[:12]}"


def _check_names(node_names: Sequence[X500Name], notary_name: X500Name) -> list[tuple[X500Name, str]]:
    """The (name, folder) pairs, notary first, or an error naming the clash."""
    seen: set[X500Name] = set()
    for name in node_names:
        if name in seen:
            raise IdentityError(f"duplicate node name {name}")
        seen.add(name)
    if notary_name in seen:
        raise IdentityError(f"the notary {notary_name} is also listed as a node; it must have its own name")
    members = [notary_name, *node_names]
    # Case-insensitive, because macOS and Windows file systems are.
    folders: dict[str, X500Name] = {}
    result: list[tuple[X500Name, str]] = []
    for name in members:
        folder = folder_name(name)
        key = folder.lower()
        if key in _RESERVED:
            raise IdentityError(f"{name} would use the folder {folder!r}, which the network itself needs")
        if key in folders:
            raise IdentityError(
                f"{folders[key]} and {name} would share the folder {folder!r}; give them different organisations"
            )
        folders[key] = name
        result.append((name, folder))
    return result


def write_secret(path: Path, text: str) -> None:
    """A file only its owner can read (0600), whatever the umask."""
    write_private(path, text + "\n")


def _hocon(value: str) -> str:
    # A JSON string literal is a valid quoted HOCON string, escapes included.
    return json.dumps(value, ensure_ascii=False)


def node_config(
    name: X500Name,
    p2p_address: str,
    management_address: str,
    database_url: str,
    *,
    notary: bool,
    operator_password_hash: str | None = None,
    faults: Sequence[str] = (),
    monitor_password_hash: str | None = None,
) -> str:
    """The text of node.conf."""
    lines = [
        "# Written by ledger-agent network init.",
        f"myLegalName = {_hocon(str(name))}",
        f"p2pAddress = {_hocon(p2p_address)}",
        f"managementAddress = {_hocon(management_address)}",
        "dataSourceProperties {",
        f"    dataSource.url = {_hocon(database_url)}",
        "}",
        f"certificatesDirectory = {_hocon(CERTIFICATES_DIR)}",
        f"networkMapFile = {_hocon('../' + NETWORK_MAP_FILE)}",
        "# Mutual TLS between agents, with certificates/tls.pem (every node of the network must agree).",
        "p2pTls = true",
        "# HTTPS on the management endpoint, with certificates/management.pem; clients trust",
        "# certificates/network-root.pem (docs/security.md).",
        "managementSsl {",
        "    useSsl = true",
        "}",
    ]
    if operator_password_hash is not None:
        lines += [
            "managementUsers = [",
            f"    {{ username = {_hocon(OPERATOR_USER)}, role = operator, "
            f"passwordHash = {_hocon(operator_password_hash)} }}",
        ]
        if monitor_password_hash is not None:
            lines += [
                f"    {{ username = {_hocon(MONITOR_USER)}, role = read-only, "
                f"passwordHash = {_hocon(monitor_password_hash)} }}",
            ]
        lines += ["]"]
    if faults:
        lines += ["# Test only: where flows crash or fail on purpose.", "faultInjection = ["]
        lines += [f"    {_hocon(f)}" for f in faults] + ["]"]
    if notary:
        lines += ["notary {", "    validating = false", "}"]
    return "\n".join(lines) + "\n"


def init_network(
    directory: Path,
    node_names: Sequence[X500Name],
    notary_name: X500Name,
    *,
    base_port: int = 10000,
    clock: Clock | None = None,
    database_url_for: Callable[[X500Name], str] | None = None,
    identity_keys: Mapping[X500Name, KeyPair] | None = None,
) -> NetworkLayout:
    """Create a complete local network under directory; refuses to overwrite anything there.

    Each member gets two consecutive ports from base_port (p2p, then management), the notary first.
    identity_keys gives members a key pair of the caller's (a benchmark whose generated ledger names
    its parties by key); the others get fresh keys.
    """
    clock = clock or SystemClock()
    directory = directory.resolve()
    members = _check_names(node_names, notary_name)
    last_port = base_port + 2 * len(members) - 1
    if base_port < 1 or last_port > _MAX_PORT:
        raise ConfigurationError("base_port", base_port, f"the {2 * len(members)} ports must fit in 1-65535")
    targets = [directory / ROOT_DIR, directory / NETWORK_MAP_DIR, directory / NETWORK_MAP_FILE]
    targets += [directory / folder for _, folder in members]
    for target in targets:
        if target.exists():
            raise FileExistsError(f"refusing to overwrite {target}: a network already exists in {directory}")

    private_dir(directory)
    root_key, root_cert = create_root_ca(ROOT_CA_NAME, clock)
    root_dir = directory / ROOT_DIR
    private_dir(root_dir)
    root_key.write_pem(root_dir / ROOT_KEY_FILE)
    write_certificate(root_dir / ROOT_CERT_FILE, root_cert)

    map_key = KeyPair.generate()
    map_cert = issue_certificate(
        root_key, root_cert, NETWORK_MAP_NAME, map_key.public, NETWORK_MAP_ROLE, clock
    )
    map_dir = directory / NETWORK_MAP_DIR
    private_dir(map_dir)
    map_key.write_pem(map_dir / NETWORK_MAP_KEY_FILE)
    write_certificate(map_dir / NETWORK_MAP_CERT_FILE, map_cert)

    layouts: list[NodeLayout] = []
    infos: list[NodeInfo] = []
    for index, (name, folder_text) in enumerate(members):
        role = NOTARY_ROLE if index == 0 else NODE_ROLE
        port = base_port + 2 * index
        folder = directory / folder_text
        certificates = folder / CERTIFICATES_DIR
        private_dir(folder)
        private_dir(certificates)
        key = identity_keys.get(name) if identity_keys else None
        key = key or KeyPair.generate()
        cert = issue_certificate(root_key, root_cert, name, key.public, role, clock)
        key.write_pem(certificates / IDENTITY_KEY_FILE)
        write_certificate(certificates / IDENTITY_CERT_FILE, cert)
        write_certificate(certificates / TRUST_ROOT_FILE, root_cert)
        # TLS keys of their own: the identity key signs transactions and stays out of the TLS layer.
        tls_key = KeyPair.generate()
        tls_key.write_pem(certificates / TLS_KEY_FILE)
        write_certificate(
            certificates / TLS_CERT_FILE, issue_tls_certificate(root_key, root_cert, name, tls_key, clock)
        )
        management_key = KeyPair.generate()
        management_key.write_pem(certificates / MANAGEMENT_KEY_FILE)
        write_certificate(
            certificates / MANAGEMENT_CERT_FILE,
            issue_tls_certificate(root_key, root_cert, name, management_key, clock, management_hosts=[HOST]),
        )

        p2p, management = f"{HOST}:{port}", f"{HOST}:{port + 1}"
        database_url = database_url_for(name) if database_url_for else f"sqlite:///{folder / DATABASE_FILE}"
        config = folder / NODE_CONFIG_FILE
        password = secrets.token_urlsafe(18)
        write_secret(folder / PASSWORD_FILE, password)
        monitor_password = secrets.token_urlsafe(18)
        write_secret(folder / MONITOR_PASSWORD_FILE, monitor_password)
        write_private(
            config,
            node_config(
                name,
                p2p,
                management,
                database_url,
                notary=role == NOTARY_ROLE,
                operator_password_hash=hash_password(password),
                monitor_password_hash=hash_password(monitor_password),
            ),
        )
        layouts.append(NodeLayout(name, folder, config, p2p, management, role))
        infos.append(NodeInfo(name, (p2p,), cert, role))

    network_map = NetworkMap(NetworkParameters(), tuple(infos), serial=1)
    map_path = directory / NETWORK_MAP_FILE
    SignedNetworkMap.sign(network_map, map_key, map_cert).write(map_path)
    return NetworkLayout(directory, root_dir / ROOT_CERT_FILE, map_path, tuple(layouts))

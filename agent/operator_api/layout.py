"""The node folder as `network init` writes it and the operator tools read it."""

from __future__ import annotations

from typing import TypedDict

NODE_CONFIG_FILE = "node.conf"
PASSWORD_FILE = "management-password"  # the operator's password, readable by its owner only
OPERATOR_USER = "operator"
MONITOR_PASSWORD_FILE = "monitor-password"  # the read-only user's, for Prometheus and check plugins
MONITOR_USER = "monitor"
# In certificatesDirectory: the network's root, which the TLS certificates (the peer endpoint's and,
# unless an operator's CA issued it, the management endpoint's) chain to.
TRUST_ROOT_FILE = "network-root.pem"


class CreatedNode(TypedDict):
    """One node `network init` made, as plain data (paths absolute)."""

    name: str  # the X.500 name, printed
    role: str  # "notary" or "node"
    folder: str
    config: str  # its node.conf
    p2p_address: str  # host:port
    management_address: str  # host:port


class CreatedNetwork(TypedDict):
    """What `network init` made: the folder, and its nodes with the notary first."""

    directory: str
    nodes: list[CreatedNode]


class InspectedCertificate(TypedDict):
    """One certificate as `network inspect` found it; problem None when it checks out."""

    file: str  # where it was read from (the map's entry for an identity)
    subject: str | None
    valid_from: str | None  # ISO-8601, UTC
    valid_until: str | None
    problem: str | None  # missing, not from the network's root, expired, another name, ...


class InspectedNode(TypedDict):
    """One member of the network map, with its node folder when the network folder holds one."""

    name: str
    role: str  # "node" or "notary", as the map says
    addresses: list[str]  # p2p, from the map
    management_url: str | None  # from its node.conf
    folder: str | None
    config: str | None  # its node.conf
    identity: InspectedCertificate  # the map's certificate
    tls: InspectedCertificate | None  # certificates/tls.pem (None: no folder)
    management_tls: InspectedCertificate | None  # certificates/management.pem, when managementSsl is on
    problems: list[str]
    warnings: list[str]  # nothing wrong yet (a certificate expiring soon)


class InspectedMap(TypedDict):
    file: str
    serial: int | None
    signer: str | None
    signer_valid_until: str | None
    signature_verified: bool
    problems: list[str]


class InspectedNetwork(TypedDict):
    """What `network inspect` found in a network folder (as `network init` makes one)."""

    directory: str
    root: InspectedCertificate
    map: InspectedMap
    nodes: list[InspectedNode]  # in the map's order
    problems: list[str]  # the folder's own: a node folder whose node is not on the map, ...

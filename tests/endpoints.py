"""How a test reaches a real agent process the way operators and peers do: the management endpoint
over HTTPS checked against the node's network root, the peer endpoint over mutual TLS as a member."""

from __future__ import annotations

import ssl
from pathlib import Path

from agent.client.nodeconf import management_verify, read_node_conf
from agent.clock import SystemClock
from agent.config import load_node_config
from agent.network.network_map import SignedNetworkMap
from agent.network.pki import read_certificate
from agent.network.tls import TRUST_ROOT_FILE
from agent.p2p.http import HttpTransport, tls_transport


def management(config: Path) -> tuple[str, ssl.SSLContext | bool]:
    """The management endpoint's base URL ("https://127.0.0.1:port") and httpx's verify= for it."""
    conf = read_node_conf(config)
    return conf.management_url, management_verify(conf.ca_file)


def ca_file(config: Path) -> Path:
    """The CA certificate the node's management certificate chains to (curl --cacert, Prometheus)."""
    found = read_node_conf(config).ca_file
    assert found is not None, f"{config}: managementSsl is off"
    return found


def member_transport(config: Path) -> HttpTransport:
    """The peer transport of the node whose node.conf is config: its TLS certificate, its network map."""
    node = load_node_config(config)
    trust_root = read_certificate(node.certificates_directory / TRUST_ROOT_FILE)
    return tls_transport(
        node.p2p_tls_files, SignedNetworkMap.load(node.network_map_file, trust_root, SystemClock())
    )

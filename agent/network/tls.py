"""TLS between agents and on the management endpoint, with certificates the network's root issues.

Two kinds of TLS certificate, each with a key of its own (never the identity key: that one signs
transactions and should not also sit in a TLS library's hands):

- **The node's TLS certificate** (`certificates/tls.pem`, `tls.key`), for mutual TLS between agents,
  as Corda nodes' `sslkeystore.jks`. Its subject is the node's legal name; its one DNS name is derived
  from that name (`peer_tls_name`). A client connects to the address the signed network map gives and
  asks for that DNS name (SNI), so the standard hostname check proves, before one byte of the request
  is sent, that the server holds a certificate the network's root issued to the very party we meant
  to reach, wherever its address points. The server requires a client certificate from the same root
  and the peer endpoint refuses a message whose signed sender is not the party the TLS certificate
  names (agent.p2p.http): a member cannot replay another member's message over its own connection.
- **The management certificate** (`certificates/management.pem`, `management.key`): a server
  certificate for the management endpoint's host, as Corda's RPC `ssl` keystore. Operators' tools,
  Prometheus and browsers trust the network's root (`certificates/network-root.pem`) or, when an
  operator installs a certificate of their own CA there, that CA.

Both are Ed25519, like every key of the network: OpenSSL, Go (Prometheus), Node.js and curl all take
it. Peers speak TLS 1.3 only (both ends are ours); the management endpoint accepts TLS 1.2 too, for
older monitoring tools.
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.clock import Clock
from agent.errors import ConfigurationError
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.network.pki import CERTIFICATE_VALIDITY_DAYS, issue_end_entity, name_from_certificate
from agent.operator_api.layout import TRUST_ROOT_FILE

TLS_KEY_FILE = "tls.key"
TLS_CERT_FILE = "tls.pem"
MANAGEMENT_KEY_FILE = "management.key"
MANAGEMENT_CERT_FILE = "management.pem"

# Under .invalid (RFC 2606): it can never be a real host name, so no public CA could ever issue it.
_PEER_DOMAIN = "p2p.ledger-agent.invalid"


def peer_tls_name(name: X500Name) -> str:
    """The DNS name in a node's TLS certificate: a hash of its legal name (X.500 names may hold any
    character; a DNS label may not), 128 bits, so no two parties share one."""
    digest = hashlib.sha256(str(name).encode("utf-8")).hexdigest()[:32]
    return f"n{digest}.{_PEER_DOMAIN}"


def _host_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_tls_certificate(
    root_key: KeyPair,
    root_cert: x509.Certificate,
    subject: X500Name,
    key: KeyPair,
    clock: Clock,
    *,
    management_hosts: list[str] | None = None,
    validity_days: int = CERTIFICATE_VALIDITY_DAYS,
) -> x509.Certificate:
    """A node's TLS certificate (client and server, named by peer_tls_name), or with management_hosts
    the management endpoint's server certificate for those hosts (and localhost)."""
    if management_hosts is None:
        alternative: list[x509.GeneralName] = [x509.DNSName(peer_tls_name(subject))]
        purposes = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    else:
        alternative = _host_names([*management_hosts, "localhost", "127.0.0.1", "::1"])
        purposes = [ExtendedKeyUsageOID.SERVER_AUTH]
    return issue_end_entity(
        root_key,
        root_cert,
        subject,
        key.public,
        purposes,
        clock,
        alternative_names=alternative,
        validity_days=validity_days,
    )


@dataclass(frozen=True)
class TlsFiles:
    """A certificate, its key and the CA certificate the other end's must chain to."""

    certificate: Path
    key: Path
    trust_root: Path

    def check(self, key: str) -> None:
        """ConfigurationError naming the node.conf key when a file is missing or unreadable."""
        for path in (self.certificate, self.key, self.trust_root):
            if not path.is_file():
                raise ConfigurationError(
                    key, str(path), "the file is missing: `ledger-agent network init` makes it"
                )


def _context(purpose: ssl.Purpose, files: TlsFiles, key: str) -> ssl.SSLContext:
    files.check(key)
    context = ssl.create_default_context(purpose, cafile=str(files.trust_root))
    try:
        context.load_cert_chain(str(files.certificate), str(files.key))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(key, str(files.certificate), f"a certificate and its key: {exc}") from exc
    return context


def peer_server_context(files: TlsFiles) -> ssl.SSLContext:
    """The peer endpoint's: TLS 1.3, and a client certificate from the network's root required."""
    context = _context(ssl.Purpose.CLIENT_AUTH, files, "p2pTls")
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_client_context(files: TlsFiles) -> ssl.SSLContext:
    """For requests to peers: our certificate, theirs checked against the root and the SNI name."""
    context = _context(ssl.Purpose.SERVER_AUTH, files, "p2pTls")
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def management_server_context(files: TlsFiles) -> ssl.SSLContext:
    """The management endpoint's: server authentication only (operators log in with passwords)."""
    context = _context(ssl.Purpose.CLIENT_AUTH, files, "managementSsl")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    return context


def name_of_peer_certificate(pem: str) -> X500Name:
    """The legal name in a client certificate the TLS layer has already verified against the root."""
    return name_from_certificate(x509.load_pem_x509_certificate(pem.encode("ascii")))


__all__ = [
    "MANAGEMENT_CERT_FILE",
    "MANAGEMENT_KEY_FILE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "TRUST_ROOT_FILE",
    "TlsFiles",
    "issue_tls_certificate",
    "management_server_context",
    "name_of_peer_certificate",
    "peer_client_context",
    "peer_server_context",
    "peer_tls_name",
]

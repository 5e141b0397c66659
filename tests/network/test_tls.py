"""TLS between agents and on the management endpoint: the certificates `network init` makes, and real
handshakes over loopback against cheroot (agent.http_server) with the contexts the agent uses."""

from __future__ import annotations

import ssl
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from agent.clock import SystemClock
from agent.config import load_node_config
from agent.errors import ConfigurationError, PeerError, TransientTransportError
from agent.http_server import Listener
from agent.ledger.identity import X500Name
from agent.listeners import bind
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    IDENTITY_CERT_FILE,
    IDENTITY_KEY_FILE,
    NetworkLayout,
    default_node_names,
    init_network,
)
from agent.network.pki import read_certificate
from agent.network.tls import (
    TlsFiles,
    management_server_context,
    name_of_peer_certificate,
    peer_client_context,
    peer_server_context,
    peer_tls_name,
)
from agent.p2p.http import HttpTransport

A, B, C = default_node_names(3)


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> NetworkLayout:
    return init_network(tmp_path_factory.mktemp("tls") / "net", [A, B, C], DEFAULT_NOTARY, base_port=31000)


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> NetworkLayout:
    """Another network, with a root of its own, whose node is named like one of ours."""
    return init_network(tmp_path_factory.mktemp("tls") / "other", [A], DEFAULT_NOTARY, base_port=31100)


def files(network: NetworkLayout, name: X500Name) -> TlsFiles:
    return load_node_config(network.node(name).config).p2p_tls_files


def _who(environ: dict[str, Any], start: Callable[..., Any]) -> list[bytes]:
    """The name in the verified client certificate, as the peer endpoint reads it."""
    pem = environ.get("SSL_CLIENT_CERT")
    start("200 OK", [("Content-Type", "text/plain")])
    return [str(name_of_peer_certificate(pem)).encode() if pem else b"anonymous"]


@pytest.fixture
def serve() -> Iterator[Callable[[ssl.SSLContext, TlsFiles], str]]:
    """Serve _who with a TLS context on a loopback port, as `ledger-agent run` does; the address."""
    started: list[Listener] = []

    def start(context: ssl.SSLContext, own: TlsFiles) -> str:
        sockets = bind("p2pAddress", ("127.0.0.1", 0))
        listener = Listener(
            "test", sockets, _who, threads=2, tls=context, certificate=(str(own.certificate), str(own.key))
        )
        listener.start(lambda exc: None)
        started.append(listener)
        host, port = sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    yield start
    for listener in started:
        listener.stop(5)


def _get(client_files: TlsFiles, address: str, name: str) -> httpx.Response:
    with httpx.Client(verify=peer_client_context(client_files)) as http:
        return http.get(f"https://{address}/", extensions={"sni_hostname": name})


def test_network_init_gives_each_node_its_own_tls_and_management_certificates(network: NetworkLayout) -> None:
    for layout in network.nodes:
        folder = layout.folder / "certificates"
        tls = read_certificate(folder / "tls.pem")
        identity = read_certificate(folder / IDENTITY_CERT_FILE)
        management = read_certificate(folder / "management.pem")
        assert tls.subject == identity.subject == management.subject
        # Keys of their own: the identity key signs transactions, never a TLS handshake.
        keys = {c.public_key().public_bytes_raw() for c in (tls, identity, management)}  # type: ignore[union-attr]
        assert len(keys) == 3
        names = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [peer_tls_name(layout.name)]
        purposes = tls.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert set(purposes) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        hosts = management.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "127.0.0.1" in {str(ip) for ip in hosts.get_values_for_type(x509.IPAddress)}
        assert list(management.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
            ExtendedKeyUsageOID.SERVER_AUTH
        ]
        for key in ("tls.key", "management.key", IDENTITY_KEY_FILE):
            assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
        text = layout.config.read_text()
        assert "p2pTls = true" in text and "useSsl = true" in text


def test_tls_names_differ_by_party_and_are_dns_names() -> None:
    names = {peer_tls_name(n) for n in (A, B, C, DEFAULT_NOTARY)}
    assert len(names) == 4
    for name in names:
        label, _, domain = name.partition(".")
        assert len(label) <= 63 and label.isalnum() and domain == "p2p.ledger-agent.invalid"


def test_a_member_reaches_the_party_it_asked_for_and_is_named_by_its_certificate(
    network: NetworkLayout, serve: Callable[[ssl.SSLContext, TlsFiles], str]
) -> None:
    address = serve(peer_server_context(files(network, B)), files(network, B))
    reply = _get(files(network, A), address, peer_tls_name(B))
    assert (reply.status_code, reply.text) == (200, str(A))


def test_a_server_that_is_not_the_party_asked_for_fails_the_handshake_before_the_request(
    network: NetworkLayout, serve: Callable[[ssl.SSLContext, TlsFiles], str]
) -> None:
    # B's certificate at an address the map gives to C: a moved or hijacked address.
    address = serve(peer_server_context(files(network, B)), files(network, B))
    with pytest.raises(httpx.ConnectError, match="Hostname mismatch"):
        _get(files(network, A), address, peer_tls_name(C))
    # The transport names it and does not retry: another attempt would meet the same certificate.
    with (
        HttpTransport(
            tls=peer_client_context(files(network, A)), server_name=lambda _: peer_tls_name(C)
        ) as t,
        pytest.raises(PeerError, match="TLS refused") as refused,
    ):
        t.post(address, b"\x00", 5)
    assert not isinstance(refused.value, TransientTransportError)


def test_a_client_without_a_certificate_of_the_network_is_refused(
    network: NetworkLayout, stranger: NetworkLayout, serve: Callable[[ssl.SSLContext, TlsFiles], str]
) -> None:
    address = serve(peer_server_context(files(network, B)), files(network, B))
    ours = files(network, B).trust_root
    anonymous = ssl.create_default_context(cafile=str(ours))
    anonymous.check_hostname = False
    with pytest.raises(httpx.HTTPError, match=r"(?i)certificate"), httpx.Client(verify=anonymous) as http:
        http.get(f"https://{address}/", extensions={"sni_hostname": peer_tls_name(B)})
    # Another network's node, named as ours and trusting our root: its certificate is not our root's.
    theirs = files(stranger, A)
    posing = TlsFiles(theirs.certificate, theirs.key, ours)
    with pytest.raises(httpx.HTTPError, match=r"(?i)unknown ca|certificate"):
        _get(posing, address, peer_tls_name(B))


@pytest.mark.parametrize("kind", ["identity", "management"])
def test_certificates_of_other_purposes_are_no_peer_certificates(
    network: NetworkLayout, serve: Callable[[ssl.SSLContext, TlsFiles], str], kind: str
) -> None:
    """The identity certificate (our private role EKU) and the management one (server only) are
    issued by the same root, yet neither can open a peer connection."""
    address = serve(peer_server_context(files(network, B)), files(network, B))
    folder = network.node(A).folder / "certificates"
    certificate, key = {
        "identity": (IDENTITY_CERT_FILE, IDENTITY_KEY_FILE),
        "management": ("management.pem", "management.key"),
    }[kind]
    other = TlsFiles(folder / certificate, folder / key, files(network, A).trust_root)
    with pytest.raises(httpx.HTTPError, match=r"(?i)certificate"):
        _get(other, address, peer_tls_name(B))


def test_the_management_endpoint_is_checked_against_the_network_root(
    network: NetworkLayout, serve: Callable[[ssl.SSLContext, TlsFiles], str]
) -> None:
    config = load_node_config(network.node(A).config)
    address = serve(management_server_context(config.management_tls_files), config.management_tls_files)
    trusting = ssl.create_default_context(cafile=str(config.trust_root_file))
    reply = httpx.get(f"https://{address}/", verify=trusting)
    assert (reply.status_code, reply.text) == (200, "anonymous")  # passwords, not certificates, there
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://{address}/")  # the system's CAs do not know the network's root


def test_a_missing_certificate_is_a_configuration_error_naming_the_key_and_file(
    network: NetworkLayout, tmp_path: Path
) -> None:
    present = files(network, A)
    missing = TlsFiles(tmp_path / "tls.pem", present.key, present.trust_root)
    with pytest.raises(ConfigurationError, match=r"p2pTls.*tls\.pem.*missing"):
        peer_server_context(missing)
    with pytest.raises(ConfigurationError, match=r"managementSsl"):
        management_server_context(missing)


def test_tls_is_on_unless_node_conf_turns_it_off(network: NetworkLayout, tmp_path: Path) -> None:
    text = network.node(A).config.read_text()
    assert load_node_config(network.node(A).config).p2p_tls
    bare = tmp_path / "node.conf"
    kept = [line for line in text.splitlines() if "p2pTls" not in line]
    bare.write_text("\n".join(kept).replace("useSsl = true", "") + "\n")
    config = load_node_config(bare)
    assert config.p2p_tls and config.management_ssl  # the defaults
    bare.write_text("\n".join(kept) + "\np2pTls = false\n")
    assert not load_node_config(bare).p2p_tls
    bare.write_text("\n".join(kept) + '\np2pTls = "yes"\n')
    with pytest.raises(ConfigurationError, match=r"p2pTls.*true or false"):
        load_node_config(bare)


def test_tls_certificates_never_outlive_the_root(network: NetworkLayout) -> None:
    root = read_certificate(network.root_certificate)
    for layout in network.nodes:
        tls = read_certificate(layout.folder / "certificates" / "tls.pem")
        assert tls.not_valid_after_utc <= root.not_valid_after_utc
        assert tls.not_valid_before_utc >= root.not_valid_before_utc
    assert SystemClock().now() >= root.not_valid_before_utc

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyhocon import ConfigFactory

from agent.clock import ManualClock
from agent.errors import ConfigurationError, IdentityError
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.network.bootstrap import (
    DEFAULT_NOTARY,
    MAX_DEFAULT_NODES,
    NetworkLayout,
    default_node_names,
    folder_name,
    init_network,
)
from agent.network.network_map import SignedNetworkMap
from agent.network.pki import (
    NETWORK_MAP_ROLE,
    NODE_ROLE,
    NOTARY_ROLE,
    public_key_of,
    read_certificate,
    verify_certificate,
)

START = datetime(2026, 3, 1, tzinfo=UTC)


def _init(
    directory: Path,
    n: int = 2,
    base_port: int = 10000,
    database_url_for: Callable[[X500Name], str] | None = None,
) -> tuple[ManualClock, NetworkLayout]:
    clock = ManualClock(START)
    layout = init_network(
        directory,
        default_node_names(n),
        DEFAULT_NOTARY,
        base_port=base_port,
        clock=clock,
        database_url_for=database_url_for,
    )
    return clock, layout


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_layout_on_disk(tmp_path: Path) -> None:
    net = tmp_path / "net"
    _, layout = _init(net)
    assert layout.directory == net.resolve()
    assert layout.root_certificate == net.resolve() / "network-root" / "root-cert.pem"
    assert layout.network_map == net.resolve() / "network-map.json"
    for path in ["network-root/root-cert.pem", "network-map/network-map-cert.pem", "network-map.json"]:
        assert (net / path).is_file(), path
    assert [node.folder.name for node in layout.nodes] == ["Notary", "PartyA", "PartyB"]
    for node in layout.nodes:
        for file in ["identity-key.pem", "identity-cert.pem", "network-root.pem"]:
            assert (node.folder / "certificates" / file).is_file()
        assert node.config == node.folder / "node.conf"
        trust_root = (node.folder / "certificates" / "network-root.pem").read_bytes()
        assert trust_root == layout.root_certificate.read_bytes()


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        _, layout = _init(tmp_path / "net")
    finally:
        os.umask(old)
    keys = [
        layout.directory / "network-root" / "root-key.pem",
        layout.directory / "network-map" / "network-map-key.pem",
        *(node.folder / "certificates" / "identity-key.pem" for node in layout.nodes),
    ]
    assert len(keys) == 5
    for key in keys:
        assert _mode(key) == 0o600, key


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_every_file_is_owner_only_and_every_directory_it_made_0700(tmp_path: Path, umask: int) -> None:
    """node.conf (password hashes), keys, certificates, the map: 0600; the folders it made: 0700."""
    existing = tmp_path / "existing"
    existing.mkdir()
    os.chmod(existing, 0o755)
    old = os.umask(umask)
    try:
        _, layout = _init(existing / "net")
    finally:
        os.umask(old)
    files = [p for p in layout.directory.rglob("*") if p.is_file()]
    directories = [layout.directory, *(p for p in layout.directory.rglob("*") if p.is_dir())]
    assert {p.name for p in files} >= {
        "node.conf",
        "identity-key.pem",
        "identity-cert.pem",
        "network-root.pem",
        "root-cert.pem",
        "network-map.json",
        "management-password",
    }
    assert {oct(_mode(p)) for p in files} == {oct(0o600)}, [(p, oct(_mode(p))) for p in files]
    assert {oct(_mode(p)) for p in directories} == {oct(0o700)}, [(p, oct(_mode(p))) for p in directories]
    assert _mode(existing) == 0o755  # a directory that was there before keeps its mode


def test_ports_notary_first_two_each(tmp_path: Path) -> None:
    _, layout = _init(tmp_path / "net", n=3, base_port=20000)
    assert [(n.p2p_address, n.management_address) for n in layout.nodes] == [
        ("127.0.0.1:20000", "127.0.0.1:20001"),
        ("127.0.0.1:20002", "127.0.0.1:20003"),
        ("127.0.0.1:20004", "127.0.0.1:20005"),
        ("127.0.0.1:20006", "127.0.0.1:20007"),
    ]
    assert [n.role for n in layout.nodes] == [NOTARY_ROLE, NODE_ROLE, NODE_ROLE, NODE_ROLE]


def test_node_conf_parses_with_pyhocon(tmp_path: Path) -> None:
    _, layout = _init(tmp_path / "net")
    notary, party_a = layout.nodes[0], layout.nodes[1]
    conf = ConfigFactory.parse_file(str(party_a.config))
    assert conf.get_string("myLegalName") == "O=PartyA, L=London, C=GB"
    assert conf.get_string("p2pAddress") == "127.0.0.1:10002"
    assert conf.get_string("managementAddress") == "127.0.0.1:10003"
    assert conf.get_string("dataSourceProperties.dataSource.url") == f"sqlite:///{party_a.folder}/node.db"
    assert conf.get_string("dataSourceProperties.dataSource.url").startswith("sqlite:////")
    assert conf.get_string("certificatesDirectory") == "certificates"
    assert conf.get_string("networkMapFile") == "../network-map.json"
    assert "notary" not in conf
    assert (party_a.folder / conf.get_string("networkMapFile")).resolve() == layout.network_map

    notary_conf = ConfigFactory.parse_file(str(notary.config))
    assert notary_conf.get_string("myLegalName") == "O=Notary, L=Zurich, C=CH"
    assert notary_conf.get_bool("notary.validating") is False


def test_database_url_is_pluggable(tmp_path: Path) -> None:
    def url(name: X500Name) -> str:
        return f'postgresql://agent@db/{name.organisation.lower()}?note="quoted"'

    _, layout = _init(tmp_path / "net", database_url_for=url)
    conf = ConfigFactory.parse_file(str(layout.nodes[1].config))
    assert (
        conf.get_string("dataSourceProperties.dataSource.url") == 'postgresql://agent@db/partya?note="quoted"'
    )


def test_network_map_lists_everyone_and_verifies(tmp_path: Path) -> None:
    clock, layout = _init(tmp_path / "net", n=3)
    root = read_certificate(layout.root_certificate)
    network_map = SignedNetworkMap.load(layout.network_map, root, clock)
    assert [info.name for info in network_map.nodes] == [DEFAULT_NOTARY, *default_node_names(3)]
    assert [info.name for info in network_map.notaries] == [DEFAULT_NOTARY]
    assert network_map.node(default_node_names(1)[0]).addresses == ("127.0.0.1:10002",)
    signer = read_certificate(layout.directory / "network-map" / "network-map-cert.pem")
    verify_certificate(signer, root, clock, expected_role=NETWORK_MAP_ROLE)


def test_each_node_holds_a_working_identity(tmp_path: Path) -> None:
    clock, layout = _init(tmp_path / "net")
    for node in layout.nodes:
        certificates = node.folder / "certificates"
        trust_root = read_certificate(certificates / "network-root.pem")
        cert = read_certificate(certificates / "identity-cert.pem")
        party = verify_certificate(cert, trust_root, clock, expected_role=node.role)
        assert party.name == node.name
        key = KeyPair.read_pem(certificates / "identity-key.pem")
        assert key.public == public_key_of(cert)
        assert party.owning_key.verify(key.sign(b"hello"), b"hello")


def test_overwrite_is_refused(tmp_path: Path) -> None:
    net = tmp_path / "net"
    _, layout = _init(net)
    before = layout.root_certificate.read_bytes()
    with pytest.raises(FileExistsError, match=r"refusing to overwrite .*network-root"):
        _init(net)
    assert layout.root_certificate.read_bytes() == before


def test_overwriting_a_node_folder_is_refused(tmp_path: Path) -> None:
    net = tmp_path / "net"
    (net / "PartyB").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"refusing to overwrite .*PartyB"):
        _init(net)
    assert not (net / "network-root").exists()


def test_existing_empty_directory_is_fine(tmp_path: Path) -> None:
    _, layout = _init(tmp_path)
    assert layout.network_map.is_file()


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    names = default_node_names(2)
    with pytest.raises(IdentityError, match="duplicate node name O=PartyA, L=London, C=GB"):
        init_network(tmp_path / "net", [*names, names[0]], DEFAULT_NOTARY)
    assert not (tmp_path / "net").exists()


def test_notary_must_not_be_a_node(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="notary O=Notary, L=Zurich, C=CH is also listed as a node"):
        init_network(tmp_path / "net", [*default_node_names(1), DEFAULT_NOTARY], DEFAULT_NOTARY)


def test_names_sharing_a_folder_are_refused(tmp_path: Path) -> None:
    names = [X500Name.parse("O=Party A, L=London, C=GB"), X500Name.parse("O=PartyA, L=Paris, C=FR")]
    with pytest.raises(IdentityError, match="would share the folder 'PartyA'"):
        init_network(tmp_path / "net", names, DEFAULT_NOTARY)
    with pytest.raises(IdentityError, match="which the network itself needs"):
        init_network(tmp_path / "net", [X500Name.parse("O=network-map, L=Paris, C=FR")], DEFAULT_NOTARY)


def test_folder_names_are_safe() -> None:
    assert folder_name(X500Name.parse("O=Bank of Zürich (Retail), L=Zurich, C=CH")) == "BankofZrichRetail"
    assert folder_name(X500Name.parse("O=../etc, L=Paris, C=FR")) == "etc"
    unicode_only = X500Name.parse("O=東京銀行, L=Tokyo, C=JP")
    assert folder_name(unicode_only) == f"node-{unicode_only.peer_id[:12]}"


def test_ports_must_fit(tmp_path: Path) -> None:
    _init(tmp_path / "fits", n=2, base_port=65530)  # three members, six ports: 65530-65535
    with pytest.raises(ConfigurationError, match="base_port: 65531"):
        _init(tmp_path / "net", n=2, base_port=65531)
    assert not (tmp_path / "net" / "network-root").exists()


def test_default_node_names() -> None:
    names = default_node_names(MAX_DEFAULT_NODES)
    assert len(names) == 26
    assert [str(n) for n in names[:3]] == [
        "O=PartyA, L=London, C=GB",
        "O=PartyB, L=New York, C=US",
        "O=PartyC, L=Paris, C=FR",
    ]
    assert names[-1].organisation == "PartyZ"
    assert len({n.organisation for n in names}) == 26
    assert len({n.locality for n in names}) == 26
    assert DEFAULT_NOTARY not in names
    assert default_node_names(0) == []
    with pytest.raises(ConfigurationError, match="nodes"):
        default_node_names(27)
    with pytest.raises(ConfigurationError, match="nodes"):
        default_node_names(-1)


def test_full_default_network(tmp_path: Path) -> None:
    clock, layout = _init(tmp_path / "net", n=MAX_DEFAULT_NODES)
    assert len(layout.nodes) == 27
    assert len({node.folder for node in layout.nodes}) == 27
    root = read_certificate(layout.root_certificate)
    assert len(SignedNetworkMap.load(layout.network_map, root, clock).nodes) == 27
    assert layout.node(default_node_names(26)[25]).p2p_address == "127.0.0.1:10052"

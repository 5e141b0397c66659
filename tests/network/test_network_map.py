from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from agent.clock import ManualClock
from agent.errors import IdentityError
from agent.ledger.identity import X500Name
from agent.ledger.keys import KeyPair
from agent.network.network_map import (
    NetworkMap,
    NetworkParameters,
    NodeInfo,
    SignedNetworkMap,
    canonical_json,
)
from agent.network.pki import (
    NETWORK_MAP_ROLE,
    NODE_ROLE,
    NOTARY_ROLE,
    certificate_to_pem,
    create_root_ca,
    issue_certificate,
)

START = datetime(2026, 3, 1, tzinfo=UTC)
ALICE = X500Name.parse("O=Alice, L=London, C=GB")
BOB = X500Name.parse("O=Bob, L=New York, C=US")
CAROL = X500Name.parse("O=Carol, L=Paris, C=FR")
NOTARY = X500Name.parse("O=Notary, L=Zurich, C=CH")
OPERATOR = X500Name.parse("CN=Network Map, O=Operator, L=London, C=GB")


@dataclass
class Net:
    clock: ManualClock
    root_key: KeyPair
    root: x509.Certificate
    map_key: KeyPair
    map_cert: x509.Certificate
    keys: dict[X500Name, KeyPair]
    network_map: NetworkMap

    def issue(self, name: X500Name, key: KeyPair, role: str, days: int = 365) -> x509.Certificate:
        return issue_certificate(self.root_key, self.root, name, key.public, role, self.clock, days)


def _network(node_days: int = 365) -> Net:
    clock = ManualClock(START)
    root_key, root = create_root_ca(X500Name.parse("CN=Root, O=Operator, L=London, C=GB"), clock)
    map_key = KeyPair.generate()
    map_cert = issue_certificate(root_key, root, OPERATOR, map_key.public, NETWORK_MAP_ROLE, clock)
    keys: dict[X500Name, KeyPair] = {}
    nodes = []
    for port, (name, role) in enumerate(
        [(NOTARY, NOTARY_ROLE), (ALICE, NODE_ROLE), (BOB, NODE_ROLE), (CAROL, NODE_ROLE)]
    ):
        keys[name] = KeyPair.generate()
        cert = issue_certificate(root_key, root, name, keys[name].public, role, clock, node_days)
        nodes.append(NodeInfo(name, (f"127.0.0.1:{10000 + 2 * port}",), cert, role))
    network_map = NetworkMap(NetworkParameters(), tuple(nodes), serial=7)
    return Net(clock, root_key, root, map_key, map_cert, keys, network_map)


def _write(net: Net, path: Path) -> Path:
    SignedNetworkMap.sign(net.network_map, net.map_key, net.map_cert).write(path)
    return path


def test_signed_map_round_trips(tmp_path: Path) -> None:
    net = _network()
    path = _write(net, tmp_path / "network-map.json")
    loaded = SignedNetworkMap.load(path, net.root, net.clock)
    assert loaded == net.network_map
    assert loaded.node(ALICE).party.owning_key == net.keys[ALICE].public
    document = json.loads(path.read_text())
    assert set(document) == {"networkMap", "signature", "signerCertificate"}
    assert set(document["networkMap"]) == {"networkParameters", "nodes", "serial"}
    assert document["networkMap"]["networkParameters"] == {
        "maxMessageSize": 10 * 1024 * 1024,
        "minimumPlatformVersion": 1,
        "epoch": 1,
    }
    assert document["networkMap"]["nodes"][1]["name"] == "O=Alice, L=London, C=GB"


def test_signature_covers_content_not_layout(tmp_path: Path) -> None:
    net = _network()
    path = _write(net, tmp_path / "network-map.json")
    document = json.loads(path.read_text())
    # Another writer: different key order and indentation, same content.
    path.write_text(json.dumps(dict(reversed(list(document.items()))), indent=7))
    assert SignedNetworkMap.load(path, net.root, net.clock) == net.network_map


def test_lookups() -> None:
    network_map = _network().network_map
    assert network_map.node("O=Bob, L=New York, C=US").name == BOB
    assert [info.name for info in network_map.notaries] == [NOTARY]
    assert [info.name for info in network_map.peers_of(ALICE)] == [BOB, CAROL]
    assert network_map.by_peer_id(CAROL.peer_id).name == CAROL
    stranger = X500Name.parse("O=Mallory, L=Oslo, C=NO")
    with pytest.raises(IdentityError, match="O=Mallory, L=Oslo, C=NO is not in the network map"):
        network_map.node(stranger)
    with pytest.raises(IdentityError, match="not in the network map"):
        network_map.peers_of(stranger)
    with pytest.raises(IdentityError, match=f"no party with peer id {stranger.peer_id}"):
        network_map.by_peer_id(stranger.peer_id)


def test_duplicate_entries_are_refused() -> None:
    network_map = _network().network_map
    with pytest.raises(IdentityError, match="lists O=Notary, L=Zurich, C=CH more than once"):
        NetworkMap(network_map.parameters, (*network_map.nodes, network_map.nodes[0]), 1)


def test_entries_cannot_have_the_network_map_role() -> None:
    net = _network()
    with pytest.raises(IdentityError, match="role 'network-map' is not one of"):
        NodeInfo(OPERATOR, (), net.map_cert, NETWORK_MAP_ROLE)


def _set_name(doc: dict[str, Any]) -> None:
    doc["networkMap"]["nodes"][1]["name"] = "O=Mallory, L=London, C=GB"


def _set_address(doc: dict[str, Any]) -> None:
    doc["networkMap"]["nodes"][1]["addresses"] = ["10.6.6.6:10002"]


def _set_role(doc: dict[str, Any]) -> None:
    doc["networkMap"]["nodes"][1]["role"] = NOTARY_ROLE


def _set_max_message_size(doc: dict[str, Any]) -> None:
    doc["networkMap"]["networkParameters"]["maxMessageSize"] += 1


def _set_epoch(doc: dict[str, Any]) -> None:
    doc["networkMap"]["networkParameters"]["epoch"] = 2


def _set_serial(doc: dict[str, Any]) -> None:
    doc["networkMap"]["serial"] = 8


def _drop_node(doc: dict[str, Any]) -> None:
    del doc["networkMap"]["nodes"][2]


def _swap_certificates(doc: dict[str, Any]) -> None:
    nodes = doc["networkMap"]["nodes"]
    nodes[1]["certificate"], nodes[2]["certificate"] = nodes[2]["certificate"], nodes[1]["certificate"]


def _flip_signature_bit(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["signature"]))
    raw[0] ^= 1
    doc["signature"] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "tamper",
    [
        _set_name,
        _set_address,
        _set_role,
        _set_max_message_size,
        _set_epoch,
        _set_serial,
        _drop_node,
        _swap_certificates,
        _flip_signature_bit,
    ],
)
def test_tampered_map_is_refused(tmp_path: Path, tamper: Callable[[dict[str, Any]], None]) -> None:
    net = _network()
    path = _write(net, tmp_path / "network-map.json")
    document = json.loads(path.read_text())
    tamper(document)
    path.write_text(json.dumps(document))
    with pytest.raises(
        IdentityError, match=r"network-map\.json: network map signature by .* does not verify"
    ):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_every_byte_of_the_map_is_covered(tmp_path: Path) -> None:
    net = _network()
    path = _write(net, tmp_path / "network-map.json")
    document = json.loads(path.read_text())
    # Change the unicode text of one name by a single character the parser would still accept.
    document["networkMap"]["nodes"][3]["name"] = "O=Carol, L=Pariz, C=FR"
    path.write_text(json.dumps(document, ensure_ascii=False))
    with pytest.raises(IdentityError, match="does not verify"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_signer_with_a_node_role_is_refused(tmp_path: Path) -> None:
    net = _network()
    alice_cert = net.network_map.node(ALICE).certificate
    with pytest.raises(IdentityError, match="signer certificate has role 'node'"):
        SignedNetworkMap.sign(net.network_map, net.keys[ALICE], alice_cert)
    # Built by hand, as a node that wanted to publish its own map would.
    good = SignedNetworkMap.sign(net.network_map, net.map_key, net.map_cert)
    forged = SignedNetworkMap(good.payload, net.keys[ALICE].sign(good.payload), alice_cert)
    path = tmp_path / "network-map.json"
    forged.write(path)
    with pytest.raises(IdentityError, match=r"O=Alice.*role is 'node', expected 'network-map'"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_signer_from_another_root_is_refused(tmp_path: Path) -> None:
    net = _network()
    other_key, other_root = create_root_ca(X500Name.parse("CN=Root, O=Operator, L=London, C=GB"), net.clock)
    key = KeyPair.generate()
    cert = issue_certificate(other_key, other_root, OPERATOR, key.public, NETWORK_MAP_ROLE, net.clock)
    path = tmp_path / "network-map.json"
    SignedNetworkMap.sign(net.network_map, key, cert).write(path)
    with pytest.raises(IdentityError, match="signature does not verify against the trust root"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_signing_key_must_match_certificate() -> None:
    net = _network()
    with pytest.raises(IdentityError, match="does not match the signer certificate"):
        SignedNetworkMap.sign(net.network_map, KeyPair.generate(), net.map_cert)


def test_entry_certificate_must_name_the_entry(tmp_path: Path) -> None:
    net = _network()
    # The operator itself signs a map whose Bob entry carries Alice's certificate.
    nodes = list(net.network_map.nodes)
    nodes[2] = NodeInfo(BOB, nodes[2].addresses, nodes[1].certificate, NODE_ROLE)
    net.network_map = NetworkMap(net.network_map.parameters, tuple(nodes), 8)
    path = _write(net, tmp_path / "network-map.json")
    with pytest.raises(IdentityError, match=r"entry O=Bob.*issued to O=Alice"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_entry_role_must_match_certificate_role(tmp_path: Path) -> None:
    net = _network()
    nodes = list(net.network_map.nodes)
    nodes[1] = NodeInfo(ALICE, nodes[1].addresses, nodes[1].certificate, NOTARY_ROLE)
    net.network_map = NetworkMap(net.network_map.parameters, tuple(nodes), 8)
    path = _write(net, tmp_path / "network-map.json")
    with pytest.raises(IdentityError, match=r"O=Alice.*role is 'node', expected 'notary'"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_entry_from_another_root_is_refused(tmp_path: Path) -> None:
    net = _network()
    other_key, other_root = create_root_ca(X500Name.parse("CN=Root, O=Operator, L=London, C=GB"), net.clock)
    rogue = issue_certificate(other_key, other_root, CAROL, KeyPair.generate().public, NODE_ROLE, net.clock)
    nodes = list(net.network_map.nodes)
    nodes[3] = NodeInfo(CAROL, nodes[3].addresses, rogue, NODE_ROLE)
    net.network_map = NetworkMap(net.network_map.parameters, tuple(nodes), 8)
    path = _write(net, tmp_path / "network-map.json")
    with pytest.raises(IdentityError, match=r"O=Carol.*signature does not verify"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_expired_entry_makes_the_map_unloadable(tmp_path: Path) -> None:
    net = _network(node_days=30)
    path = _write(net, tmp_path / "network-map.json")
    SignedNetworkMap.load(path, net.root, net.clock)
    net.clock.advance(timedelta(days=31))
    with pytest.raises(IdentityError, match="has expired"):
        SignedNetworkMap.load(path, net.root, net.clock)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON network map"),
        ("[]", "not a JSON object"),
        ('{"networkMap": {}, "signature": "AA=="}', "missing field 'signerCertificate'"),
        ('{"networkMap": {}, "signature": "***", "signerCertificate": ""}', "signature is not base64"),
    ],
)
def test_malformed_file_is_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "network-map.json"
    path.write_text(content)
    with pytest.raises(IdentityError, match=message):
        SignedNetworkMap.load(path, _network().root, ManualClock(START))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="network map file not found"):
        SignedNetworkMap.load(tmp_path / "absent.json", _network().root, ManualClock(START))


def test_well_signed_but_malformed_map_is_refused(tmp_path: Path) -> None:
    # The signature only vouches for the bytes; the decoder still checks their shape.
    net = _network()
    payload = canonical_json({"networkParameters": {}, "nodes": [], "serial": 1})
    signed = SignedNetworkMap(payload, net.map_key.sign(payload), net.map_cert)
    path = tmp_path / "network-map.json"
    signed.write(path)
    with pytest.raises(IdentityError, match="missing field 'maxMessageSize'"):
        SignedNetworkMap.load(path, net.root, net.clock)


def test_parameters_are_validated() -> None:
    with pytest.raises(IdentityError, match="epoch must be a positive integer"):
        NetworkParameters(epoch=0)
    with pytest.raises(IdentityError, match="is not an integer: True"):
        NetworkMap.from_json(
            {
                "networkParameters": {"maxMessageSize": 1, "minimumPlatformVersion": 1, "epoch": 1},
                "nodes": [],
                "serial": True,
            }
        )


def test_certificate_pem_in_entries_round_trips() -> None:
    net = _network()
    data = net.network_map.to_json()
    assert data["nodes"][0]["certificate"] == certificate_to_pem(net.network_map.nodes[0].certificate)
    assert NetworkMap.from_json(data) == net.network_map

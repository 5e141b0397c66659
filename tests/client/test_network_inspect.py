"""`ledger-agent network inspect`: a network folder as `network init` leaves it, then with each fault
an operator meets (a map edited after signing, a certificate missing, expired, or another node's, a
node.conf that does not load, a folder not on the map), each named with its file."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from agent.client.cli import main
from agent.client.network_inspect import problems
from agent.clock import ManualClock, SystemClock
from agent.network.bootstrap import DEFAULT_NOTARY, default_node_names, init_network
from agent.network.inspect import inspect_network

A, B = default_node_names(2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("inspect") / "net"
    init_network(directory, [A, B], DEFAULT_NOTARY, base_port=20000)
    return directory


@pytest.fixture
def net(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the network each test may break."""
    return Path(shutil.copytree(pristine, tmp_path / "net"))


def inspect(net: Path, capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str]:
    code = main(["network", "inspect", "--dir", str(net), *more])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_sound_network_one_line_per_node(net: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = inspect(net, capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith(f"network map {net / 'network-map.json'}: serial 1, signed by CN=Network Map")
    assert lines[0].endswith("signature verified")
    assert lines[1].startswith(f"root CA     {net / 'network-root' / 'root-cert.pem'}: until 20")
    nodes = lines[2:5]
    assert [line.split()[0] for line in nodes] == ["notary", "node", "node"]
    party_a = next(line for line in nodes if str(A) in line)
    assert "p2p 127.0.0.1:20002" in party_a and "management https://127.0.0.1:20003" in party_a
    assert (
        "identity until 20" in party_a and "tls until 20" in party_a and "management-tls until 20" in party_a
    )
    assert f"config {net / 'PartyA' / 'node.conf'}" in party_a and party_a.endswith("OK")
    assert lines[5] == "2 node(s), 1 notary(ies); no problems"


def test_json_has_what_the_lines_show(net: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = inspect(net, capsys, "--json")
    assert code == 0
    found = json.loads(out)
    assert found["map"]["serial"] == 1 and found["map"]["signature_verified"] is True
    assert [(n["name"], n["role"]) for n in found["nodes"]] == [
        (str(DEFAULT_NOTARY), "notary"),
        (str(A), "node"),
        (str(B), "node"),
    ]
    node = found["nodes"][1]
    assert node["addresses"] == ["127.0.0.1:20002"] and node["config"] == str(net / "PartyA" / "node.conf")
    assert node["tls"]["file"] == str(net / "PartyA" / "certificates" / "tls.pem")
    assert node["identity"]["subject"] and node["tls"]["valid_until"] and node["problems"] == []


def test_a_map_changed_after_signing_is_named_with_its_members_still_listed(
    net: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    map_file = net / "network-map.json"
    map_file.write_text(map_file.read_text().replace("127.0.0.1:20002", "127.0.0.1:20099"))
    code, out = inspect(net, capsys)
    assert code == 1
    assert "SIGNATURE NOT VERIFIED" in out.splitlines()[0]
    assert f"{map_file}: the signature by CN=Network Map" in out and "does not verify" in out
    # PartyA's node.conf still says 20002: named too
    assert f"p2pAddress 127.0.0.1:20002 is not the map's address for {A} (127.0.0.1:20099)" in out
    assert len([line for line in out.splitlines() if line.startswith("  node")]) == 2


def test_each_faulty_file_is_named(net: Path, capsys: pytest.CaptureFixture[str]) -> None:
    certificates_a, certificates_b = net / "PartyA" / "certificates", net / "PartyB" / "certificates"
    (certificates_a / "tls.pem").unlink()
    shutil.copy(certificates_a / "management.pem", certificates_b / "management.pem")
    (net / "Stray").mkdir()
    (net / "Stray" / "node.conf").write_text('myLegalName = "O=Stray, L=Oslo, C=NO"\n')
    code, out = inspect(net, capsys)
    assert code == 1
    assert f"{certificates_a / 'tls.pem'}: certificate file not found" in out
    assert f"{certificates_b / 'management.pem'}: it is issued to {A}, not to {B}" in out
    assert f"{net / 'Stray' / 'node.conf'}: p2pAddress" in out  # the key it lacks
    party_a = next(line for line in out.splitlines() if str(A) in line and line.startswith("  node"))
    assert "tls MISSING" in party_a and party_a.endswith("1 PROBLEM(S)")
    assert "4 problem(s)" not in out and "3 problem(s):" in out


def test_a_node_folder_not_on_the_map_and_another_root(
    net: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    init_network(other, default_node_names(3)[2:], DEFAULT_NOTARY, base_port=21000)
    shutil.copytree(other / "PartyC", net / "PartyC")
    shutil.copy(
        other / "network-root" / "root-cert.pem", net / "PartyB" / "certificates" / "network-root.pem"
    )
    code, out = inspect(net, capsys)
    assert code == 1
    assert f"{net / 'PartyC' / 'node.conf'}: O=PartyC, L=Paris, C=FR is not on the network map" in out
    assert f"{net / 'PartyB' / 'certificates' / 'network-root.pem'} is not the network's root CA" in out


def test_expired_and_expiring_certificates(pristine: Path) -> None:
    now = SystemClock().now()
    expired = inspect_network(pristine, ManualClock(now + timedelta(days=4000)))
    found = problems(expired)
    assert any("root CA certificate has expired" in p for p in found)
    assert any(f"{A}" in p and "has expired" in p for p in found)  # the map's identity certificate
    assert any(p.endswith(")") and "tls.pem: it has expired" in p for p in found)
    until = expired["nodes"][1]["tls"]["valid_until"]
    assert until is not None
    soon = inspect_network(pristine, ManualClock(datetime.fromisoformat(until) - timedelta(days=10)))
    assert problems(soon) == []
    tls = pristine / "PartyA" / "certificates" / "tls.pem"
    assert f"{tls} expires in 10 days" in soon["nodes"][1]["warnings"]


def test_without_the_root_nothing_is_called_verified(net: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (net / "network-root" / "root-cert.pem").unlink()
    code, out = inspect(net, capsys)
    assert code == 1
    assert "SIGNATURE NOT VERIFIED" in out
    assert "the signature is not checked: no usable root CA certificate" in out
    assert f"{net / 'network-root' / 'root-cert.pem'}: certificate file not found" in out


def test_not_a_network_folder_is_one_error_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = inspect(tmp_path / "nowhere", capsys)
    assert code == 2
    assert (
        out == f"ledger-agent: error: {tmp_path / 'nowhere'} does not exist: not a network folder "
        "(`ledger-agent network init` makes one)\n"
    )
    code, out = inspect(tmp_path, capsys)
    assert code == 2 and "holds no network-map.json" in out


def test_an_ipv6_management_address_in_brackets(net: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = net / "PartyB" / "node.conf"
    conf.write_text(
        conf.read_text().replace('managementAddress = "127.0.0.1:20005"', 'managementAddress = "[::1]:20005"')
    )
    code, out = inspect(net, capsys)
    assert code == 0, out
    assert "management https://[::1]:20005" in out

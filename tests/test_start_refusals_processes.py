"""`ledger-agent run` refuses a bad start the way README promises (issue 16, item 9): one line on stderr
naming the key (or file), the value and why, and exit code 2; no traceback, nothing logged before it.

Each case is a real `ledger-agent run` process over a node folder `network init` made, with one thing
wrong; it ends by itself (subprocess.run waits for it, and kills it by its PID if it outlives the
deadline). An address in use is held by a socket of the test's own, closed afterwards.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.client.launcher import free_port_range
from agent.client.nodeconf import DATA_SOURCE_URL
from agent.network.bootstrap import DEFAULT_NOTARY, NodeLayout, default_node_names, init_network
from agent.network.tls import MANAGEMENT_CERT_FILE, TLS_CERT_FILE

DEADLINE_S = 120.0  # a guard against a start that hangs; each case ends in about a second
EXIT_BAD_START = 2


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> NodeLayout:
    layout = init_network(
        tmp_path_factory.mktemp("refusals") / "net",
        default_node_names(1),
        DEFAULT_NOTARY,
        base_port=free_port_range(4),
    )
    return layout.nodes[1]


def run(config: Path) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=DEADLINE_S,
        check=False,
    )
    return done.returncode, done.stderr.splitlines()


def with_lines(node: NodeLayout, name: str, *lines: str) -> Path:
    """A copy of the node's node.conf (beside it, so relative paths hold) with lines added at the end."""
    config = node.folder / name
    config.write_text(node.config.read_text() + "".join(line + "\n" for line in lines))
    return config


def assert_one_line(code: int, stderr: list[str], *words: str) -> None:
    assert code == EXIT_BAD_START, (code, stderr[-5:])
    assert len(stderr) == 1, stderr[-40:]
    line = stderr[0]
    assert line.startswith("ledger-agent: error: "), line
    for word in words:
        assert word in line, (word, line)


@pytest.fixture
def held() -> Iterator[Callable[[str], socket.socket]]:
    """Listen on an address ourselves, as another process would."""
    sockets: list[socket.socket] = []

    def hold(address: str) -> socket.socket:
        host, port = address.rsplit(":", 1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sockets.append(sock)
        sock.bind((host, int(port)))
        sock.listen()
        return sock

    yield hold
    for sock in sockets:
        sock.close()


@pytest.mark.parametrize("key", ["p2pAddress", "managementAddress"])
def test_a_host_that_does_not_resolve_is_named_with_its_key(node: NodeLayout, key: str) -> None:
    address = "no-such-host.invalid:10999"  # RFC 6761: .invalid never resolves
    code, stderr = run(with_lines(node, f"unresolvable-{key}.conf", f'{key} = "{address}"'))
    assert_one_line(code, stderr, f"{key}: '{address}'", "does not resolve")


@pytest.mark.parametrize("key", ["p2pAddress", "managementAddress"])
def test_an_address_in_use_is_named_with_its_key(
    node: NodeLayout, key: str, held: Callable[[str], socket.socket]
) -> None:
    address = node.p2p_address if key == "p2pAddress" else node.management_address
    held(address)
    code, stderr = run(node.config)
    assert_one_line(code, stderr, f"{key}: '{address}'", "address already in use")


def test_a_node_conf_that_is_not_utf8_text_is_one_line(node: NodeLayout) -> None:
    config = node.folder / "binary.conf"
    config.write_bytes(b"\xff\xfe" + node.config.read_bytes())
    code, stderr = run(config)
    assert_one_line(code, stderr, "--config", "a readable UTF-8 node.conf")


def test_a_node_conf_that_is_a_folder_is_one_line(node: NodeLayout) -> None:
    folder = node.folder / "folder.conf"
    folder.mkdir()
    code, stderr = run(folder)
    assert_one_line(code, stderr, "--config", "Is a directory")


def test_a_missing_include_names_node_conf_not_a_missing_config(node: NodeLayout) -> None:
    code, stderr = run(with_lines(node, "include.conf", 'include required("absent.conf")'))
    assert_one_line(code, stderr, "node.conf", "absent.conf")


def test_a_network_map_file_that_is_a_folder_names_the_key(node: NodeLayout) -> None:
    (node.folder / "map-folder").mkdir()
    code, stderr = run(with_lines(node, "map-folder.conf", 'networkMapFile = "map-folder"'))
    assert_one_line(code, stderr, "networkMapFile", "map-folder")


def test_a_network_map_nested_too_deep_is_one_line(node: NodeLayout) -> None:
    (node.folder / "deep-map.json").write_text("[" * 100_000)
    code, stderr = run(with_lines(node, "deep-map.conf", 'networkMapFile = "deep-map.json"'))
    assert_one_line(code, stderr, "deep-map.json", "not a JSON network map")


@pytest.mark.parametrize("period", ["99999999999999d", "1" * 400 + "s"])
def test_a_duration_no_timedelta_holds_is_one_line(node: NodeLayout, period: str) -> None:
    config = with_lines(node, "long-period.conf", f'transactionRecoveryPeriod = "{period}"')
    code, stderr = run(config)
    assert_one_line(code, stderr, "transactionRecoveryPeriod", "at most")
    assert len(stderr[0]) < 1000


@pytest.mark.parametrize(
    ("key", "missing", "turned_on"),
    [
        ("p2pTls", TLS_CERT_FILE, "p2pTls = true"),
        ("managementSsl", MANAGEMENT_CERT_FILE, "managementSsl { useSsl = true }"),
    ],
)
def test_a_tls_certificate_that_is_missing_is_named_with_its_key_before_the_store_is_opened(
    node: NodeLayout, key: str, missing: str, turned_on: str
) -> None:
    """A copy of the node folder (beside it: the network map's relative path holds) with its own store
    and one certificate removed: one line naming the key and the file, and the store never opened."""
    folder = node.folder.parent / f"no-{missing}"
    shutil.copytree(node.folder, folder, ignore=shutil.ignore_patterns("*.db*", "logs"))
    (folder / "certificates" / missing).unlink()
    store = folder / "node.db"
    config = folder / "node.conf"
    config.write_text(node.config.read_text() + f'{turned_on}\n{DATA_SOURCE_URL} = "sqlite:///{store}"\n')
    code, stderr = run(config)
    assert_one_line(code, stderr, f"{key}: '{folder / 'certificates' / missing}'", "missing")
    assert not store.exists()  # refused before the store was opened, so before anything started

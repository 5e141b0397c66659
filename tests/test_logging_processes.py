"""A real agent process: the files it creates are its owner's only, and its log is as node.conf says.

One notary alone, started under umask 022 (a shell's usual): its database, journals and log must be
0600 all the same; files left open to others before it started are named in its log. Random bytes a
member sends to its peer endpoint (over mutual TLS) are refused; the log keeps the first few
refusals and, when the agent stops, says how many more it did not write. Every line is JSON.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from agent.client.launcher import AgentProcess, ManagementClient, free_port_range, read_password
from agent.logs.refusals import DEFAULT_LIMIT
from agent.network.bootstrap import DEFAULT_NOTARY, OPERATOR_USER, init_network
from tests.endpoints import member_transport

SENT = 40


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_running_agent_keeps_its_files_private_and_its_refusals_short(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        layout = init_network(tmp_path / "net", [], DEFAULT_NOTARY, base_port=free_port_range(2))
        (notary,) = layout.nodes
        with notary.config.open("a") as conf:
            conf.write(
                'logging { format = json, file = "logs/agent.log", maxFileSize = 1MB, maxFiles = 2 }\n'
            )
        # Left open to others before the start: the operator's node.conf is warned about, the
        # agent's own database (an empty file is an empty SQLite database) made private.
        os.chmod(notary.config, 0o640)
        (notary.folder / "node.db").touch(mode=0o644)
        client = ManagementClient.for_node(notary.config, OPERATOR_USER, read_password(notary.folder))
        process = AgentProcess(notary.config, notary.folder / "stdout.log", client)
        process.start()
    finally:
        os.umask(old)
    log = notary.folder / "logs" / "agent.log"
    try:
        process.wait_ready()
        db = notary.folder / "node.db"
        files = [db, db.with_name("node.db-wal"), db.with_name("node.db-shm"), log, process.log_path]
        assert {p.name: oct(_mode(p)) for p in files} == {p.name: oct(0o600) for p in files}
        assert _mode(log.parent) == 0o700
        # As a member of the network (mutual TLS with the node's own TLS certificate): a stranger's
        # connection is refused in the handshake, before any message is read or logged.
        with member_transport(notary.config) as transport:
            for i in range(SENT):
                status, _ = transport.post(notary.p2p_address, os.urandom(64 + i), 10)
                assert status == 400
        # Each refusal is written before its reply goes out: the file already says all it will.
        refused = [e for e in _entries(log) if e["message"].startswith("refused a message")]
        assert len(refused) == DEFAULT_LIMIT
    finally:
        code = process.stop()
    assert code == 0, process.log_tail()
    entries = _entries(log)
    summaries = [e for e in entries if "more like this suppressed" in e["message"]]
    assert [e["message"].split(" (")[0] for e in summaries] == [
        f"{SENT - DEFAULT_LIMIT} more like this suppressed"
    ]
    assert summaries[0]["logger"] == "agent.p2p.service"
    assert "127.0.0.1" in summaries[0]["message"]
    assert any(e["message"] == "stopped" for e in entries)  # the agent's own lines go there too
    warnings = [e["message"] for e in entries if e["logger"] == "ledger_agent.files"]
    assert warnings == [
        f"{notary.folder / 'node.db'} was open to other users (mode 0644): set to 0600; "
        "it is the agent's own file",
        f"{notary.config} is open to other users (mode 0640); it holds secrets: chmod 600 it",
    ]
    assert _mode(notary.config) == 0o640  # the operator's file is the operator's to change


def _entries(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]

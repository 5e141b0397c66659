"""agent.files: 0600 files and 0700 directories whatever the umask; modes others could use, reported."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.files import create_private, private_dir, tighten, warn_if_open, write_private


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o000)
    yield
    os.umask(old)


def test_files_and_directories_are_private_whatever_the_umask(tmp_path: Path) -> None:
    made = tmp_path / "a" / "b"
    private_dir(made)
    assert _mode(made) == 0o700
    write_private(made / "secret", "text")
    assert _mode(made / "secret") == 0o600
    assert create_private(made / "empty") is True
    assert create_private(made / "empty") is False
    assert _mode(made / "empty") == 0o600


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared)
    assert _mode(shared) == 0o755


def test_the_agents_files_are_tightened_and_the_operators_only_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs, fine = tmp_path / "node.db", tmp_path / "node.conf", tmp_path / "ok"
    for path, mode in ((ours, 0o644), (theirs, 0o640), (fine, 0o600)):
        path.write_text("x")
        os.chmod(path, mode)
    with caplog.at_level(logging.WARNING, logger="ledger_agent.files"):
        assert tighten([ours, fine, tmp_path / "absent"]) == [ours]
        assert warn_if_open([theirs, fine, tmp_path / "absent"]) == [theirs]
    assert (_mode(ours), _mode(theirs)) == (0o600, 0o640)
    assert f"{ours} was open to other users (mode 0644): set to 0600" in caplog.text
    assert f"{theirs} is open to other users (mode 0640)" in caplog.text

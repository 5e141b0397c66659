"""Files and directories only the node's owner may read: 0600 and 0700, whatever the umask.

The database holds the node's AES keys wrapped under a key derived from its public name
(agent.recovery.aes_keys), node.conf the management users' password hashes, the logs what peers
sent. The file modes are what keeps another local user out (docs/security.md, "Files and keys").

The agent process sets the umask PRIVATE_UMASK at start (agent.process); the code paths that may
run outside it (`network init`, opening a store from a tool or a test, a backup) set the modes
themselves with the functions below.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077
# Any access for the group or for others.
OTHERS = stat.S_IRWXG | stat.S_IRWXO

log = logging.getLogger("ledger_agent.files")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def private_dir(path: Path) -> None:
    """path as a directory (0700 if created here); existing ones, and their parents, keep their modes."""
    missing = not path.exists()
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if missing:
        os.chmod(path, PRIVATE_DIR)


def create_private(path: Path) -> bool:
    """An empty file at path, 0600, if there was none; whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    os.close(fd)
    os.chmod(path, PRIVATE_FILE)
    return True


def write_private(path: Path, data: str | bytes) -> None:
    """data into path (created or truncated), 0600; text as UTF-8."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.chmod(path, PRIVATE_FILE)


def tighten(paths: Iterable[Path]) -> list[Path]:
    """The agent's own files (its SQLite database, journals and logs) set to 0600 where others had
    access, each with a WARNING naming the file and the mode it had; those it changed."""
    changed = []
    for path in paths:
        try:
            mode = mode_of(path)
        except FileNotFoundError:
            continue
        if mode & OTHERS:
            try:
                os.chmod(path, mode & ~OTHERS)
            except OSError as exc:  # another user's file: say so, and go on as before
                log.warning(
                    "%s is open to other users (mode %04o) and could not be set to %04o: %s",
                    path,
                    mode,
                    mode & ~OTHERS,
                    exc.strerror,
                )
                continue
            log.warning(
                "%s was open to other users (mode %04o): set to %04o; it is the agent's own file",
                path,
                mode,
                mode & ~OTHERS,
            )
            changed.append(path)
    return changed


def warn_if_open(paths: Iterable[Path]) -> list[Path]:
    """The operator's files (node.conf, the identity key) that others may access, each with a
    WARNING naming the file and its mode; they are left as they are."""
    found = []
    for path in paths:
        try:
            mode = mode_of(path)
        except FileNotFoundError:
            continue
        if mode & OTHERS:
            log.warning("%s is open to other users (mode %04o); it holds secrets: chmod 600 it", path, mode)
            found.append(path)
    return found

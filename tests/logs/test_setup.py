"""The agent's log handler: rotation by size, JSON lines, files only the owner may read."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.logs.refusals import refusal
from agent.logs.settings import LoggingSettings
from agent.logs.setup import LIBRARY_LOGGERS, LogSetup, configure_logging


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.logs.setup")
    logger.propagate = False
    yield logger
    logger.handlers.clear()
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _configure(logger: logging.Logger, **settings: object) -> LogSetup:
    return configure_logging(LoggingSettings(**settings), logger=logger)  # type: ignore[arg-type]


def test_the_file_rotates_past_max_file_size_and_keeps_max_files(
    tmp_path: Path, logger: logging.Logger, umask_022: None
) -> None:
    file = tmp_path / "logs" / "agent.log"
    setup = _configure(logger, file=file, max_file_size=2048, max_files=2)
    try:
        for i in range(200):
            logger.warning("line %03d %s", i, "x" * 40)
    finally:
        setup.close()
    rotated = sorted(p.name for p in file.parent.iterdir())
    assert rotated == ["agent.log", "agent.log.1", "agent.log.2"]
    for name in rotated:
        assert (file.parent / name).stat().st_size <= 2048
        assert _mode(file.parent / name) == 0o600, name
    assert _mode(file.parent) == 0o700
    assert "line 199" in file.read_text()
    assert "line 000" not in "".join((file.parent / n).read_text() for n in rotated)  # the oldest are gone


def test_json_lines_parse_with_time_level_logger_message_and_exception(
    tmp_path: Path, logger: logging.Logger
) -> None:
    file = tmp_path / "agent.log"
    setup = _configure(logger, file=file, format="json", level="DEBUG")
    try:
        logger.debug('a message with\na newline and a quote " in it')
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("it failed")
    finally:
        setup.close()
    lines = file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "DEBUG"
    assert first["logger"] == logger.name
    assert first["message"] == 'a message with\na newline and a quote " in it'
    assert first["time"].endswith("+00:00")
    assert second["message"] == "it failed"
    assert "ValueError: boom" in second["exception"]


def test_the_level_filters_and_text_is_the_default(tmp_path: Path, logger: logging.Logger) -> None:
    file = tmp_path / "agent.log"
    setup = _configure(logger, file=file, level="WARNING")
    try:
        logger.info("not written")
        logger.warning("written")
    finally:
        setup.close()
    (line,) = file.read_text().splitlines()
    assert line.endswith(f" WARNING {logger.name} written")


def test_refusals_are_rate_limited_and_counted_on_close(tmp_path: Path, logger: logging.Logger) -> None:
    file = tmp_path / "agent.log"
    setup = _configure(logger, file=file)
    try:
        for _ in range(100):
            logger.warning("refused a message", extra=refusal("MalformedMessageError", "127.0.0.1"))
    finally:
        setup.close()
    lines = file.read_text().splitlines()
    assert len(lines) == 6
    assert "95 more like this suppressed (MalformedMessageError from 127.0.0.1" in lines[-1]


def test_libraries_are_held_at_library_level_and_given_back(tmp_path: Path, logger: logging.Logger) -> None:
    before = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    setup = _configure(logger, file=tmp_path / "agent.log")
    try:
        assert {logging.getLogger(name).level for name in LIBRARY_LOGGERS} == {logging.WARNING}
    finally:
        setup.close()
    assert {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS} == before


def test_a_log_left_open_to_others_is_made_private_and_said_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, umask_022: None
) -> None:
    file = tmp_path / "agent.log"
    file.write_text("from an earlier run\n")
    os.chmod(file, 0o644)
    other = logging.getLogger("tests.logs.setup.other")
    other.propagate = False
    with caplog.at_level(logging.WARNING, logger="ledger_agent.files"):
        setup = _configure(other, file=file)
        setup.close()
    other.propagate = True
    assert _mode(file) == 0o600
    assert f"{file} was open to other users (mode 0644): set to 0600" in caplog.text

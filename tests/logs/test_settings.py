"""node.conf's logging block: defaults, sizes, and every bad value named with what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_node_config
from agent.errors import ConfigurationError
from agent.logs.settings import DEFAULT_MAX_FILE_SIZE, DEFAULT_MAX_FILES, LoggingSettings
from tests.test_config import GOOD, write


def test_defaults_are_info_text_on_stderr(tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, GOOD)).logging == LoggingSettings(
        level="INFO",
        format="text",
        file=None,
        max_file_size=DEFAULT_MAX_FILE_SIZE,
        max_files=DEFAULT_MAX_FILES,
        library_level="WARNING",
    )


def test_a_block_in_corda_style(tmp_path: Path) -> None:
    block = """
logging {
    level = debug
    format = json
    file = logs/agent.log
    maxFileSize = 512KB
    maxFiles = 3
    libraryLevel = ERROR
}
"""
    settings = load_node_config(write(tmp_path, GOOD + block)).logging
    assert settings.level == "DEBUG"
    assert settings.format == "json"
    assert settings.file == tmp_path / "logs" / "agent.log"
    assert settings.max_file_size == 512 * 1024
    assert settings.max_files == 3
    assert settings.library_level == "ERROR"


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("1048576", 1024 * 1024),
        ("10MB", 10 * 1024**2),
        ('"2 GiB"', 2 * 1024**3),
        ("4k", 4096),
        ("2048B", 2048),
    ],
)
def test_sizes(tmp_path: Path, size: str, expected: int) -> None:
    config = load_node_config(write(tmp_path, GOOD + f"logging.maxFileSize = {size}\n"))
    assert config.logging.max_file_size == expected


def test_an_absolute_file_stays_where_it_is(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "agent.log"
    config = load_node_config(write(tmp_path, GOOD + f'logging.file = "{target}"\n'))
    assert config.logging.file == target


@pytest.mark.parametrize(
    ("extra", "key", "allowed"),
    [
        ("logging { level = LOUD }", "logging.level", "allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("logging { level = 20 }", "logging.level", "allowed: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("logging { format = xml }", "logging.format", "allowed: text, json"),
        ("logging { libraryLevel = quiet }", "logging.libraryLevel", "allowed: DEBUG, INFO"),
        ('logging { file = "" }', "logging.file", "the path of the log file"),
        ("logging { maxFileSize = lots }", "logging.maxFileSize", "a size from 1KB to 1024GB"),
        ("logging { maxFileSize = 100 }", "logging.maxFileSize", "a size from 1KB to 1024GB"),
        ("logging { maxFileSize = 10m }", "logging.maxFileSize", "HOCON reads 10m as ten minutes"),
        ("logging { maxFiles = 0 }", "logging.maxFiles", "a whole number from 1 to 1000"),
        ("logging { maxFiles = true }", "logging.maxFiles", "a whole number from 1 to 1000"),
        ("logging { colour = true }", "logging.colour", "unknown key"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(
    tmp_path: Path, extra: str, key: str, allowed: str
) -> None:
    with pytest.raises(ConfigurationError) as err:
        load_node_config(write(tmp_path, GOOD + extra + "\n"))
    assert err.value.key == key
    assert allowed in str(err.value)

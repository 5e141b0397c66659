"""node.conf's `logging { ... }` block: level, format, file and its rotation, checked key by key.

logging {
    level = INFO              # DEBUG, INFO, WARNING, ERROR or CRITICAL
    format = text             # text, or json: one object a line, for log shippers
    file = "logs/agent.log"   # beside node.conf unless absolute; none: stderr
    maxFileSize = 10MB        # rotated past this size (B, KB, MB, GB; 1024-based)
    maxFiles = 10             # rotated files kept besides the current one
    libraryLevel = WARNING    # httpx, httpcore, cheroot, werkzeug
}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from agent.errors import ConfigurationError

SECTION = "logging"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
LOGGING_KEYS = tuple(
    f"{SECTION}.{key}" for key in ("level", "format", "file", "maxFileSize", "maxFiles", "libraryLevel")
)
DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 10
MIN_FILE_SIZE = 1024
MAX_FILE_SIZE = 1024**4
MAX_FILES = 1000
_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_UNIT = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
SIZE_ALLOWED = "a size from 1KB to 1024GB: bytes, or a number with B, KB, MB or GB (1024-based), e.g. 10MB"


@dataclass(frozen=True, kw_only=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"
    file: Path | None = None  # absolute; None: stderr
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    max_files: int = DEFAULT_MAX_FILES
    library_level: str = "WARNING"

    @property
    def level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.level]

    @property
    def library_level_number(self) -> int:
        return logging.getLevelNamesMapping()[self.library_level]


def parse_size(key: str, value: Any) -> int:
    """Bytes, from a whole number or a string such as 10MB; 10m is refused (HOCON reads minutes)."""
    size: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (found := _SIZE.match(value)):
        unit = (found.group(2) or "b")[0].lower()
        size = int(found.group(1)) * _UNIT[unit]
    if size is None or not MIN_FILE_SIZE <= size <= MAX_FILE_SIZE:
        hint = " (HOCON reads 10m as ten minutes: write 10MB)" if isinstance(value, timedelta) else ""
        raise ConfigurationError(key, value, f"allowed: {SIZE_ALLOWED}{hint}")
    return size


def _choice(flat: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    value = flat.get(key, default)
    # Any case, as log4j2 reads Corda's levels; the allowed values are all in one case.
    text = value.upper() if isinstance(value, str) and allowed[0].isupper() else value
    text = text.lower() if isinstance(text, str) and allowed[0].islower() else text
    if not isinstance(text, str) or text not in allowed:
        raise ConfigurationError(key, value, f"allowed: {', '.join(allowed)}")
    return text


def parse_logging_settings(flat: Mapping[str, Any], base: Path) -> LoggingSettings:
    """The logging block of a flattened node.conf; paths relative to base (node.conf's directory)."""
    default = LoggingSettings()
    level = _choice(flat, f"{SECTION}.level", default.level, LEVELS)
    library_level = _choice(flat, f"{SECTION}.libraryLevel", default.library_level, LEVELS)
    form = _choice(flat, f"{SECTION}.format", default.format, FORMATS)
    key = f"{SECTION}.file"
    file = flat.get(key)
    if file is not None and (not isinstance(file, str) or not file.strip()):
        raise ConfigurationError(key, file, "allowed: the path of the log file, absolute or beside node.conf")
    key = f"{SECTION}.maxFileSize"
    size = parse_size(key, flat.get(key, default.max_file_size))
    key = f"{SECTION}.maxFiles"
    count = flat.get(key, default.max_files)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_FILES:
        raise ConfigurationError(key, count, f"allowed: a whole number from 1 to {MAX_FILES}")
    return LoggingSettings(
        level=level,
        format=form,
        file=None if file is None else base / file,
        max_file_size=size,
        max_files=count,
        library_level=library_level,
    )

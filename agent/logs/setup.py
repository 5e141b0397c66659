"""The agent process's log: one handler on the root logger, as node.conf's logging block says.

To stderr, or to a file rotated by size (RotatingFileHandler: `maxFileSize`, `maxFiles`) that only
the node's owner may read (0600, its directory 0700 if made here). Text lines as before, or JSON: one
object a line with time, level, logger, message (and exception), for log shippers. Refusals pass
through a RefusalLimiter. Libraries' loggers (httpx, cheroot, werkzeug) are held at libraryLevel.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from io import TextIOWrapper
from pathlib import Path
from typing import Any

from agent.clock import Clock
from agent.files import PRIVATE_FILE, private_dir, tighten
from agent.logs.refusals import RefusalLimiter
from agent.logs.settings import LoggingSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
LIBRARY_LOGGERS = ("httpx", "httpcore", "cheroot", "werkzeug")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines, so a message can never start a line of its own.
        return json.dumps(entry, ensure_ascii=False, default=str)


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files are created 0600, whatever the umask."""

    def _open(self) -> TextIOWrapper:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)  # the handler closes it

    def files(self) -> list[Path]:
        """The current file and the rotated ones (file.1 ... file.N)."""
        base = Path(self.baseFilename)
        return [base, *(base.with_name(f"{base.name}.{i}") for i in range(1, self.backupCount + 1))]


def formatter(settings: LoggingSettings) -> logging.Formatter:
    return JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)


@dataclass
class LogSetup:
    """What configure_logging installed, to take down again."""

    logger: logging.Logger
    handler: logging.Handler
    limiter: RefusalLimiter
    library_levels: dict[str, int]

    def close(self) -> None:
        """Write the refusals still counted, remove the handler and close its file."""
        self.limiter.flush()
        self.logger.removeHandler(self.handler)
        self.handler.close()
        for name, level in self.library_levels.items():
            logging.getLogger(name).setLevel(level)


def configure_logging(
    settings: LoggingSettings,
    *,
    logger: logging.Logger | None = None,
    clock: Clock | None = None,
) -> LogSetup:
    """The agent's handler on logger (the root logger by default), replacing the handlers it had."""
    logger = logger or logging.getLogger()
    handler: logging.Handler
    if settings.file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        private_dir(settings.file.parent)
        handler = PrivateRotatingFileHandler(
            settings.file,
            maxBytes=settings.max_file_size,
            backupCount=settings.max_files,
            encoding="utf-8",
        )
    handler.setFormatter(formatter(settings))
    limiter = RefusalLimiter(handler.handle, clock=clock)
    handler.addFilter(limiter)
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(settings.level_number)
    library_levels = {name: logging.getLogger(name).level for name in LIBRARY_LOGGERS}
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(settings.library_level_number)
    if isinstance(handler, PrivateRotatingFileHandler):
        tighten(handler.files())  # a log left open to others by an earlier run: warned about, in it
    return LogSetup(logger, handler, limiter, library_levels)

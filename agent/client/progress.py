"""Progress of a long command on stderr: steps done of a known total, and what it is doing.

Shown when stderr is a terminal (one line, rewritten in place) or when asked with `--progress` (then
a line per update, at most one a second but always the last, for a log). `--no-progress` hides it.
It only counts what the command itself counts: no estimate, no guessed percentage of unknown work.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

Out = Callable[[str], None]


def wanted(flag: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to show progress: as the flag says, else when the stream is a terminal."""
    if flag is not None:
        return flag
    stream = sys.stderr if stream is None else stream
    return stream.isatty()


class Progress:
    """`<what>: <done>/<total> <doing>` on a stream; does nothing when not enabled."""

    def __init__(
        self,
        what: str,
        total: int | None,
        *,
        enabled: bool,
        stream: TextIO | None = None,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.total = total
        self.done = 0
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.live = enabled and self.stream.isatty()  # rewrite one line, or write lines
        self.every_s = every_s
        self.clock = clock
        self._printed_at: float | None = None
        self._shown = ""  # the line now on the terminal (live only)
        self._doing = ""
        self._last = ""  # the last line written (not live)

    def line(self) -> str:
        count = f"{self.done}/{self.total}" if self.total is not None else str(self.done)
        return f"{self.what}: {count}{' ' + self._doing if self._doing else ''}"

    def advance(self, steps: int = 1, doing: str | None = None) -> None:
        """steps more done (0: only what it is doing now changed)."""
        self.done += steps
        if self.total is not None:
            self.done = min(self.done, self.total)
        if doing is not None:
            self._doing = doing
        self._show()

    def set(self, done: int, total: int | None, doing: str | None = None) -> None:
        """Counts read from elsewhere (a job on the agent)."""
        self.done, self.total = done, total
        self.advance(0, doing)

    def finish(self) -> None:
        """End the progress line (live), or write the last state when it was not written yet."""
        if not self.enabled:
            return
        if self.live:
            if self._shown:
                self.stream.write("\r\x1b[K" + self.line() + "\n")
                self._shown = ""
        elif self._last != self.line():
            self.stream.write(self.line() + "\n")
        self.stream.flush()
        self.enabled = False

    def printer(self, out: Out) -> Out:
        """out, clearing the live line before each call and drawing it again after, so that the
        command's own output (on the same terminal) is not written over the progress."""
        if not self.live:
            return out

        def write(text: str) -> None:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            out(text)
            if self._shown:
                self.stream.write(self._shown)
                self.stream.flush()

        return write

    def _show(self) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self.live:
            self._shown = text
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            return
        now = self.clock()
        if self._printed_at is not None and now - self._printed_at < self.every_s:
            return
        if text != self._last:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last = text
            self._printed_at = now

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()

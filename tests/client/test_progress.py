"""agent.client.progress, and where the command line shows it: `demo`, `recover --apply`, the bulk
jobs' --wait. On stderr, when it is a terminal or with --progress; never with --no-progress."""

from __future__ import annotations

import argparse
import io
from typing import Any

import pytest

from agent.client import cli
from agent.client.progress import Progress, wanted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_wanted_follows_the_flag_else_the_terminal() -> None:
    assert wanted(None, Terminal()) and not wanted(None, io.StringIO())
    assert wanted(True, io.StringIO()) and not wanted(False, Terminal())


def test_in_a_pipe_a_line_per_step_at_most_one_a_second_and_always_the_last() -> None:
    stream, ticks = io.StringIO(), Ticks()
    with Progress("copy", 3, enabled=True, stream=stream, clock=ticks) as progress:
        progress.advance(1, "a")
        progress.advance(1, "b")  # within the second: not written
        ticks.now = 1.5
        progress.advance(1, "c")
        progress.advance(5)  # never past the total
    assert stream.getvalue().splitlines() == ["copy: 1/3 a", "copy: 3/3 c"]


def test_the_last_state_is_written_at_the_end_when_it_was_held_back() -> None:
    stream = io.StringIO()
    with Progress("copy", 2, enabled=True, stream=stream, clock=Ticks()) as progress:
        progress.advance(1)
        progress.advance(1)
    assert stream.getvalue().splitlines() == ["copy: 1/2", "copy: 2/2"]


def test_disabled_writes_nothing() -> None:
    stream = Terminal()
    with Progress("copy", 2, enabled=False, stream=stream) as progress:
        progress.advance(2)
        progress.printer(lambda text: None)("x")
    assert stream.getvalue() == ""


def test_on_a_terminal_one_line_rewritten_and_the_commands_output_not_written_over() -> None:
    stream = Terminal()
    printed: list[str] = []

    def out(text: str) -> None:
        printed.append(text)
        stream.write(text + "\n")  # the same terminal

    with Progress("demo", 2, enabled=True, stream=stream) as progress:
        say = progress.printer(out)
        progress.advance(1, "x")
        say("hello")
        progress.advance(1, "y")
    assert printed == ["hello"]
    assert stream.getvalue() == (
        "\r\x1b[Kdemo: 1/2 x"  # drawn
        "\r\x1b[Khello\n"  # cleared, the output
        "demo: 1/2 x"  # drawn again
        "\r\x1b[Kdemo: 2/2 y"
        "\r\x1b[Kdemo: 2/2 y\n"  # finished: the line kept, the cursor on the next
    )


class Jobs:
    """A management client whose bulk job moves on at each read."""

    def __init__(self) -> None:
        self.states = [
            {"jobId": "j1", "status": "RUNNABLE", "processed": 0, "total": 4, "counts": {}},
            {"jobId": "j1", "status": "RUNNABLE", "processed": 2, "total": 4, "counts": {"retried": 2}},
            {
                "jobId": "j1",
                "status": "COMPLETED",
                "processed": 4,
                "total": 4,
                "counts": {"retried": 4},
                "finished": True,
            },
        ]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


@pytest.mark.parametrize(("flag", "shown"), [(True, True), (None, False), (False, False)])
def test_a_bulk_jobs_wait_shows_processed_of_total_on_stderr(
    flag: bool | None, shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(progress=flag, timeout=30.0, json=False)
    job = cli._follow(Jobs(), {"jobId": "j1", "total": 4}, args)  # type: ignore[arg-type]
    assert job["finished"]
    captured = capsys.readouterr()
    assert captured.out == ""  # the finished job is the command's output, printed after
    lines = captured.err.splitlines()
    if shown:
        assert lines[0] == "job j1: 0/4 processed, RUNNABLE (nothing yet)"
        assert lines[-1] == "job j1: 4/4 processed, COMPLETED (4 retried)"  # (2/4 may be held back)
    else:
        assert lines == []


class Recovery:
    """A management client whose LedgerRecoveryFlow has already ended."""

    def call(self, method: str, path: str) -> Any:
        if path.startswith("/api/flows"):
            return []
        if path == "/api/recovery/progress":
            return {}
        return {"results": []}


@pytest.mark.parametrize(("flag", "shown"), [(None, True), (True, True), (False, False)])
def test_recover_apply_follows_with_progress_unless_told_not_to(
    flag: bool | None, shown: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = cli._follow_recovery(Recovery(), "f1", 5.0, flag)  # type: ignore[arg-type]
    assert summary is not None and summary["totalErrors"] == 0
    err = capsys.readouterr().err
    assert ("0/0 transactions at DONE" in err) is shown

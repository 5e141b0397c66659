"""What `--help` and `--version` say: every subcommand described, `check -V` as monitoring plugins
answer it, and the progress flags on the long commands."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from agent import __version__
from agent.client.cli import build_parser, main


def subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser, str | None]]:
    """(words, parser, the one-line help its parent lists) of every subcommand, at any depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield (*path, name), sub, helps.get(name)
                yield from subcommands(sub, (*path, name))


def test_every_subcommand_has_a_help_line_and_a_description() -> None:
    found = list(subcommands(build_parser()))
    assert len(found) > 30 and (("network", "inspect") in {words for words, _, _ in found})
    for words, sub, help_line in found:
        assert help_line, words
        assert sub.description and len(sub.description) > 10, words


@pytest.mark.parametrize("words", [["network"], ["network", "inspect"], ["run"], ["flow", "pause"]])
def test_help_prints_the_description(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*words, "--help"])
    assert exited.value.code == 0
    parser = build_parser()
    for word in words:
        parser = next(sub for w, sub, _ in subcommands(parser) if w == (word,))
    assert parser.description is not None
    assert " ".join(parser.description.split()[:6]) in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_check_version_prints_it_and_exits_0(flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agent", "check", flag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"ledger-agent check {__version__}\n", "")


@pytest.mark.parametrize(
    "words",
    [
        ["demo"],
        ["recover", "--peer", "O=X, L=Y, C=GB", "--config", "n.conf"],
        ["flow", "bulk", "retry", "--reason", "r", "--config", "n.conf"],
        ["flow", "jobs", "--config", "n.conf"],
        ["flow", "pauseAll", "--reason", "r", "--config", "n.conf"],
    ],
)
def test_the_long_commands_take_progress_flags(words: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args(words).progress is None  # as stderr is a terminal or not
    assert parser.parse_args([*words, "--progress"]).progress is True
    assert parser.parse_args([*words, "--no-progress"]).progress is False

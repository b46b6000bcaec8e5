"""The command line as a new user meets it: --version, help on every command, honest progress."""

from __future__ import annotations

import io

import click
from click.testing import CliRunner

from helpdesk_bot.ops.cli import main
from helpdesk_bot.progress import Progress


def commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("helpdesk-bot 0.")


def test_every_command_and_option_has_a_help_text():
    for path, command in commands(main):
        assert command.help, f"helpdesk-bot {' '.join(path)} has no help text"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"helpdesk-bot {' '.join(path)} {param.opts[0]} has no help text"


def test_every_file_a_help_text_names_exists():
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    for path, command in commands(main):
        for named in re.findall(r"\b((?:docs|tests|deploy)/[\w./-]+\.\w+)", command.help or ""):
            assert (root / named).exists(), f"helpdesk-bot {' '.join(path)} names {named}"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_the_time_left_counts_from_the_first_item_not_from_the_start_of_the_command():
    """70 s of questions after 40 s of loading and indexing: about 70 s, not 11 hours."""
    clock, out = Clock(), io.StringIO()
    progress = Progress("questions", out, interactive=False, clock=clock)
    clock.now = 40.0  # the model loaded and the knowledge indexed: the first question is done
    progress(1, 1000)
    clock.now = 47.0
    progress(101, 1000)
    clock.now = 58.0
    progress(258, 1000)
    lines = out.getvalue().splitlines()
    assert lines[-1] == "questions: 258/1000 (25 %), about 52 s left"  # 18 s for 257 → 0.07 s each


def test_progress_on_a_non_terminal_is_a_line_every_ten_seconds_and_one_at_the_end():
    clock, out = Clock(), io.StringIO()
    progress = Progress("embedding chunks", out, interactive=False, clock=clock)
    for done in range(1, 301):
        clock.now = done * 0.1  # 30 s in all
        progress(done, 300)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and "\r" not in out.getvalue()
    assert lines[-1] == "embedding chunks: 300/300 (100 %), 30 s"


def test_progress_on_a_terminal_redraws_one_line():
    clock, out = Clock(), io.StringIO()
    progress = Progress("questions", out, interactive=True, clock=clock)
    for done in range(1, 11):
        clock.now = done
        progress(done, 10)
    assert out.getvalue().count("\n") == 1 and out.getvalue().count("\r") == 10
    assert "[##############################] 10/10 (100 %)" in out.getvalue()

"""Every command's --help as a user reads it: square brackets survive Rich's markup, and options
with a fixed set of values list them and refuse anything else."""

from __future__ import annotations

import inspect
import re
import typing
from typing import Literal

import pytest
import typer
from typer.testing import CliRunner

from nmt_cli.main import app

# Wide enough that no help line wraps in the middle of what a test looks for.
runner = CliRunner(env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
COMMANDS = typer.main.get_command(app).commands

# The options the issue names, by command: each must be a checked choice.
CHOICES = {
    "preprocess": {"--tokenizer", "--errors", "--format", "--spm-type"},
    "train": {
        "--optimizer",
        "--schedule",
        "--valid-metric",
        "--task-schedule",
        "--cell",
        "--precision",
    },
    "translate": {"--precision", "--errors"},
    "evaluate": {"--precision", "--tokenize"},
    "plot": {"--x"},
}


def _flat(text: str) -> str:
    """Rendered help without panel borders or line breaks (wrapping never splits a word)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _help(command: str) -> str:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    return _flat(result.stdout)


def _bracketed(raw: str) -> list[str]:
    """The literal [...] texts a help string means: the source escapes each `[` as `\\[` for
    Rich; an unescaped one is found too, and the test fails where Rich ate it."""
    return [f"[{inner}]" for inner in re.findall(r"\\?\[([^\[\]]*)\]", raw)]


def _help_strings(command: str) -> list[str]:
    cmd = COMMANDS[command]
    return [cmd.help or "", *(getattr(param, "help", None) or "" for param in cmd.params)]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_keeps_every_bracketed_text(command):
    wanted = [text for raw in _help_strings(command) for text in _bracketed(raw)]
    shown = _help(command)
    missing = [text for text in wanted if _flat(text) not in shown]
    assert not missing, f"nmt {command} --help lost {missing}"


def test_help_brackets_named_in_the_issue():
    assert "pip install 'nmt[plot]'" in _help("plot")
    preprocess = _help("preprocess")
    assert "[default: train=train,valid=validation,test=test," in preprocess
    assert "[default: joint for subword, separate for word and char]" in preprocess
    assert "[default: as --joint/--separate]" in preprocess


def _choice_options(command: str) -> dict[str, tuple[str, ...]]:
    """--option -> its values, for each parameter of the command typed as a Literal."""
    func = next(c.callback for c in app.registered_commands if c.callback.__name__ == command)
    options = {}
    for param in inspect.signature(func, eval_str=True).parameters.values():
        hint = typing.get_args(param.annotation)[0] if param.annotation else None
        literal = [h for h in (hint, *typing.get_args(hint)) if typing.get_origin(h) is Literal]
        if literal:
            options["--" + param.name.replace("_", "-")] = typing.get_args(literal[0])
    return options


@pytest.mark.parametrize("command", sorted(CHOICES))
def test_fixed_values_are_listed_and_checked(command):
    options = _choice_options(command)
    assert CHOICES[command] <= set(options), f"not choices: {CHOICES[command] - set(options)}"
    shown = _help(command)
    for option, choices in options.items():
        assert f"<{'|'.join(choices)}>" in shown, option
        wrong = runner.invoke(app, [command, option, "no-such-value"])
        assert wrong.exit_code == 2, (option, wrong.output)
        message = _flat(wrong.stderr)
        assert f"Invalid value for '{option}'" in message
        assert ", ".join(f"'{c}'" for c in choices) in message, (option, message)

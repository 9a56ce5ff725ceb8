"""The README and `--help` describe the same command line: every `textsae VERB --option` the README shows exists, and
every verb `textsae --help` lists is shown in the README."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from tests.conftest import REPO
from textsae.cli.main import build_parser

README = (REPO / "README.md").read_text(encoding="utf-8")


def _verbs() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _readme_commands() -> list[str]:
    """``textsae ...`` command lines in code blocks and inline code spans (a ``\\`` continuation joins its lines)."""
    commands = []
    for language, block in re.findall(r"```(\w*)\n(.*?)```", README, flags=re.S):  # every fence, so pairs stay aligned
        if language not in ("", "bash", "sh"):
            continue
        joined = block.replace("\\\n", " ")
        commands += [line.split("#")[0].strip() for line in joined.splitlines() if line.strip().startswith("textsae ")]
    commands += list(re.findall(r"`(textsae [a-z][^`:]*)`", README))  # not messages such as `textsae encode: argument`
    return commands


def _options(parser: argparse.ArgumentParser) -> set[str]:
    found = {option for action in parser._actions for option in action.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):  # `textsae bench train --option`
            for sub in action.choices.values():
                found |= _options(sub)
    return found


COMMANDS = _readme_commands()


def test_the_readme_shows_commands() -> None:
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_uses_a_real_verb_and_real_options(command: str) -> None:
    verbs = _verbs()
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    verb = words[1] if len(words) > 1 else ""
    if verb.startswith("-") or verb.isupper():  # `textsae --help`, `textsae COMMAND --help`
        return
    assert verb in verbs, f"README shows `{command}`, but `textsae --help` has no verb {verb!r}"
    known = _options(verbs[verb]) | {"--debug", "-q", "--quiet", "-h", "--help"}
    used = {word.split("=")[0] for word in words[2:] if word.startswith("--")}
    assert used <= known, f"README shows `{command}`: {sorted(used - known)} not in `textsae {verb} --help`"


@pytest.mark.parametrize("verb", sorted(_verbs()))
def test_every_verb_of_the_help_is_shown_in_the_readme(verb: str) -> None:
    assert re.search(rf"textsae {verb}\b", README), f"`textsae --help` lists {verb!r}; the README never shows it"

"""Exceptions that textsae raises for problems a user can fix.

The CLI turns a :class:`UserError` into one line on stderr and exit code 2; anything else is a bug
and keeps its traceback. ``UserError`` is a ``ValueError``, as scikit-learn and most Python libraries raise for bad
arguments, so ``except ValueError`` in user code catches textsae's refusals too.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with the user's input, config or files: the message says what is wrong and what would be right."""


class ConfigError(UserError):
    """One or more problems in a recipe, preset or override; each problem is one line of the message."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class HubUnreachableError(UserError):
    """The Hugging Face Hub could not be reached for a dataset or model id."""


class IncompleteArtifactError(UserError):
    """An output folder exists but its manifest is missing or does not match its files."""

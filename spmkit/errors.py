"""Errors that reach the user as a one-paragraph message and a non-zero exit, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SpmkitError(Exception):
    """Base class of every error caused by user input (blueprints, recipes, data, arguments).

    The CLI prints ``str(error)`` and exits with ``exit_code``; library users catch it like any exception.
    """

    exit_code: int = 2


@dataclass(frozen=True)
class FieldIssue:
    """One problem in a blueprint: the dotted field path and what is wrong / allowed."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


class BlueprintError(SpmkitError):
    """A blueprint (or ``--set`` override) that does not validate; lists every problem found."""

    def __init__(self, source: str | Path | None, issues: list[FieldIssue]) -> None:
        self.source = str(source) if source is not None else "<blueprint>"
        self.issues = issues
        lines = [f"{self.source}: invalid blueprint ({len(issues)} problem{'s' if len(issues) != 1 else ''})"]
        lines += [f"  - {issue}" for issue in issues]
        super().__init__("\n".join(lines))


class DataError(SpmkitError):
    """Missing, empty or malformed data folders and files."""


class CheckpointError(SpmkitError):
    """A checkpoint that cannot be read or does not match the model."""

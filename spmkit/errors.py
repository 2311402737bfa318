"""Errors that reach the user as a one-paragraph message and a non-zero exit, never a traceback."""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the most characters of a user's value (or path, or key) an error message shows
SHOWN_CHARS = 120
#: the most problems one error lists
SHOWN_ISSUES = 20


class _BoundedRepr(reprlib.Repr):
    """``repr`` that never builds more than a bounded prefix of a value (nested containers, long strings and
    integers with more digits than Python converts to text included)."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxdict, self.maxtuple, self.maxset = 3, 6, 6, 6, 6
        self.maxstring, self.maxother, self.maxlong = SHOWN_CHARS, SHOWN_CHARS, 40

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 4 * self.maxlong:
            return f"<integer of about {int(x.bit_length() * 0.30103)} digits>"
        return super().repr_int(x, level)


_REPR = _BoundedRepr()


def shorten(value: Any, limit: int = SHOWN_CHARS, quote: bool = True) -> str:
    """A bounded rendering of ``value`` for an error message: its (bounded) ``repr`` when ``quote``, else the
    text itself, cut to ``limit`` characters with an ellipsis."""
    if quote or not isinstance(value, str):
        text = _REPR.repr(value)
    else:
        text = value[: limit + 1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        return f"{shorten(self.path or '<root>', 200, quote=False)}: {shorten(self.message, 1000, quote=False)}"


class BlueprintError(SpmkitError):
    """A blueprint (or ``--set`` override) that does not validate; lists every problem found."""

    def __init__(self, source: str | Path | None, issues: list[FieldIssue]) -> None:
        self.source = str(source) if source is not None else "<blueprint>"
        self.issues = issues
        shown = shorten(self.source, 300, quote=False)
        lines = [f"{shown}: invalid blueprint ({len(issues)} problem{'s' if len(issues) != 1 else ''})"]
        lines += [f"  - {issue}" for issue in issues[:SHOWN_ISSUES]]
        if len(issues) > SHOWN_ISSUES:
            lines.append(f"  - ... and {len(issues) - SHOWN_ISSUES} more")
        super().__init__("\n".join(lines))


class DataError(SpmkitError):
    """Missing, empty or malformed data folders and files."""


class CheckpointError(SpmkitError):
    """A checkpoint that cannot be read or does not match the model."""

"""One place that turns every error into one paragraph on stderr and an exit code: 2 for the user's input
(``SpmkitError``, validation, files, options), 1 for a bug in spmkit. ``SPMKIT_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

#: the longest message printed (a paragraph, not a dump)
MAX_MESSAGE_CHARS = 4000
DEBUG_ENV = "SPMKIT_DEBUG"


def _paragraph(message: str) -> str:
    """No blank lines (one paragraph) and a bounded length."""
    lines = [ln.rstrip() for ln in message.splitlines() if ln.strip()]
    text = "\n".join(lines) or "(no message)"
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def report(message: str, title: str = "error") -> None:
    """Print a user-facing error (no markup interpretation, so paths with brackets stay intact)."""
    err_console.print(_paragraph(f"{title}: {message}"), markup=False)


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe(err: BaseException) -> tuple[int, str]:
    """(exit code, message) of an exception that reached the command line."""
    from pydantic import ValidationError

    from spmkit.errors import SpmkitError, shorten

    if isinstance(err, SpmkitError):
        return int(getattr(err, "exit_code", 2)), str(err)
    if isinstance(err, ValidationError):
        lines = [f"{shorten('.'.join(str(p) for p in e['loc']), 200, quote=False)}: {e['msg']}"
                 for e in err.errors()[:20]]
        return 2, "invalid settings\n  - " + "\n  - ".join(lines)
    if isinstance(err, UnicodeError):
        return 2, f"a file or argument is not valid UTF-8 text ({shorten(str(err), 200, quote=False)})"
    if isinstance(err, OSError):
        name = err.filename if err.filename is not None else ""
        what = err.strerror or str(err)
        return 2, f"{shorten(str(name), 300, quote=False)}: {what}" if name else what
    if isinstance(err, MemoryError):
        return 2, ("out of memory: the model, the batch or the input size is too large for this machine "
                   "(spmkit build shows a blueprint's size without allocating it).")
    if isinstance(err, RecursionError):
        return 2, "the input is nested too deeply to be processed."
    if isinstance(err, KeyboardInterrupt):
        return 130, "interrupted."
    detail = shorten(str(err), 500, quote=False)
    return 1, (f"internal error: {type(err).__name__}: {detail}. This is a bug in spmkit, not in your input; "
               f"rerun with {DEBUG_ENV}=1 for the traceback and report it.")


def handle(err: BaseException) -> int:
    """Print ``err`` as one paragraph (and the traceback with ``SPMKIT_DEBUG=1``); returns the exit code."""
    code, message = describe(err)
    if debug_enabled():
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    report(message)
    return code


def _click_exception() -> type[Exception]:
    """The ClickException class typer raises: click's own, or the copy typer >= 0.20 vendors."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


#: what commands raise on purpose (exits, aborts, usage errors): left to typer, which prints and exits
PASS_THROUGH: tuple[type[BaseException], ...] = (typer.Exit, typer.Abort, _click_exception())


def user_errors(fn: F) -> F:
    """Decorator for commands: every exception becomes one paragraph and an exit code (see ``describe``);
    click's own exits and usage errors pass through to click."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PASS_THROUGH:
            raise
        except Exception as err:  # noqa: BLE001 (the error boundary)
            raise typer.Exit(handle(err)) from None

    return wrapper  # type: ignore[return-value]

"""One place that turns user errors into a short message on stderr and exit code 2."""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def report(message: str, title: str = "error") -> None:
    """Print a user-facing error (no markup interpretation, so paths with brackets stay intact)."""
    err_console.print(f"{title}: {message}", markup=False)


def user_errors(fn: F) -> F:
    """Decorator for commands: SpmkitError / pydantic ValidationError / missing files -> message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from spmkit.errors import SpmkitError

        try:
            return fn(*args, **kwargs)
        except SpmkitError as err:
            report(str(err))
            raise typer.Exit(getattr(err, "exit_code", 2)) from None
        except ValidationError as err:
            lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
            report("invalid settings\n  - " + "\n  - ".join(lines))
            raise typer.Exit(2) from None
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
            report(f"{err.filename or ''}: {err.strerror}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]

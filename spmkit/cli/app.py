"""The Typer app. Commands live one per file in ``spmkit/cli/commands/`` and register themselves."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Annotated, NoReturn

from spmkit.train.preemption import install_early

install_early(sys.argv)  # spmkit train: a SLURM signal during the imports below is not lost (issue 21)

import typer  # noqa: E402

app = typer.Typer(
    name="spmkit",
    help="Build, inspect, train and profile hierarchical vision backbones from YAML blueprints.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from spmkit import __version__

        typer.echo(f"spmkit {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", metavar="", is_eager=True, callback=_version,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Build, inspect, train and profile hierarchical vision backbones from YAML blueprints."""


def _register_commands() -> None:
    from spmkit.cli import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{commands.__name__}.{info.name}")
            module.register(app)


class _Command(typer.core.TyperCommand):
    """Flags (bool options, ``--help`` too) show no ``<bool>`` placeholder in ``--help``: they take no value."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if getattr(param, "is_flag", False) and not param.metavar:
                param.metavar = ""

    def get_params(self, ctx):  # the --help option is made here, after __init__
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and not param.metavar:
                param.metavar = ""
        return params


class _Group(typer.core.TyperGroup):
    """A command group (``spmkit data``) whose own ``--help`` shows no placeholder either."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and not param.metavar:
                param.metavar = ""
        return params


def _flags_take_no_value() -> None:
    """Every registered command renders its flags without a placeholder, so one added later needs nothing;
    the root's own ``--help`` too (``spmkit --help``)."""
    app.info.cls = _Group
    commands = list(app.registered_commands)
    for group in app.registered_groups:  # e.g. spmkit data pack|check
        commands += group.typer_instance.registered_commands
        chosen = getattr(group.cls, "value", group.cls)  # typer wraps unset settings in a DefaultPlaceholder
        if chosen is None or chosen is typer.core.TyperGroup:
            group.cls = _Group
    for command in commands:
        if command.cls is None or command.cls is typer.core.TyperCommand:
            command.cls = _Command


_register_commands()
_flags_take_no_value()


def run() -> NoReturn:
    """The ``spmkit`` command (console script and ``python -m spmkit``): :func:`main`, then a fast exit
    (:mod:`spmkit.cli.fast_exit`)."""
    from spmkit.cli.fast_exit import exit_code, exit_now

    code = 0
    try:
        main()
    except SystemExit as done:
        code = exit_code(done.code)
    exit_now(code)  # outside the ``except``: the exception's frames (and the loaders they hold) are released


def main() -> None:
    """Run the app; any exception a command lets through becomes one paragraph and exit code 2 (the user's
    input) or 1 (a bug), as in ``spmkit.cli.errors``. Usage errors are click's: exit 2."""
    from spmkit.cli.errors import handle

    try:
        app()
    except SystemExit:
        raise
    except BaseException as err:  # noqa: BLE001 (the top-level error boundary)
        sys.exit(handle(err))

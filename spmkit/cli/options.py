"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a blueprint field, e.g. --set stages.2.depth=4 (repeatable)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
BlueprintArg = Annotated[str, typer.Argument(help="Blueprint YAML path or builtin name (e.g. swin_t).")]

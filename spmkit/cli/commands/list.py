"""``spmkit list``: builtin blueprints and registered components."""

from __future__ import annotations

import json

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import JsonOption


@user_errors
def list_(json_: JsonOption = False) -> None:
    """List builtin blueprints and every registered component with its parameters."""
    from rich.console import Console
    from rich.table import Table

    from spmkit.blueprint import list_blueprints
    from spmkit.blueprint.params import user_parameter_names
    from spmkit.registry import COMPONENT_REGISTRIES, load_components

    load_components()
    blueprints = {k: str(v) for k, v in list_blueprints().items()}
    components = {
        kind: {name: user_parameter_names(kind, obj) for name, obj in reg.items()}
        for kind, reg in COMPONENT_REGISTRIES.items()
    }
    from spmkit.registry import CONVERTERS

    import spmkit.convert  # noqa: F401  (fills CONVERTERS)

    converters = {name: conv.release for name, conv in CONVERTERS.items()}
    if json_:
        typer.echo(json.dumps({"blueprints": blueprints, "components": components, "converters": converters},
                              indent=2))
        return
    console = Console()
    t = Table(title="builtin blueprints", title_justify="left")
    t.add_column("name")
    t.add_column("file")
    for name, path in blueprints.items():
        t.add_row(name, path)
    console.print(t)
    c = Table(title="components", title_justify="left")
    for col in ("kind", "type", "parameters"):
        c.add_column(col)
    for kind, items in components.items():
        for name, params in items.items():
            c.add_row(kind, name, ", ".join(params) or "-")
    console.print(c)
    v = Table(title="checkpoint layouts (spmkit convert --from)", title_justify="left")
    v.add_column("name")
    v.add_column("release")
    for name, release in converters.items():
        v.add_row(name, release)
    console.print(v)


def register(app: typer.Typer) -> None:
    app.command("list")(list_)

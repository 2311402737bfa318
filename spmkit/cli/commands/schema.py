"""``spmkit schema``: the blueprint JSON Schema, with every registered component and its parameters."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors


@user_errors
def schema(
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of blueprints (point your editor's YAML plugin at it for autocompletion)."""
    from spmkit.blueprint.jsonschema import blueprint_json_schema

    text = json.dumps(blueprint_json_schema(), indent=2)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    else:
        typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("schema")(schema)

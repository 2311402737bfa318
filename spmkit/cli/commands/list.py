"""``spmkit list``: builtin blueprints, recipes, sweeps, registered components (full paths, never cut) and the
published weights the blueprints name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import JsonOption


@user_errors
def list_(json_: JsonOption = False) -> None:
    """List builtin blueprints, recipes and sweeps (with their files), every registered component, the
    checkpoint layouts and the published weights of each reproduction blueprint."""
    from rich.console import Console
    from rich.table import Table

    from spmkit.blueprint import list_blueprints
    from spmkit.blueprint.params import user_parameter_names
    from spmkit.recipes import list_recipes
    from spmkit.registry import COMPONENT_REGISTRIES, load_components
    from spmkit.sweep.spec import list_sweeps

    load_components()
    blueprints = {k: str(Path(v).resolve()) for k, v in list_blueprints().items()}
    recipes = {k: str(v.resolve()) for k, v in list_recipes().items()}
    sweeps = {k: str(Path(v).resolve()) for k, v in list_sweeps().items()}
    components = {
        kind: {name: user_parameter_names(kind, obj) for name, obj in reg.items()}
        for kind, reg in COMPONENT_REGISTRIES.items()
    }
    from spmkit.registry import CONVERTERS

    import spmkit.convert  # noqa: F401  (fills CONVERTERS)

    converters = {name: conv.release for name, conv in CONVERTERS.items()}
    from spmkit.blueprint.zoo import as_json, metrics_text, releases, weights_rows

    released = releases()
    if json_:
        typer.echo(json.dumps({"blueprints": blueprints, "recipes": recipes, "sweeps": sweeps,
                               "components": components, "converters": converters,
                               "weights": as_json(released)}, indent=2))
        return
    # a table never cuts a name or a path: wide enough for the longest row, folded on a narrow terminal
    longest = max(len(k) + len(v) for k, v in {**blueprints, **recipes, **sweeps}.items())
    rows = [(n, w.tag, r.layout_of(w), metrics_text(w), w.url) for n, r, w in weights_rows(released)]
    longest_weights = max((sum(len(c) for c in row) + 16 for row in rows), default=0)
    console = Console(width=None if sys.stdout.isatty() else max(120, longest + 10, longest_weights))
    for title, items in (("builtin blueprints (spmkit build NAME)", blueprints),
                         ("builtin recipes (spmkit train --recipe NAME)", recipes),
                         ("builtin sweeps (spmkit sweep NAME)", sweeps)):
        if not items:
            continue
        t = Table(title=title, title_justify="left")
        t.add_column("name", no_wrap=True)
        t.add_column("file", overflow="fold")
        for name, path in items.items():
            t.add_row(name, path)
        console.print(t)
    c = Table(title="components", title_justify="left")
    for col in ("kind", "type", "parameters"):
        c.add_column(col, overflow="fold")
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
    w = Table(title="published weights (the blueprints' release blocks; spmkit convert FILE -b BLUEPRINT)",
              title_justify="left")
    for col in ("blueprint", "weights", "layout", "published", "url"):
        w.add_column(col, overflow="fold")
    for row in rows:
        w.add_row(*row)
    for name, release in released.items():
        if not release.weights:
            w.add_row(name, "-", release.layout, f"no published weights ({release.code.repo})", "-")
    console.print(w)


def register(app: typer.Typer) -> None:
    app.command("list")(list_)

"""The builtin blueprints' releases and published weights, read from their ``release:`` blocks (data, not code).

``releases()`` is what ``spmkit list``, the tests' official layouts and docs/zoo.md (``benchmarks/zoo_docs.py``)
read; ``spmkit convert`` reads the blueprint's own release for its layout hint.
"""

from __future__ import annotations

from typing import Any, Iterator

from spmkit.blueprint.release import Release, Weights


def releases() -> dict[str, Release]:
    """Builtin blueprint name -> the release it reproduces (only those that name one)."""
    from spmkit.blueprint.loader import list_blueprints, load_blueprint

    out = {}
    for name in list_blueprints():
        release = load_blueprint(name).release
        if release is not None:
            out[name] = release
    return out


def weights_rows(items: dict[str, Release] | None = None) -> Iterator[tuple[str, Release, Weights]]:
    """``(blueprint, release, weights)`` for every published checkpoint, in blueprint order."""
    for name, release in (releases() if items is None else items).items():
        for weights in release.weights:
            yield name, release, weights


def metrics_text(w: Weights) -> str:
    """``top1 75.1 (224, crop 0.875, bicubic)``; ``-`` when none is published."""
    if not w.metrics:
        return "-"
    figures = ", ".join(f"{k} {v}" for k, v in w.metrics.items())
    e = w.eval
    return f"{figures}{' EMA' if w.ema else ''} ({e.img_size}, crop {e.crop_pct:g}, {e.interpolation})"


def convert_command(name: str, release: Release, w: Weights) -> str:
    """The ``spmkit convert`` line for one checkpoint (``--from`` only where detection would need it)."""
    file = w.file or (w.hf_hub_id or w.url).rstrip("/").rsplit("/", 1)[-1]
    ema = " --ema" if w.ema else ""
    return f"spmkit convert {file} -b {name} -o {name}.pt{ema}"


def layout_hint(name: str, release: Release | None) -> str:
    """A sentence naming the layouts a blueprint's release data gives (for a file whose layout is unclear)."""
    if release is None:
        return ""
    layouts = release.layouts()
    return (f" {name}'s release data ({release.code.repo}) names layout{'s' if len(layouts) > 1 else ''} "
            f"{', '.join(layouts)}: try --from {layouts[0]}.")


def as_json(items: dict[str, Release] | None = None) -> dict[str, Any]:
    """``{blueprint: release}`` as plain JSON (``spmkit list --json``)."""
    items = releases() if items is None else items
    return {n: r.model_dump(mode="json", exclude_none=True) for n, r in items.items()}

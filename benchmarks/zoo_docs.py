"""docs/zoo.md's tables of every blueprint and of the published weights, generated from the blueprints and their
``release:`` blocks (never kept by hand); ``tests/test_zoo_docs.py`` fails when docs/zoo.md is out of date.

    PYTHONPATH=. python benchmarks/zoo_docs.py --write    # rewrite the generated sections of docs/zoo.md
    PYTHONPATH=. python benchmarks/zoo_docs.py --check    # exit 1 when they differ from what the data gives

Parameters and multiply-accumulates are counted on the ``meta`` device (no memory, no weights, the same on
every machine); the fidelity section is written by ``benchmarks/official_parity.py --write``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.docsection import read_section, section_block, write_section  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "zoo.md"
COMMAND = "PYTHONPATH=. python benchmarks/zoo_docs.py --write"


def _figure(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def reference_text(reference: dict[str, Any]) -> str:
    """The blueprint's own reference figures, as written in its file (``-`` when it has none)."""
    return "; ".join(f"{k} {_figure(v)}" for k, v in reference.items() if v is not None) or "-"


def models_body() -> str:
    """Every builtin blueprint: input, parameters and GMACs counted here, its own reference figures, and the
    release it reproduces with the published top-1 of its weights."""
    import spmkit
    from spmkit.blueprint import builtin_dir
    from spmkit.builder import build_model
    from spmkit.profile.flops import count_flops

    lines = ["| blueprint | family | input | params | GMACs | reference (own figures) | release (code, layout) "
             "| published top-1 |",
             "| --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    root = builtin_dir()
    for name, path in spmkit.list_blueprints().items():
        bp = spmkit.load_blueprint(name)
        model = build_model(bp, device="meta")
        params = sum(p.numel() for p in model.parameters())
        macs = count_flops(model, (1, bp.in_chans, *bp.image_size)).macs / 1e9
        family = path.parent.relative_to(root).as_posix() if path.parent != root else "-"
        release, top1 = "-", "-"
        if bp.release is not None:
            code = bp.release.code
            release = f"{code.repo} `{code.file}` {code.model} (`{bp.release.layout}`)"
            top1 = ", ".join(f"{w.tag} {w.metrics['top1']}{' (EMA)' if w.ema else ''}"
                             for w in bp.release.weights if "top1" in w.metrics) or "no published weights"
        h, w = bp.image_size
        lines.append(f"| `{name}` | {family} | {h}x{w} | {params:,} | {macs:.3f} | {reference_text(bp.reference)} "
                     f"| {release} | {top1} |")
    return "\n".join([
        f"Generated from the blueprints by `{COMMAND}`; params and GMACs (multiply-accumulates, "
        "`spmkit.profile.flops.count_flops`, attention included) are counted on the `meta` device at the "
        "blueprint's input size. The reference column holds each file's own figures (`extends` passes none "
        "on): `params` counted from the official code, `paper_*` and `gmacs` as published, `timm` the timm "
        "model of equal parameters.", "", *lines])


def weights_body() -> str:
    """Every published checkpoint the blueprints name, with where it is published and how it converts."""
    from spmkit.blueprint.zoo import convert_command, metrics_text, releases, weights_rows

    items = releases()
    lines = ["| blueprint | weights | published at | listed at | convert | published (evaluation) | dense |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, release, w in weights_rows(items):
        where = f"hub `{w.hf_hub_id}`" if w.hf_hub_id else w.url
        listed = w.listed_at or "-"
        lines.append(f"| `{name}` | {w.tag} (`{release.layout_of(w)}`) | {where} | {listed} "
                     f"| `{convert_command(name, release, w)}` | {metrics_text(w)} | {'; '.join(w.dense) or '-'} |")
    without = [f"`{n}` ({r.code.repo} `{r.code.file}`)" for n, r in items.items() if not r.weights]
    tail = [f"Blueprints of an official model without published weights: {', '.join(without)}; "
            "state_dicts of that code (e.g. from your own training) convert the same way."] if without else []
    return "\n".join([
        f"Generated from the blueprints' `release:` blocks by `{COMMAND}` (`spmkit list` shows the same). "
        "Published figures are the releases' own, at the evaluation settings given (ImageNet-1k val: resize "
        "to size / crop_pct, center crop); they were not re-measured here (no ImageNet in this environment).",
        "", *lines, "", *tail])


SECTIONS = {
    "zoo_models": ("Every blueprint (generated)", models_body),
    "zoo_weights": ("Published weights (generated)", weights_body),
}


def stale_sections(doc: Path = DOC) -> list[str]:
    """Keys of the generated sections whose text in ``doc`` differs from what the data gives now."""
    return [key for key, (title, body) in SECTIONS.items()
            if read_section(key, doc) != section_block(title, body())]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the generated sections of docs/zoo.md")
    mode.add_argument("--check", action="store_true", help="exit 1 when docs/zoo.md is out of date")
    args = ap.parse_args(argv)
    if args.check:
        stale = stale_sections()
        if stale:
            print(f"docs/zoo.md is out of date ({', '.join(stale)}): run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    for key, (title, body) in SECTIONS.items():
        text = body()
        if args.write:
            write_section(key, title, text, DOC)
        else:
            print(f"## {title}\n\n{text}\n")
    if args.write:
        print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Builtin recipe files: ``spmkit train --recipe NAME`` finds ``NAME.yaml`` here."""

from __future__ import annotations

from pathlib import Path

RECIPES_DIR = Path(__file__).resolve().parent


def list_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted(RECIPES_DIR.glob("*.yaml"))}

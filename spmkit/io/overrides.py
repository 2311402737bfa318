"""``KEY=VALUE`` overrides (``--set``), shared by blueprints and recipes."""

from __future__ import annotations

from typing import Any

from spmkit.errors import shorten
from spmkit.io.safe_yaml import YamlSyntaxError, load_yaml


def split_override(text: str, empty: Any = "") -> tuple[str, Any]:
    """``"stages.2.depth=4"`` -> (``"stages.2.depth"``, 4). The value is read as YAML (``null``, ``[3, 5]``,
    ``1e-3``); text that is not valid YAML stays text; a blank value gives ``empty``. Raises ``ValueError``
    when there is no ``=``, and ``spmkit.io.safe_yaml.YamlInputError`` for a value over the YAML size bounds."""
    if "=" not in text:
        raise ValueError(text)
    key, raw = text.split("=", 1)
    if not raw.strip():
        return key.strip(), empty
    try:
        return key.strip(), load_yaml(raw, f"--set {shorten(key.strip(), 100, quote=False)}")
    except YamlSyntaxError:
        return key.strip(), raw

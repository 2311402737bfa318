"""``KEY=VALUE`` overrides (``--set``), shared by blueprints and recipes."""

from __future__ import annotations

from typing import Any

import yaml


def split_override(text: str, empty: Any = "") -> tuple[str, Any]:
    """``"stages.2.depth=4"`` -> (``"stages.2.depth"``, 4). The value is read as YAML (``null``, ``[3, 5]``,
    ``1e-3``); text that is not valid YAML stays text; a blank value gives ``empty``. Raises ``ValueError``
    when there is no ``=``."""
    if "=" not in text:
        raise ValueError(text)
    key, raw = text.split("=", 1)
    if not raw.strip():
        return key.strip(), empty
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError:
        return key.strip(), raw

"""spmkit's own state_dicts (``spmkit convert`` outputs, ``model.state_dict()``, run checkpoints): as they are."""

from __future__ import annotations

from typing import Collection

from spmkit.convert.base import Converter
from spmkit.registry import CONVERTERS


@CONVERTERS.register("spmkit")
class Spmkit(Converter):
    name = "spmkit"
    release = "spmkit (state_dict of an spmkit model)"
    fallback = True

    def detect(self, keys: Collection[str]) -> bool:
        return any(k.startswith(("stem.", "stages.")) for k in keys)

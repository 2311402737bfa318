"""Register builtin blueprints with timm without importing timm (and torch) when spmkit is imported.

If timm is already imported, register now. Otherwise a meta-path finder waits for ``timm.models`` to finish
loading and registers then, so ``import spmkit`` stays fast and ``timm.create_model("spmkit_...")`` works in
either import order.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Sequence

_TARGET = "timm.models"


def _register() -> None:
    from spmkit.factory import register_builtin_blueprints

    register_builtin_blueprints()


class _AfterTimmModels(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; also avoids finding ourselves below
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            _register()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    if _TARGET in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterTimmModels) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterTimmModels())

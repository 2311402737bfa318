"""Tasks the engine trains: each file registers one ``Task`` subclass in ``spmkit.registry.TASKS``."""

from spmkit.registry import import_submodules

import_submodules(__name__, __path__)

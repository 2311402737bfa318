"""Modules of this folder register themselves when the package is imported."""

from spmkit.registry import import_submodules

import_submodules(__name__, __path__)

"""Registered layers components: every module in this folder is imported and registers itself."""

from spmkit.registry import import_submodules

import_submodules(__name__, __path__)

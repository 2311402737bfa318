"""Unregistered helpers (one concept a file), plus the NORMS and ACTS registrations."""

from spmkit.registry import import_submodules

import_submodules(__name__, __path__)

"""``spmkit visualize``: pictures of what a backbone's stages, mixers and merging layers do.

One file per kind, each registered in ``KINDS`` and declaring the module classes it applies to.
"""

from spmkit.registry import import_submodules
from spmkit.visualize.kind import KINDS, KindNotAvailableError, Options, kinds_for
from spmkit.visualize.run import Result, visualize

import_submodules(__name__, __path__)

__all__ = ["KINDS", "KindNotAvailableError", "Options", "Result", "kinds_for", "visualize"]

"""The task contract (``base``, ``recipe``) and the tasks: one module or folder per task, each registering
one ``Task`` subclass in ``spmkit.registry.TASKS`` (its recipe, data pieces, model wrapper, evaluation,
prediction and drawing); ``dense/`` holds what detection and segmentation share."""

from spmkit.registry import import_submodules

import_submodules(__name__, __path__)

"""``spmkit sweep``: an ablation table in one command: a grid of blueprint (and recipe) overrides, each
variant validated, costed, optionally profiled, trained and evaluated, then tabulated and plotted.

Not to be confused with ``spmkit.profile.resolution``, the profiler's sweep over input resolutions.
"""

from spmkit.sweep.cost import MetaCost, ProfileSettings
from spmkit.sweep.errors import SweepError
from spmkit.sweep.grid import Variant, expand
from spmkit.sweep.runner import SweepOptions, SweepOutcome, run_sweep
from spmkit.sweep.spec import SweepSpec, find_sweep_file, list_sweeps, load_sweep_file, parse_vary

__all__ = ["MetaCost", "ProfileSettings", "SweepError", "SweepOptions", "SweepOutcome", "SweepSpec", "Variant",
           "expand", "find_sweep_file", "list_sweeps", "load_sweep_file", "parse_vary", "run_sweep"]

"""Run timm's ``train.py`` with spmkit's posterize fix (used by ``benchmarks/train_vs_timm_script.py``).

timm's RandAugment ``rand-m9-mstd0.5-inc1`` can ask Pillow to posterize with 0 bits kept, which today's
Pillow refuses (``ValueError``), so timm's ``train.py`` stops at random. spmkit's own pipeline uses
:func:`spmkit.data.posterize.posterize` (a black image, as older Pillow gave); this wrapper gives timm's
script the same function, then runs the script unchanged::

    python benchmarks/timm_train_patched.py PATH/train.py [train.py arguments ...]
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def patch_timm_posterize() -> int:
    """Swap timm's ``posterize`` for spmkit's in timm's op table; returns the number of entries swapped."""
    from timm.data import auto_augment as aa

    from spmkit.data.posterize import posterize

    original = aa.posterize
    swapped = 0
    for name, fn in list(aa.NAME_TO_OP.items()):
        if fn is original:
            aa.NAME_TO_OP[name] = posterize
            swapped += 1
    aa.posterize = posterize
    return swapped


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: timm_train_patched.py PATH/train.py [arguments ...]")
    script = sys.argv[1]
    patch_timm_posterize()
    sys.argv = [script, *sys.argv[2:]]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()

"""Loading weights: official releases, timm and spmkit checkpoints, each layout one registered converter.

``load_weights(model, path)`` reads a checkpoint (wrappers and ``module.`` prefixes removed), detects its
layout from the keys, converts it to spmkit's names and loads it strictly. Layouts: ``spmkit.registry.
CONVERTERS`` (one file each in ``layouts/``; see ``spmkit.convert.base`` for the contract). The loading
machinery (``reader``, ``load``, ``pretrained``, ``init_weights``) lives here, apart from the layouts.
"""

import spmkit.convert.layouts  # noqa: F401  (each release layout registers itself in CONVERTERS)
from spmkit.convert.load import LoadReport, convert_state_dict, converter_names, detect_layout, load_weights
from spmkit.convert.reader import load_state_dict_file, read_checkpoint, unwrap_state_dict
from spmkit.convert.layouts.timm import detect_family, timm_state_dict_to_spmkit


def load_timm_weights(model, source, family=None, strict: bool = False) -> LoadReport:
    """timm weights into an spmkit model (``load_weights`` with layout ``timm``); kept for existing callers."""
    if family is not None and not isinstance(source, dict):
        source = read_checkpoint(source)
    if family is not None:
        source = timm_state_dict_to_spmkit(source, family)
        return load_weights(model, source, from_="spmkit", strict=strict)
    return load_weights(model, source, from_="timm", strict=strict)


__all__ = ["LoadReport", "convert_state_dict", "converter_names", "detect_family", "detect_layout",
           "load_state_dict_file", "load_timm_weights", "load_weights", "read_checkpoint",
           "timm_state_dict_to_spmkit", "unwrap_state_dict"]

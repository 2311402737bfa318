"""Loading weights from timm and spmkit checkpoints."""

from spmkit.convert.checkpoint import load_state_dict_file
from spmkit.convert.timm import LoadReport, detect_family, load_timm_weights, timm_state_dict_to_spmkit

__all__ = ["LoadReport", "detect_family", "load_state_dict_file", "load_timm_weights", "timm_state_dict_to_spmkit"]

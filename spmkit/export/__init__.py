"""Deploying a model: export to ONNX or an ExportedProgram and check the file against eager PyTorch."""

from spmkit.export.exporter import FORMATS, ExportError, ExportReport, export_model, onnx_has_dynamo_exporter
from spmkit.export.model_source import ExportSource, load_source

__all__ = ["FORMATS", "ExportError", "ExportReport", "ExportSource", "export_model", "load_source",
           "onnx_has_dynamo_exporter"]

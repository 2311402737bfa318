"""Export a model to ONNX or a ``torch.export`` ExportedProgram, then run the file against eager PyTorch.

The check runs the written file, not the in-memory graph: onnxruntime for ONNX (the ``onnx`` extra; without
it the file is written and reported as unchecked), ``torch.export.load`` for an ExportedProgram. With a
dynamic batch the check uses a batch size other than the export's, so a graph specialised on the batch
fails it.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import io
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import torch

from spmkit.errors import SpmkitError
from spmkit.export.model_source import ExportSource, load_source

Format = Literal["onnx", "exported-program"]
FORMATS: tuple[str, ...] = ("onnx", "exported-program")
EXPORT_BATCH = 2
CHECK_BATCH = 3  # with --dynamic-batch: a size the graph was not traced at

#: ops that an exporter may not translate -> why, and which builtin components use them
OP_LIMITS: dict[str, str] = {
    "deform_conv2d": "the exporter has no translation of deform_conv2d, which the dtm merging layer uses (LIT's "
                     "deformable token merging: lit_*, pvt_tiny_dtm, tiny_lit, tiny_pvt_ablations)",
    "adaptive_avg_pool2d": "the exporter translates adaptive_avg_pool2d only when the output grid divides the "
                           "input map, and the glmix mixer (GLNet) pools each stage map to its slot grid: use an "
                           "--input-size whose stage maps are multiples of it (the blueprint's img_size is)",
}


class ExportError(SpmkitError):
    """The model cannot be exported in the requested format, or the file does not match eager PyTorch."""

    exit_code = 1


@dataclass
class ExportReport:
    name: str
    path: Path
    format: str
    exporter: str  # "torch.export", "torch.onnx (dynamo)" or "torch.onnx (TorchScript)"
    input_shape: tuple[int, int, int, int]  # the traced input (B, C, H, W)
    dynamic_batch: bool
    check_batch: int
    checked_with: str | None  # None: the file was not run (onnxruntime missing)
    max_abs_diff: float | None
    atol: float
    export_seconds: float
    opset: int | None


def onnx_has_dynamo_exporter() -> bool:
    """Whether ``torch.onnx.export`` takes ``dynamo=`` (the torch.export-based exporter)."""
    return "dynamo" in inspect.signature(torch.onnx.export).parameters


def export_model(
    source: str | Path,
    output: str | Path,
    *,
    fmt: Format = "onnx",
    dynamic_batch: bool = False,
    input_size: tuple[int, int] | None = None,
    opset: int | None = None,
    dynamo: bool = True,
    atol: float = 1e-4,
    overrides: Sequence[str] = (),
    seed: int = 0,
    force: bool = False,
) -> ExportReport:
    """Export ``source`` (blueprint name/YAML or run checkpoint) to ``output``, re-run the file on a random
    input and compare with eager PyTorch. Raises ``ExportError`` (one paragraph) when the export fails or
    the largest absolute difference exceeds ``atol``. The file is exported and checked under a temporary name
    and only then moved onto ``output``: a failed or mismatching export leaves nothing (and any previous
    file) behind. ``output`` is never the source; an existing file ``spmkit export`` did not write is replaced
    only with ``force`` (see ``spmkit.io.output_paths``)."""
    from spmkit.io.output_paths import Outputs

    if fmt not in FORMATS:
        raise SpmkitError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    outs = Outputs("export", inputs=[source if Path(str(source)).exists() else None], force=force)
    output = outs.claim(output, "--output")
    if opset is not None and fmt != "onnx":
        raise SpmkitError("--opset applies to --format onnx only.")
    if fmt == "onnx" and dynamo and not onnx_has_dynamo_exporter():
        raise SpmkitError(f"torch {torch.__version__} has no dynamo ONNX exporter (torch.onnx.export(dynamo=True)); "
                          f"use --no-dynamo for the TorchScript exporter.")
    if fmt == "onnx" and dynamo:
        _require("onnxscript", "the dynamo ONNX exporter")
    src = load_source(source, overrides)
    h, w = input_size or src.img_size
    if h < 1 or w < 1:
        raise SpmkitError(f"--input-size must be positive, got {h} {w}.")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(EXPORT_BATCH, src.in_chans, h, w, generator=gen)
    check_batch = CHECK_BATCH if dynamic_batch else EXPORT_BATCH
    x_check = torch.randn(check_batch, src.in_chans, h, w, generator=gen)
    with torch.no_grad():
        ref = src.model(x_check)
    exporter = "torch.export" if fmt == "exported-program" else f"torch.onnx ({'dynamo' if dynamo else 'TorchScript'})"
    with outs, outs.path(output) as tmp:  # moved onto ``output`` only if everything below succeeds
        t0 = time.perf_counter()
        try:
            with _quiet():
                if fmt == "exported-program":
                    _export_program(src, x, tmp, dynamic_batch)
                elif dynamo:
                    _export_onnx_dynamo(src, x, tmp, dynamic_batch, opset)
                else:
                    _export_onnx_torchscript(src, x, tmp, dynamic_batch, opset)
        except SpmkitError:
            raise
        except Exception as err:  # noqa: BLE001 - any exporter failure becomes one paragraph naming the cause
            disk = err if isinstance(err, OSError) else err.__cause__ or err.__context__
            if isinstance(disk, OSError) and disk.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
                from spmkit.io.atomic import write_error  # the disk, not the model: exit 2, nothing written

                raise write_error(output, disk, kept=output.exists()) from None
            raise ExportError(_explain(err, src, exporter, fmt)) from None
        seconds = time.perf_counter() - t0
        out, checked_with = _run_file(tmp, fmt, x_check)
        report = ExportReport(src.name, output, fmt, exporter, tuple(x.shape), dynamic_batch, check_batch,
                              checked_with, None, atol, seconds, opset)
        if out is not None:
            if out.shape != ref.shape:
                raise ExportError(f"{src.name} exported with {exporter}, but the file gives an output of shape "
                                  f"{tuple(out.shape)} for a batch of {check_batch} where eager PyTorch gives "
                                  f"{tuple(ref.shape)}; nothing was written to {output}.")
            diff = (out.float() - ref.float()).abs().max().item()
            report.max_abs_diff = diff
            if not diff <= atol:  # also NaN
                raise ExportError(
                    f"{src.name} exported with {exporter}, but the file differs from eager PyTorch by up to "
                    f"{diff:.3g} (max absolute difference, {checked_with}, a random batch of {check_batch} at "
                    f"{h}x{w}), more than the tolerance {atol:g}; nothing was written to {output}. Raise --atol "
                    f"if this difference is acceptable, or try the other exporter "
                    f"({'--no-dynamo' if dynamo else '--dynamo'} / --format exported-program).")
    return report


def _require(module: str, what: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise SpmkitError(f"{what} needs the {module} package: pip install 'spmkit[onnx]'.") from None


@contextlib.contextmanager
def _quiet():
    """Exporters print progress, warnings and (the TorchScript one, from C++) whole graphs; the command
    reports its own result."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()), _fd_to_devnull(1), _fd_to_devnull(2):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _fd_to_devnull(fd: int):
    try:
        saved = os.dup(fd)
    except OSError:  # no such descriptor (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _batch_dim() -> torch.export.Dim:
    return torch.export.Dim("batch", min=1, max=65536)


def _export_program(src: ExportSource, x: torch.Tensor, output: Path, dynamic_batch: bool) -> None:
    shapes = ({0: _batch_dim()},) if dynamic_batch else None
    ep = torch.export.export(src.model, (x,), dynamic_shapes=shapes)
    torch.export.save(ep, str(output))


def _export_onnx_dynamo(src: ExportSource, x: torch.Tensor, output: Path, dynamic_batch: bool,
                        opset: int | None) -> None:
    kwargs = {"opset_version": opset} if opset is not None else {}
    shapes = ({0: _batch_dim()},) if dynamic_batch else None
    program = torch.onnx.export(src.model, (x,), dynamo=True, dynamic_shapes=shapes, input_names=["input"],
                                output_names=["output"], verbose=False, **kwargs)
    program.save(str(output))


def _export_onnx_torchscript(src: ExportSource, x: torch.Tensor, output: Path, dynamic_batch: bool,
                             opset: int | None) -> None:
    kwargs = {"dynamo": False} if onnx_has_dynamo_exporter() else {}
    if opset is not None:
        kwargs["opset_version"] = opset
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(src.model, (x,), str(output), input_names=["input"], output_names=["output"],
                      dynamic_axes=axes, **kwargs)


def _run_file(output: Path, fmt: str, x: torch.Tensor) -> tuple[torch.Tensor | None, str | None]:
    """The written file's output for ``x`` and what ran it; (None, None) when onnxruntime is missing."""
    if fmt == "exported-program":
        with _quiet(), torch.no_grad():
            return torch.export.load(str(output)).module()(x), "torch.export.load"
    try:
        import onnxruntime as ort
    except ImportError:
        return None, None
    try:
        session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
        result = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    except Exception as err:  # noqa: BLE001 - a file onnxruntime cannot load or run is the export's failure
        raise ExportError(f"onnxruntime cannot run the exported file ({type(err).__name__}: {_first_line(err)}); "
                          f"nothing was written. Try the other exporter or --format exported-program.") from None
    return torch.from_numpy(result), "onnxruntime"


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(err).__name__


def _explain(err: BaseException, src: ExportSource, exporter: str, fmt: str) -> str:
    """One paragraph: which op (and which component) stopped ``exporter``, and what to do instead."""
    texts, e = [], err
    while e is not None and len(texts) < 8:
        texts.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = "\n".join(texts)
    target = "an ExportedProgram" if fmt == "exported-program" else "ONNX"
    for op, why in OP_LIMITS.items():
        if op in text:
            return (f"cannot export {src.name} to {target} with {exporter}: {why}. Try the other exporter "
                    f"(--dynamo / --no-dynamo) or --format exported-program, which keeps every op.")
    ops = re.findall(r"\b(?:aten|torchvision|prims)(?:::|\.)[A-Za-z0-9_]+", text)
    op_part = f" (first op named: {ops[0]})" if ops else ""
    return (f"cannot export {src.name} to {target} with {exporter}{op_part}: {type(err).__name__}: "
            f"{_first_line(err)}. Try the other exporter (--dynamo / --no-dynamo) or --format exported-program.")

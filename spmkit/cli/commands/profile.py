"""``spmkit profile``: parameters, FLOPs, latency, throughput, training step and memory, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from spmkit.cli.errors import user_errors
from spmkit.cli.options import (AmpOption, BlueprintSetAlias, DeviceOption, DevicesAlias, JsonOption,
                                ModelSetOption, model_overrides, pick_device)

HELP = """Profile blueprints (names or YAML paths) and timm references (timm:MODEL_NAME) side by side.

Every timed measurement runs the entries round-robin, so machine drift hits all alike; the table shows
ratios against the first entry. Latency is the median (and p90) at batch 1, throughput is images/s at
--batch-size, the training step is forward + backward + AdamW step. Peak memory is the growth over the
built model: CUDA max_memory_allocated, or on CPU the peak resident set of a fresh subprocess.
"""


def _sizes(values: list[str]) -> tuple[tuple[int, int], ...]:
    from spmkit.blueprint.schema import MAX_IMG_SIZE
    from spmkit.errors import shorten
    from spmkit.profile.errors import ProfileError

    out = []
    for value in values:
        for part in value.replace(" ", "").split(","):
            if not part:
                continue
            msg = f"input size {shorten(part)}: write 224 or 224x320 (height x width), sides 1 to {MAX_IMG_SIZE}."
            try:
                hw = [int(v) for v in part.lower().split("x")]
            except ValueError:
                raise ProfileError(msg) from None
            if len(hw) not in (1, 2) or min(hw) < 1 or max(hw) > MAX_IMG_SIZE:
                raise ProfileError(msg)
            out.append((hw[0], hw[-1]))
    return tuple(out)


def _mib(v: Optional[int]) -> str:
    return "-" if v is None else f"{v / 2**20:,.1f}"


def _num(v: Optional[float], fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _render(rows: list[dict], breakdown: bool) -> None:
    import shutil

    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(shutil.get_terminal_size((160, 24)).columns, 140))
    dev, batch = rows[0]["device"], rows[0]["batch_size"]
    table = Table(title=f"spmkit profile on {dev}: latency at batch 1, throughput / training / memory at batch "
                        f"{batch}; "
                        "x = ratio to the first entry at the same size")
    cols = [("entry", "left"), ("size", "right"), ("params M", "right"), ("GMACs", "right"), ("lat ms", "right"),
            ("p90", "right"), ("x", "right"), ("img/s", "right"), ("x", "right"), ("train ms", "right"),
            ("x", "right"), ("train img/s", "right"), ("mem MiB", "right"), ("x", "right"), ("train MiB", "right")]
    for col, justify in cols:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(
            r["name"], "x".join(map(str, r["input_size"])), f"{r['params'] / 1e6:.2f}", f"{r['gmacs']:.3f}",
            f"{r['latency_ms']:.2f}", f"{r['latency_p90_ms']:.2f}", _num(r["latency_ms_ratio"], ".2f"),
            f"{r['throughput']:.1f}", _num(r["throughput_ratio"], ".2f"), _num(r["train_step_ms"], ".1f"),
            _num(r["train_step_ms_ratio"], ".2f"), _num(r["train_throughput"], ".1f"), _mib(r["peak_memory_bytes"]),
            _num(r["peak_memory_bytes_ratio"], ".2f"), _mib(r["train_peak_memory_bytes"]))
    console.print(table)
    if breakdown:
        for r in rows:
            sub = Table(title=f"{r['name']} at {'x'.join(map(str, r['input_size']))}: per module (batch 1, "
                              "inclusive times from forward hooks)")
            for col in ("module", "kind", "n", "params M", "GMACs", "ms (median)"):
                sub.add_column(col, justify="left" if col in ("module", "kind") else "right")
            for b in r["breakdown"]:
                indent = "  " if b["kind"] in ("merging", "mixer", "mlp", "pos_embed") and "." in b["module"] else ""
                sub.add_row(indent + b["module"], b["kind"], str(b["count"]), f"{b['params'] / 1e6:.3f}",
                            f"{b['flops'] / 2e9:.4f}", _num(b["time_ms"], ".2f"))
            console.print(sub)


def register(app: typer.Typer) -> None:
    @app.command("profile", help=HELP)
    @user_errors
    def profile(
        entries: Annotated[list[str], typer.Argument(help="Blueprint names/paths, or timm:MODEL_NAME.")],
        model_set: ModelSetOption = None,
        set_: BlueprintSetAlias = None,
        variant: Annotated[Optional[list[str]], typer.Option(
            "--variant", help="Add, for each blueprint, a variant with these overrides: "
                              "'merging.type=spm;stages.2.depth=4'. Repeatable.")] = None,
        device: DeviceOption = None,
        devices: DevicesAlias = None,
        batch_size: Annotated[int, typer.Option(
            min=1, max=4096, help="Batch for throughput, training step and memory.")] = 8,
        input_size: Annotated[Optional[list[str]], typer.Option(
            help="Input size(s): 224, 224x320, or 224,384. Default: each entry's own size.")] = None,
        amp: AmpOption = None,
        channels_last: Annotated[bool, typer.Option(help="Model and input in channels-last layout.")] = False,
        compile: Annotated[bool, typer.Option(help="torch.compile each model (warm-up includes compiling).")] = False,
        threads: Annotated[Optional[int], typer.Option(
            min=1, max=4096, help="torch.set_num_threads for CPU runs.")] = None,
        warmup: Annotated[int, typer.Option(min=0, max=10000, help="Untimed calls per entry and measurement.")] = 3,
        repeats: Annotated[int, typer.Option(min=1, max=100000, help="Timed calls per entry and measurement.")] = 20,
        max_seconds: Annotated[Optional[float], typer.Option(min=0.0, max=86400.0,
            help="Stop repeating a measurement after this many timed seconds (all entries; at least 5 "
                 "rounds). 0: always --repeats.")] = 60.0,
        train: Annotated[bool, typer.Option(help="Time a training step (forward, backward, AdamW).")] = True,
        memory: Annotated[bool, typer.Option(help="Measure peak memory (CPU: in a fresh subprocess).")] = True,
        breakdown: Annotated[bool, typer.Option(help="Per-module table: stages, merging, mixers, MLPs.")] = False,
        trace: Annotated[Optional[Path], typer.Option(
            help="Write torch.profiler traces (TensorBoard + Chrome JSON) to this folder.")] = None,
        sweep_resolution: Annotated[Optional[str], typer.Option(
            help="Sweep square input sizes, e.g. 224,384,512,768,1024 (inference; writes --plot).")] = None,
        plot: Annotated[Path, typer.Option(help="PNG written by --sweep-resolution.")] = Path("profile-sweep.png"),
        json_output: JsonOption = False,
        csv: Annotated[Optional[Path], typer.Option(help="Write the rows as CSV to this file ('-': stdout).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace --csv / --plot / trace files even if spmkit "
                                                         "profile did not write them.")] = False,
    ) -> None:
        import sys

        from spmkit.profile import ProfileConfig, profile_entries, resolve_entries
        from spmkit.profile.errors import ProfileError
        from spmkit.profile.report import result_rows, to_csv, to_json

        from spmkit.profile.steps import check_device

        device = pick_device(device, devices, default="cpu")
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        amp = None if amp == "none" else amp
        overrides = model_overrides(model_set, set_)
        check_device(device)  # fail fast, before anything is built
        variants = [[kv.strip() for kv in v.split(";") if kv.strip()] for v in (variant or [])]
        resolved = resolve_entries(entries, tuple(overrides or ()), variants)
        _check_sizes(resolved, device, batch_size, _sizes(input_size or []))
        config = ProfileConfig(device=device, batch_size=batch_size, input_sizes=_sizes(input_size or []), amp=amp,
                               channels_last=channels_last, compile=compile, threads=threads, warmup=warmup,
                               repeats=repeats, max_seconds=max_seconds or None, train=train, memory=memory,
                               breakdown=breakdown)
        quiet = json_output or csv == Path("-")
        from spmkit.io.output_paths import Outputs
        from spmkit.profile.trace import trace_files

        # every file this run writes is checked before anything is measured (spmkit.io.output_paths)
        outs = Outputs("profile", inputs=[e.spec for e in resolved if e.spec and Path(e.spec).is_file()], force=force)
        if csv is not None and csv != Path("-"):
            outs.claim(csv, "--csv")
        if sweep_resolution:
            outs.claim(plot, "--plot")
        for entry in resolved if trace is not None else ():
            for kind in ("inference", "train") if train else ("inference",):
                for path in trace_files(trace, f"{entry.name}-{kind}"):
                    outs.claim(path, "--trace")

        def say(msg: str) -> None:
            if not quiet:
                print(f"[profile] {msg}", file=sys.stderr)

        if sweep_resolution:
            from spmkit.profile.resolution import plot_sweep, sweep_resolution as sweep

            sizes = [s[0] for s in _sizes([sweep_resolution])]
            if not sizes:
                raise ProfileError("--sweep-resolution needs sizes, e.g. 224,384,512.")
            results = sweep(resolved, sizes, config, say)
            png = plot_sweep(results, plot, title=f"spmkit profile --sweep-resolution on {device}", outputs=outs)
            say(f"wrote {png}")
        else:
            results = profile_entries(resolved, config, say)
        if trace is not None:
            _trace(resolved, config, trace, say, outs)
        if csv is not None:
            text = to_csv(results)
            if csv == Path("-"):
                sys.stdout.write(text)
            else:
                with outs:
                    outs.write_text(csv, text)
                say(f"wrote {csv}")
        if json_output:
            print(to_json(results))
        elif csv != Path("-"):
            _render(result_rows(results), breakdown)


def _check_sizes(entries, device: str, batch: int, sizes: tuple[tuple[int, int], ...]) -> None:
    """Refuse, before anything is built, a blueprint whose batch does not fit in the device's memory."""
    import spmkit
    from spmkit.builder import check_fits

    for entry in entries:
        if entry.spec is not None and not entry.spec.startswith("timm:"):
            bp = spmkit.load_blueprint(entry.spec, overrides=entry.overrides)
            for size in sizes or (entry.input_size,):
                check_fits(bp, device, batch=batch, input_size=size)


def _trace(entries, config, out: Path, say, outs) -> None:
    """One inference trace per entry at --batch-size (and a training-step trace unless --no-train)."""
    from spmkit.profile.steps import check_device, inference_call, make_input, prepare_model, train_call
    from spmkit.profile.trace import record_trace

    opts = config.options()
    check_device(opts.device)
    for entry in entries:
        size = config.input_sizes[0] if config.input_sizes else entry.input_size
        model = prepare_model(entry.build(), opts).eval()
        x = make_input(config.batch_size, size, opts, entry.in_chans)
        paths = record_trace(inference_call(model, x, opts), out, f"{entry.name}-inference", device=opts.device,
                             outputs=outs)
        say(f"trace of {entry.name}: {paths['chrome']} and {paths['tensorboard']}/")
        if config.train:
            model.train()
            record_trace(train_call(model, x, opts), out, f"{entry.name}-train", device=opts.device, outputs=outs)
        del model

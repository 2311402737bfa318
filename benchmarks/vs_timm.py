"""Our blueprints against timm's hand-written models, in one interleaved run: inference and training step.

    PYTHONPATH=. python benchmarks/vs_timm.py --device cpu --batch-size 4 --repeats 10 --write

Pairs: spmkit ``swin_t`` vs ``timm:swin_tiny_patch4_window7_224`` and ``pvt_v2_b1`` vs ``timm:pvt_v2_b1``,
with the same drop-path rate, all four models timed round-robin so machine drift hits each alike.
Parameter counts must be identical (the script stops otherwise). Ratio = ours / timm (< 1: we are faster
for times, > 1 for throughput). ``--explain`` adds a torch.profiler operator table per pair (self time of
the top operators) to find *which* op makes one side slower.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

import spmkit  # noqa: E402
from benchmarks.docsection import machine, write_section  # noqa: E402
from spmkit.profile import ProfileConfig, profile_entries, resolve_entry  # noqa: E402

PAIRS = [("swin_t", "swin_tiny_patch4_window7_224"), ("pvt_v2_b1", "pvt_v2_b1")]


def entries_for(ours: str, theirs: str) -> tuple:
    bp = spmkit.load_blueprint(ours)
    mine = resolve_entry(ours, name=f"spmkit {ours}")
    ref = resolve_entry(f"timm:{theirs}", kwargs={"drop_path_rate": float(bp.drop_path_rate or 0.0)},
                        name=f"timm {theirs}")
    n_mine = sum(p.numel() for p in mine.build().parameters())
    n_ref = sum(p.numel() for p in ref.build().parameters())
    if n_mine != n_ref:
        raise SystemExit(f"parameter counts differ: {ours} {n_mine:,} vs timm {theirs} {n_ref:,}")
    return mine, ref


def op_tables(pair: list, batch: int, device: str, iters: int = 3, top: int = 12) -> list[dict[str, float]]:
    """Self time per operator (ms per forward) of each entry's inference, from torch.profiler.

    The entries are profiled alternately, one forward at a time, so load changes hit both alike.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    models = [e.build().to(device).eval() for e in pair]
    x = torch.randn(batch, 3, *pair[0].input_size, device=device)
    totals: list[dict[str, float]] = [{} for _ in pair]
    with torch.inference_mode():
        for m in models:
            m(x)
        for _ in range(iters):
            for m, tot in zip(models, totals):
                with profile(activities=acts) as prof:
                    m(x)
                for ev in prof.key_averages():
                    tot[ev.key] = tot.get(ev.key, 0.0) + getattr(ev, key) / 1e3 / iters
    keys = sorted(set(totals[0]) | set(totals[1]), key=lambda k: -max(t.get(k, 0.0) for t in totals))[:top]
    return [{k: t.get(k, 0.0) for k in keys} for t in totals]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--explain", action="store_true", help="print per-operator self times of each pair")
    ap.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    entries = [e for pair in PAIRS for e in entries_for(*pair)]
    config = ProfileConfig(device=args.device, batch_size=args.batch_size, input_sizes=((224, 224),),
                           warmup=args.warmup, repeats=args.repeats, train=not args.no_train, memory=True,
                           threads=args.threads)
    results = profile_entries(entries, config, progress=lambda m: print(f"[vs_timm] {m}", file=sys.stderr))
    lines = ["| model | params | GMACs | latency b1 ms (p90) | img/s b{0} | train step b{0} ms | peak mem b{0} MiB |"
             .format(args.batch_size), "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratios = ["| pair (ours / timm) | latency b1 | throughput | train step | peak memory |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for i in range(0, len(results), 2):
        for r in results[i:i + 2]:
            train = "-" if r.train_step_ms is None else f"{r.train_step_ms:.1f}"
            mem = "-" if r.peak_memory_bytes is None else f"{r.peak_memory_bytes / 2**20:.1f}"
            lines.append(f"| {r.name} | {r.params:,} | {r.macs / 1e9:.3f} "
                         f"| {r.latency_ms:.1f} ({r.latency_p90_ms:.1f}) "
                         f"| {r.throughput:.1f} | {train} | {mem} |")
        a, b = results[i], results[i + 1]
        tr = "-" if a.train_step_ms is None else f"{a.train_step_ms / b.train_step_ms:.3f}"
        mem = "-"
        if a.peak_memory_bytes and b.peak_memory_bytes:
            mem = f"{a.peak_memory_bytes / b.peak_memory_bytes:.3f}"
        ratios.append(f"| {a.name} / {b.name} | {a.latency_ms / b.latency_ms:.3f} | {a.throughput / b.throughput:.3f} "
                      f"| {tr} | {mem} |")
    cmd = "PYTHONPATH=. python benchmarks/vs_timm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    body = "\n".join([
        f"Command: `{cmd}`", "",
        f"Machine: {machine()}. Device `{args.device}`, input 224x224, warm-up {args.warmup}, "
        f"{results[0].repeats} timed calls per measurement, all four models interleaved in one run.", "",
        *lines, "", *ratios, "",
        "Ratios below 1 for times (above 1 for throughput) mean spmkit is faster. Identical parameter counts are",
        "asserted before timing; both sides use the blueprint's drop-path rate in the training step.",
    ])
    print(body)
    if args.explain:
        body += (f"\n\nPer-operator self time, ms per inference forward at batch {args.batch_size} "
                 "(torch.profiler, the two models of a pair profiled alternately):\n")
        for i in range(0, len(entries), 2):
            ours, theirs = op_tables(entries[i:i + 2], args.batch_size, args.device)
            body += f"\n| operator | {entries[i].name} | {entries[i + 1].name} | ratio |\n"
            body += "| --- | ---: | ---: | ---: |\n"
            for k in ours:
                ratio = f"{ours[k] / theirs[k]:.2f}" if theirs[k] else "-"
                body += f"| `{k}` | {ours[k]:.1f} | {theirs[k]:.1f} | {ratio} |\n"
        print(body[body.index("Per-operator"):])
    if args.write:
        print(f"wrote {write_section('vs_timm', 'spmkit vs timm (benchmarks/vs_timm.py)', body)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The table of every builtin blueprint: parameters, GMACs, latency (and GPU numbers when run on a GPU).

    PYTHONPATH=. python benchmarks/zoo_table.py --device cpu --repeats 5 --write

All full-size blueprints are timed in one interleaved run at their own input size (batch 1 latency; on
CUDA also throughput and peak memory at ``--batch-size``); the tiny test blueprints are left out unless
``--tiny``. Parameters and MACs are counted on the ``meta`` device and do not depend on the machine.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32, help="throughput/memory batch (CUDA only)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--tiny", action="store_true", help="include blueprints/tiny/")
    ap.add_argument("--write", action="store_true", help="write the section into docs/benchmarks.md")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n for n, p in spmkit.list_blueprints().items() if args.tiny or p.parent.name != "tiny"]
    entries = [resolve_entry(n) for n in names]
    cuda = args.device.startswith("cuda")
    # CPU: batch-1 latency only (throughput at batch 1 is 1000 / latency); CUDA: also batch throughput + memory
    config = ProfileConfig(device=args.device, batch_size=args.batch_size if cuda else 1, warmup=args.warmup,
                           repeats=args.repeats, train=False, memory=cuda, threads=args.threads)
    results = profile_entries(entries, config, progress=lambda m: print(f"[zoo] {m}", file=sys.stderr))
    bps = {n: spmkit.load_blueprint(n) for n in names}
    dev = "GPU" if cuda else "CPU"
    head = f"| blueprint | input | params | GMACs | reference params | {dev} latency b1 ms (p90) |"
    sep = "| --- | ---: | ---: | ---: | ---: | ---: |"
    if cuda:
        head += f" img/s b{args.batch_size} | peak mem b{args.batch_size} MiB |"
        sep += " ---: | ---: |"
    lines = [head, sep]
    for r in sorted(results, key=lambda r: r.name):
        ref = bps[r.name].reference
        ref_params = ref.get("params") if isinstance(ref, dict) else getattr(ref, "params", None)
        ref_txt = "-"
        if ref_params is not None:
            ref_txt = f"{ref_params:,}" + (" (equal)" if ref_params == r.params else " (DIFFERS)")
        row = (f"| {r.name} | {r.input_size[0]}x{r.input_size[1]} | {r.params:,} | {r.macs / 1e9:.3f} | {ref_txt} "
               f"| {r.latency_ms:.1f} ({r.latency_p90_ms:.1f}) |")
        if cuda:
            row += f" {r.throughput:.0f} | {(r.peak_memory_bytes or 0) / 2**20:.0f} |"
        lines.append(row)
    cmd = "PYTHONPATH=. python benchmarks/zoo_table.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    key, title = ("zoo_gpu", "Blueprint zoo on GPU (benchmarks/zoo_table.py)") if cuda else \
        ("zoo_cpu", "Blueprint zoo on CPU (benchmarks/zoo_table.py)")
    body = "\n".join([
        f"Command: `{cmd}`", "",
        f"Machine: {machine()}. Latency: median (p90) of {results[0].repeats} timed batch-1 forwards after "
        f"{args.warmup} warm-up call(s), all blueprints interleaved in one run; GMACs counted with attention "
        "(see docs/profile.md).", "",
        *lines,
    ])
    print(body)
    if args.write:
        print(f"wrote {write_section(key, title, body)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Stepwise Patch Merging: spmkit's SPM against the straightforward formulation, in one run.

The straightforward formulation (``tests/spm_reference.py``) computes SPM the way the official code does:
the MSA concatenates its scales one at a time, the GLE projects all 5 window tokens to q, k, v and
computes the full 5x5 attention, then keeps the guide's row. Both modules hold the same weights, so
each measurement also checks that the outputs agree.

    PYTHONPATH=$PWD python benchmarks/spm.py                   # batch 32, CPU, the three PVT stage sizes
    PYTHONPATH=$PWD python benchmarks/spm.py --batch-size 4    # quick run
    PYTHONPATH=$PWD python benchmarks/spm.py --device cuda     # when a GPU is available

Times are the best of ``--repeat`` runs, ours and the reference alternating, after a warm-up (the minimum
is the measurement least disturbed by other processes). Report
the ratios (reference / ours): on a shared machine the absolute times are noisy, the ratios less so.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from spm_reference import ReferenceSPM  # noqa: E402

from spmkit.merging.spm import StepwisePatchMerging  # noqa: E402

#: (in_dim, out_dim, input side): the three SPM layers of PVT v1 at 224x224.
SIZES = [(64, 128, 56), (128, 320, 28), (320, 512, 14)]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or "cpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(fns: dict, repeat: int, device: torch.device, clock=time.perf_counter) -> dict[str, float]:
    """Best (minimum) seconds per call of each function; calls interleaved so that load changes hit all alike."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(repeat):
        for name, fn in fns.items():
            _sync(device)
            t0 = clock()
            fn()
            _sync(device)
            times[name].append(clock() - t0)
    return {k: min(v) for k, v in times.items()}


def bench_size(in_dim: int, out_dim: int, side: int, batch: int, repeat: int, device: torch.device,
               clock=time.perf_counter) -> dict:
    torch.manual_seed(0)
    ours = StepwisePatchMerging(in_dim, out_dim).to(device).train()
    ref = ReferenceSPM(in_dim, out_dim).to(device).train()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(batch, side, side, in_dim, device=device)
    xg = x.clone().requires_grad_(True)

    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()

    def fwd(m):
        def run():
            with torch.no_grad():
                m(x)
        return run

    def fwd_bwd(m):
        def run():
            m(xg).sum().backward()
        return run

    fwd_t = _measure({"ours": fwd(ours), "ref": fwd(ref)}, repeat, device, clock)
    bwd_t = _measure({"ours": fwd_bwd(ours), "ref": fwd_bwd(ref)}, repeat, device, clock)
    return {
        "size": f"{in_dim}->{out_dim} @ {side}x{side}",
        "fwd_ours": fwd_t["ours"], "fwd_ref": fwd_t["ref"],
        "fb_ours": bwd_t["ours"], "fb_ref": bwd_t["ref"],
        "max_abs_diff": diff,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: elapsed time; cpu: this process's CPU time (steadier on a shared machine, "
                         "meaningful with --threads 1)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    print(f"SPM, ours vs straightforward: batch {args.batch_size}, {device.type} ({where}), "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, train mode, float32, "
          f"{args.clock} clock, best of {args.repeat}")
    header = (f"| {'size':<22} | {'fwd ours ms':>11} | {'fwd ref ms':>10} | {'fwd x':>6} | "
              f"{'f+b ours ms':>11} | {'f+b ref ms':>10} | {'f+b x':>6} | {'max abs diff':>12} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for in_dim, out_dim, side in SIZES:
        r = bench_size(in_dim, out_dim, side, args.batch_size, args.repeat, device, clock)
        print(f"| {r['size']:<22} | {r['fwd_ours'] * 1e3:>11.1f} | {r['fwd_ref'] * 1e3:>10.1f} | "
              f"{r['fwd_ref'] / r['fwd_ours']:>5.2f}x | {r['fb_ours'] * 1e3:>11.1f} | {r['fb_ref'] * 1e3:>10.1f} | "
              f"{r['fb_ref'] / r['fb_ours']:>5.2f}x | {r['max_abs_diff']:>12.1e} |", flush=True)


if __name__ == "__main__":
    main()

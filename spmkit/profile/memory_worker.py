"""Subprocess entry: ``python -m spmkit.profile.memory_worker`` < request JSON > result JSON.

Builds one entry in this fresh process and measures CPU peak-RSS growth of one inference call at the
request's batch size, then of one training step, each after one untimed warm-up call and with freed heap
returned to the OS before measuring. See ``spmkit.profile.memory``.
"""

from __future__ import annotations

import json
import sys

import torch


def main() -> None:
    req = json.loads(sys.stdin.read())
    if req.get("threads"):
        torch.set_num_threads(int(req["threads"]))
    from spmkit.profile.entries import resolve_entry
    from spmkit.profile.memory import cpu_peak_growth, release_heap, stats_to_dict
    from spmkit.profile.steps import StepOptions, inference_call, make_input, prepare_model, train_call

    entry = resolve_entry(req["spec"], req.get("overrides", ()), kwargs=req.get("kwargs") or None)
    opts = StepOptions("cpu", req.get("amp"), bool(req.get("channels_last")), False)
    model = prepare_model(entry.build(), opts).eval()
    x = make_input(int(req["batch_size"]), tuple(req["input_size"]), opts)
    infer = inference_call(model, x, opts)
    infer()  # warm-up: one-time allocations (kernel caches, thread pools) are not the model's cost
    result = {"inference": stats_to_dict(cpu_peak_growth(infer)), "train": None}
    if req.get("train"):
        model.train()
        step = train_call(model, x, opts)
        step()  # warm-up; creates the optimizer state, which then counts as resident, not as growth
        result["train"] = stats_to_dict(cpu_peak_growth(step))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

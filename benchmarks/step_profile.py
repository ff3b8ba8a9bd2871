"""Where a training step's time goes: torch's profiler over a few of the Trainer's steps.

Usage: python benchmarks/step_profile.py [--model focol] [--dataset diginetica]
       [--batch-size 512] [--steps 5] [--warmup 3] [--threads 1] [--amp] [--rows 25]
       [--json FILE]
Runs the Trainer's step (collate, `batch_loss`, backward, Adam) as benchmarks/epoch_time.py
does, profiles `--steps` of them after `--warmup`, and prints the operators with the most
self CPU time, FOGCN's numba kernels included (they appear as their autograd nodes). Shares
are of the profiled CPU time, so they hold on a shared machine; seconds do not.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine_line, write_summary
from torch.profiler import ProfilerActivity, profile

from sessionrec.data.batching import batch_indices, collate
from sessionrec.data.sources import load_dataset
from sessionrec.models.registry import create
from sessionrec.training.trainer import adam, batch_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="focol")
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", action="store_true", help="steps under bf16 autocast")
    ap.add_argument("--rows", type=int, default=25, help="operators to print")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads))
    data = load_dataset(args.dataset)
    model = create(args.model, data.num_items, seed=0)
    model.prepare(data)
    net = model.net.train()
    opt = adam(net.parameters(), 1e-3, 1e-5, model.device)
    batches = batch_indices(data.train, args.batch_size, shuffle=True, seed=0)

    def step(idx) -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=args.amp):
            loss = batch_loss(net, collate(data.train, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for idx in batches[: args.warmup]:
        step(idx)
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for idx in batches[args.warmup : args.warmup + args.steps]:
            step(idx)
    seconds = (time.perf_counter() - start) / args.steps
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.model}, batch {args.batch_size}, {'bf16' if args.amp else 'float32'}: "
          f"{seconds:.2f} s per profiled step")  # fmt: skip
    print("| operator | share of self CPU | ms per step | calls per step |\n|---|---|---|---|")
    rows = []
    for e in events[: args.rows]:
        share, ms = e.self_cpu_time_total / total, e.self_cpu_time_total / 1e3 / args.steps
        rows.append({"op": e.key, "share": share, "ms_per_step": ms})
        print(f"| {e.key} | {share:.1%} | {ms:.0f} | {e.count / args.steps:.0f} |")
    write_summary(args.json, {"model": args.model, "step_s": seconds, "ops": rows})


if __name__ == "__main__":
    main()

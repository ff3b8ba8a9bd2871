"""LINet's additive attention: the numba kernels against the torch form, alone and in a step.

Usage: python benchmarks/linet_attention.py [--dataset yoochoose1_64] [--batch-size 512]
       [--shapes 64x64,16x128] [--steps 8] [--rounds 3] [--threads 1] [--json FILE]
First e_ij = vᵀ tanh(a_i + b_j), forward + backward, for groups of `--shapes` sessions ×
clicks (H = 100, every click real); then the Trainer's step of LINet (collate,
`batch_loss`, backward, Adam) on uniform batches, backends alternating by round after one
warm-up round of each. Prints median wall and process-CPU seconds; on a shared machine only
the ratios mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from common import machine_line, write_summary
from length_groups import alternate

from sessionrec.data.batching import batch_indices
from sessionrec.data.sources import load_dataset
from sessionrec.models.linet import additive_logits
from sessionrec.models.registry import create
from sessionrec.training.trainer import adam

BACKENDS = ("torch", "numba")


def time_logits(sessions: int, width: int, rounds: int) -> dict:
    """Median seconds of one forward + backward of additive_logits per backend."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(sessions, width, 100, generator=g).requires_grad_() for _ in range(2))
    v = torch.randn(100, generator=g).requires_grad_()
    mask = torch.ones(sessions, width, dtype=torch.bool)
    times: dict[str, list[float]] = {name: [] for name in BACKENDS}
    for r in range(rounds + 1):
        for name in BACKENDS:
            start = time.perf_counter()
            additive_logits(a, b, v, mask, name).sum().backward()
            if r:  # round 0 warms up (and compiles)
                times[name].append(time.perf_counter() - start)
    row = {f"{name}_s": statistics.median(t) for name, t in times.items()}
    print(
        f"e_ij, {sessions} sessions x {width} clicks: torch {row['torch_s']:.3f} s, "
        f"numba {row['numba_s']:.3f} s ({row['torch_s'] / row['numba_s']:.2f}x)"
    )
    return row


def time_training(data, args: argparse.Namespace) -> dict:
    """Per-step seconds of LINet's training step with each backend, alternating rounds."""
    model = create("linet", data.num_items, seed=0)
    model.prepare(data)
    net = model.net.train()
    opt = adam(net.parameters(), 1e-3, 0.0, model.device)
    batches = batch_indices(data.train, args.batch_size, shuffle=True, seed=0)
    modes = {name: partial(setattr, net.local, "backend", name) for name in BACKENDS}
    row = alternate(modes, net, opt, data, batches, args)
    row["cpu_speedup"] = row["torch_cpu_s"] / row["numba_cpu_s"]
    print(
        f"LINet step, {data.name}, batch {args.batch_size}: torch {row['torch_wall_s']:.3f} s "
        f"wall {row['torch_cpu_s']:.3f} CPU; numba {row['numba_wall_s']:.3f} wall "
        f"{row['numba_cpu_s']:.3f} CPU; {row['cpu_speedup']:.2f}x "
        f"(CPU, medians of {args.rounds} rounds of {args.steps})"
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="yoochoose1_64")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--shapes", default="64x64,16x128", help="sessions x clicks, comma-separated")
    ap.add_argument("--steps", type=int, default=8, help="training steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds of each")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads))
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]
    kernels = {f"{s}x{w}": time_logits(s, w, args.rounds) for s, w in shapes}
    step = time_training(load_dataset(args.dataset), args)
    write_summary(args.json, {"dataset": args.dataset, "logits": kernels, "step": step})


if __name__ == "__main__":
    main()

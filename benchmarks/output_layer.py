"""The full-softmax output layer, forward + backward: plain logits + cross-entropy against the
blocked `linear_cross_entropy` that every full-softmax model trains with on a CPU.

Usage: python benchmarks/output_layer.py [--items 43098] [--dim 100] [--batch-sizes 100,512]
       [--repeats 20] [--threads 1] [--amp] [--json FILE]
The two forms run alternately in one process, so a busy machine slows both alike; compare the
ratio, not the milliseconds, across machines. `--amp` runs both under bf16 autocast (where
the CPU has native bf16, `training.config.native_bf16`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import machine_line, write_summary

from sessionrec.models.layers import linear_cross_entropy, score_all_items


def plain(h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(score_all_items(h, table), targets)


def time_forms(batch: int, items: int, dim: int, repeats: int, amp: bool) -> dict[str, float]:
    """Median milliseconds of one forward + backward per form."""
    g = torch.Generator().manual_seed(0)
    table = (torch.randn(items, dim, generator=g) * 0.1).requires_grad_()
    h = torch.randn(batch, dim, generator=g).requires_grad_()
    targets = torch.randint(1, items, (batch,), generator=g)
    forms = {"plain": plain, "blocked": linear_cross_entropy}
    times: dict[str, list[float]] = {name: [] for name in forms}
    for r in range(repeats + 1):  # the first round warms up
        for name, form in forms.items():
            start = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=amp):
                loss = form(h, table, targets)
            loss.backward()
            if r:
                times[name].append(time.perf_counter() - start)
            h.grad = table.grad = None
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=43098, help="rows (Diginetica: 43,097 + pad)")
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--batch-sizes", default="100,512")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--amp", action="store_true", help="both forms under bf16 autocast")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads))
    print(f"{args.items:,} items × {args.dim}, {'bf16 autocast' if args.amp else 'float32'}")
    print("| batch | plain ms | blocked ms | speed-up |\n|---|---|---|---|")
    summary = {}
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        ms = time_forms(batch, args.items, args.dim, args.repeats, args.amp)
        ratio = ms["plain"] / ms["blocked"]
        summary[str(batch)] = {**ms, "speedup": ratio}
        print(f"| {batch} | {ms['plain']:.1f} | {ms['blocked']:.1f} | {ratio:.2f}× |", flush=True)
    write_summary(args.json, summary)


if __name__ == "__main__":
    main()

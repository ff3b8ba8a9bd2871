"""FOG build and FOGCN cost on a real benchmark: build time and size, 3-layer forward+backward.

Usage: python benchmarks/fogcn.py [--dataset diginetica] [--layers 3] [--dim 100] [--repeats 3]
Prints medians; run with the machine otherwise idle for comparable figures.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from sessionrec.data.dataset import load_dataset
from sessionrec.graph.fog import build_fog
from sessionrec.graph.fogcn import FOGOperator, fogcn


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="diginetica")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-distance", type=int, default=None)
    parser.add_argument("--alpha", default="normalized,softmax")
    args = parser.parse_args()

    data = load_dataset(args.dataset)
    t = time.perf_counter()
    fog = build_fog(data.train_sessions, data.num_items + 1, args.max_distance)
    build_s = time.perf_counter() - t
    nbytes = sum(
        getattr(fog, k).nbytes for k in ("src", "dst", "entry_edge", "entry_slot", "entry_count")
    )
    print(
        f"dataset {args.dataset}: L = {fog.max_distance}, {fog.num_edges:,} edges, "
        f"{len(fog.entry_count):,} non-zero slots, {int((fog.src == fog.dst).sum()):,} self-loops"
    )
    print(
        f"FOG build: {build_s:.2f} s, sparse size {nbytes / 2**20:.0f} MiB "
        f"(a dense E x 2L float32 tensor would be "
        f"{fog.num_edges * 2 * fog.max_distance * 4 / 2**30:.2f} GiB)"
    )
    t = time.perf_counter()
    op = FOGOperator(fog)
    print(f"operator build: {time.perf_counter() - t:.2f} s; threads {torch.get_num_threads()}")
    torch.manual_seed(0)
    e0 = torch.randn(fog.num_nodes, args.dim, requires_grad=True)
    for alpha in args.alpha.split(","):
        ps = [
            torch.ones(2 * fog.max_distance, args.dim, requires_grad=True)
            for _ in range(args.layers)
        ]
        fwd, total = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            out = fogcn(e0, ps, op, alpha)
            fwd.append(time.perf_counter() - t)
            out.square().mean().backward()
            total.append(time.perf_counter() - t)
        print(
            f"alpha={alpha}: {args.layers} layers forward {statistics.median(fwd):.2f} s, "
            f"forward+backward {statistics.median(total):.2f} s (median of {args.repeats}); "
            f"peak RSS so far {peak_rss_gb():.2f} GiB"
        )


if __name__ == "__main__":
    main()

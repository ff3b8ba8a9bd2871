"""FOG build and FOGCN cost on a real benchmark: build time and size, 3-layer forward+backward.

Usage: python benchmarks/fogcn.py [--dataset diginetica] [--layers 3] [--dim 100] [--repeats 5]
       [--threads 2] [--alpha normalized,softmax] [--torch] [--bounds]
Times the numba kernels (the CPU default) for each α variant; `--torch` also times the torch
fallback afterwards (its peak RSS then includes the numba runs). `--bounds` times one
normalized forward layer as built and on two altered graphs that bound what a lever can gain:
every gather to one row (perfect locality: a relabelling or smaller rows gain less) and each
group's weight vector cut to one slot (cheaper s_g sums); the altered outputs are discarded.
Prints medians of wall time and of process CPU time (CPU ≈ threads × wall on an idle machine;
less means the cores were shared), with the load average; run with the machine otherwise idle
for comparable figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from common import peak_rss_gb, write_summary

from sessionrec.data.sources import load_dataset
from sessionrec.graph.fog import build_fog
from sessionrec.graph.fogcn import FOGOperator, _kernels, fogcn, numba_available


def time_fogcn(
    e0: torch.Tensor, op: FOGOperator, alpha: str, backend: str, layers: int, repeats: int
) -> tuple[float, float, float]:
    """Median forward, forward+backward wall seconds and forward+backward CPU seconds."""
    width, dim = op.width, e0.shape[1]
    ps = [torch.ones(width, dim, requires_grad=True) for _ in range(layers)]
    fwd, total, cpu = [], [], []
    for r in range(repeats + 1):  # the first run warms up (numba cache load, buffers)
        e0.grad = None
        t, c = time.perf_counter(), time.process_time()
        out = fogcn(e0, ps, op, alpha, backend=backend)
        f = time.perf_counter() - t
        out.square().mean().backward()
        if r:
            fwd.append(f)
            total.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return statistics.median(fwd), statistics.median(total), statistics.median(cpu)


def time_bounds(op: FOGOperator, dim: int, repeats: int) -> dict[str, float]:
    """Median seconds of one normalized forward layer on the graph as built and altered."""
    kernels = _kernels()
    arrays = op.kernel_graph().incoming.arrays()
    node_ptr, group_ptr, mult, vec_ptr, vec_slot, vec_count, member, chunk_ptr = arrays
    first = vec_ptr[:-1]
    graphs = {
        "as built": arrays,
        "gathers to one row": (*arrays[:6], np.zeros_like(member), chunk_ptr),
        "one slot per group": (
            node_ptr, group_ptr, mult, np.arange(len(vec_ptr), dtype=vec_ptr.dtype),
            vec_slot[first].copy(), vec_count[first].copy(), member, chunk_ptr,
        ),
    }  # fmt: skip
    h = np.random.default_rng(0).standard_normal((op.num_nodes, dim)).astype(np.float32)
    q = np.full((op.width, dim), 1.0 / op.width, np.float32)
    out, den = np.empty_like(h), np.empty_like(h)
    threads = torch.get_num_threads()
    scratch, counter = np.empty((threads, dim), np.float32), np.zeros(1, np.int64)
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for r in range(repeats + 1):  # interleaved, so a busy machine slows all alike
        for name, groups in graphs.items():
            t = time.perf_counter()
            kernels.normalized_forward(h, q, groups, counter, scratch, out, den)
            if r:
                times[name].append(time.perf_counter() - t)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="diginetica")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-distance", type=int, default=None)
    parser.add_argument("--alpha", default="normalized,softmax")
    parser.add_argument("--torch", action="store_true", help="also time the torch fallback")
    parser.add_argument("--bounds", action="store_true", help="time the lever bounds too")
    parser.add_argument("--json", help="also write the figures here (used by run_all.py)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

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
    print(f"operator: {time.perf_counter() - t:.2f} s; threads {torch.get_num_threads()}")
    backends = (["numba"] if numba_available() else []) + (["torch"] if args.torch else [])
    if "numba" in backends:
        t = time.perf_counter()
        graph = op.kernel_graph()
        print(
            f"numba edge groups: {time.perf_counter() - t:.2f} s, "
            f"{len(graph.incoming.group_mult):,} (destination, weight vector) groups"
        )
    else:
        print("numba is not installed: timing the torch path")
        backends = ["torch"]
    summary: dict = {
        "dataset": args.dataset,
        "max_distance": fog.max_distance,
        "edges": fog.num_edges,
        "build_s": build_s,
        "layers": args.layers,
        "threads": args.threads,
    }
    torch.manual_seed(0)
    e0 = torch.randn(fog.num_nodes, args.dim, requires_grad=True)
    for backend in backends:
        for alpha in args.alpha.split(","):
            fwd, total, cpu = time_fogcn(e0, op, alpha, backend, args.layers, args.repeats)
            summary[f"{backend}_{alpha}"] = {"forward_s": fwd, "fwd_bwd_s": total, "cpu_s": cpu}
            print(
                f"{backend} alpha={alpha}: {args.layers} layers forward {fwd:.2f} s, "
                f"forward+backward {total:.2f} s wall, {cpu:.2f} s CPU "
                f"(medians of {args.repeats}); peak RSS so far {peak_rss_gb():.2f} GiB; "
                f"load average {os.getloadavg()[0]:.1f}"
            )
    if args.bounds and "numba" in backends:
        bounds = time_bounds(op, args.dim, args.repeats)
        summary["normalized_forward_layer_s"] = bounds
        base = bounds["as built"]
        for name, sec in bounds.items():
            print(f"normalized forward, 1 layer, {name}: {sec * 1e3:.0f} ms ({base / sec:.2f}×)")
    summary["peak_rss_gb"] = peak_rss_gb()
    write_summary(args.json, summary)


if __name__ == "__main__":
    main()

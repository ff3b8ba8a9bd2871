"""Time SR-GNN's batched session-graph construction on real training examples.

Prints milliseconds to build the graphs of 1,000 sessions with `session_graphs` (tensor ops
for the whole batch), in training-order batches. `--loop` also times a per-session NumPy loop
(one graph at a time, as the authors' data loader builds them) for comparison.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/srgnn_batching.py --dataset diginetica
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import write_summary

from sessionrec.data.batching import batch_indices, collate
from sessionrec.data.sources import load_dataset
from sessionrec.models.srgnn import session_graphs


def loop_graphs(items: np.ndarray, lengths: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The per-session path: unique nodes, binary edges and degree normalisation, one by one."""
    out = []
    for row, n in zip(items, lengths, strict=True):
        seq = row[:n]
        nodes, alias = np.unique(seq, return_inverse=True)
        adj = np.zeros((len(nodes), len(nodes)))
        adj[alias[:-1], alias[1:]] = 1.0
        a_in = (adj / np.maximum(adj.sum(0, keepdims=True), 1.0)).T
        a_out = adj / np.maximum(adj.sum(1, keepdims=True), 1.0)
        out.append((a_in, a_out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--examples", type=int, default=50_000, help="training examples to time")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="best of this many passes")
    ap.add_argument("--loop", action="store_true", help="also time the per-session NumPy loop")
    ap.add_argument("--json", help="also write the figures here (used by run_all.py)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset)
    batches = batch_indices(data.train, args.batch_size, shuffle=True, seed=0)
    batches = batches[: max(1, args.examples // args.batch_size)]
    collated = [collate(data.train, idx) for idx in batches]
    n = sum(len(b.lengths) for b in collated)
    mean_len = float(np.mean(np.concatenate([b.lengths.numpy() for b in collated])))
    print(
        f"{args.dataset}: {n:,} training examples in {len(collated)} batches of "
        f"{args.batch_size} (mean length {mean_len:.2f}), {args.threads} thread(s)"
    )

    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for b in collated:
            session_graphs(b.items, b.lengths)
        best = min(best, time.perf_counter() - t0)
    print(f"vectorised session_graphs: {1000 * best / n * 1000:.2f} ms per 1,000 sessions")
    summary = {"dataset": args.dataset, "vectorised_ms_per_1000": 1e6 * best / n}

    if args.loop:
        arrays = [(b.items.numpy(), b.lengths.numpy()) for b in collated]
        t0 = time.perf_counter()
        for items, lengths in arrays:
            loop_graphs(items, lengths)
        loop = time.perf_counter() - t0
        print(f"per-session NumPy loop:    {1000 * loop / n * 1000:.2f} ms per 1,000 sessions")
        summary["loop_ms_per_1000"] = 1e6 * loop / n
    write_summary(args.json, summary)


if __name__ == "__main__":
    main()

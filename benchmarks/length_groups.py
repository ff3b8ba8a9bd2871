"""Training step with and without encoding by length groups (`models.layers.by_length`).

Usage: python benchmarks/length_groups.py [--dataset diginetica] [--models linet,focol]
       [--batch-size 100] [--steps 10] [--rounds 3] [--threads 1] [--set key=value]...
       [--lookups | --splits] [--json FILE]
Runs the Trainer's step (collate, `batch_loss`, backward, Adam) on uniform batches, as the
Trainer draws them, alternating rounds of `--steps` batches with the model's length groups
on (GROUP_ROWS) and off (one padded pass), after one warm-up round of each. `--lookups`
instead keeps the groups and alternates the item-table lookups' gradient: dense (one zero
(N+1, d) table per group) and sparse (`models.layers.lookup_rows`, the default). `--splits`
alternates how the sorted batch is cut: into equal runs (the way until 2026-12-07) and into
the runs with the fewest padded positions (`models.layers.length_group_sizes`). Prints the
median wall and process-CPU seconds per step of each; only their ratio means anything on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from common import machine_line, write_summary

import sessionrec.models.focol as focol
import sessionrec.models.layers as layers
from sessionrec.data.batching import batch_indices, collate
from sessionrec.data.sources import load_dataset
from sessionrec.models.registry import create
from sessionrec.training.trainer import adam, batch_loss


def time_steps(net: torch.nn.Module, opt: torch.optim.Optimizer, data, batches) -> tuple:
    """Mean wall and CPU seconds of one Trainer step over `batches`."""
    t, c = time.perf_counter(), time.process_time()
    for idx in batches:
        loss = batch_loss(net, collate(data.train, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t) / len(batches), (time.process_time() - c) / len(batches)


def alternate(modes: dict, net, opt, data, batches, args: argparse.Namespace) -> dict:
    """Median wall and CPU seconds per step of each mode (a name and a function that sets it
    up), in alternating rounds of `args.steps` batches after one warm-up round of each."""
    figures: dict[str, list] = {name: [] for name in modes}
    for r in range(args.rounds + 1):
        for i, (name, set_up) in enumerate(modes.items()):
            set_up()
            k = (len(modes) * r + i) * args.steps
            got = time_steps(net, opt, data, batches[k : k + args.steps])
            if r:  # round 0 warms up every mode
                figures[name].append(got)
    return {
        f"{name}_{kind}_s": statistics.median(x[j] for x in runs)
        for name, runs in figures.items()
        for j, kind in enumerate(("wall", "cpu"))
    }


def hparams(pairs: list[str]) -> dict:
    """--set key=value pairs as model hyper-parameters (numbers parsed, else strings)."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def dense_lookup(table: torch.Tensor, ids: torch.Tensor, padding_idx: int | None = None):
    """`lookup_rows` as it was: a dense gradient per lookup."""
    return torch.nn.functional.embedding(ids, table, padding_idx)


def equal_sizes(sorted_lengths, groups: int, min_rows: int) -> list[int]:
    """Equal runs, as `by_length` cut until 2026-12-07."""
    parts = min(groups, len(sorted_lengths) // min_rows)
    return [len(p) for p in np.array_split(sorted_lengths, parts)]


def padded_positions(data, sample) -> str:
    """Mean positions per batch: real, and padded by equal and by fewest-padding runs."""
    figures = {"real": [], "equal": [], "fewest": []}
    for idx in sample:
        lengths = np.sort(data.train.length[idx])
        figures["real"].append(lengths.sum())
        for name, split in (("equal", equal_sizes), ("fewest", layers.length_group_sizes)):
            sizes = split(lengths, layers.MAX_GROUPS, layers.GROUP_ROWS)
            ends = np.cumsum(sizes)
            figures[name].append(int((np.array(sizes) * lengths[ends - 1]).sum()))
    real, equal, fewest = (statistics.mean(v) for v in figures.values())
    return (
        f"positions per batch: {real:.0f} real, padded {equal:.0f} in equal runs, "
        f"{fewest:.0f} in the fewest-padding runs ({equal / fewest:.2f}x fewer)"
    )


def use_lookup(fn) -> None:
    layers.lookup_rows = focol.lookup_rows = fn


def compare(name: str, data, args: argparse.Namespace) -> dict:
    """Per-step seconds of model `name` in two modes (groups off / on, dense / sparse
    lookups, or equal / fewest-padding runs), alternating rounds."""
    model = create(name, data.num_items, seed=0, **hparams(args.set))
    model.prepare(data)
    net = model.net.train()
    opt = adam(net.parameters(), 1e-3, 1e-5, model.device)
    batches = batch_indices(data.train, args.batch_size, shuffle=True, seed=0)
    grouped_rows, sparse_lookup = layers.GROUP_ROWS, layers.lookup_rows
    fewest = layers.length_group_sizes
    if args.splits:
        modes = {
            "equal": lambda: setattr(layers, "length_group_sizes", equal_sizes),
            "fewest": lambda: setattr(layers, "length_group_sizes", fewest),
        }
    elif args.lookups:
        modes = {
            "dense": lambda: use_lookup(dense_lookup),
            "sparse": lambda: use_lookup(sparse_lookup),
        }
    else:
        modes = {
            "padded": lambda: setattr(layers, "GROUP_ROWS", 10**9),
            "grouped": lambda: setattr(layers, "GROUP_ROWS", grouped_rows),
        }
    try:
        row = alternate(modes, net, opt, data, batches, args)
    finally:
        layers.GROUP_ROWS, layers.length_group_sizes = grouped_rows, fewest
        use_lookup(sparse_lookup)
    before, after = modes
    row["cpu_speedup"] = row[f"{before}_cpu_s"] / row[f"{after}_cpu_s"]
    print(
        f"{name:<8} {before} {row[f'{before}_wall_s']:.3f} s/step wall"
        f" {row[f'{before}_cpu_s']:.3f} CPU; {after} {row[f'{after}_wall_s']:.3f} wall"
        f" {row[f'{after}_cpu_s']:.3f} CPU; {row['cpu_speedup']:.2f}x"
        f" (CPU, medians of {args.rounds} rounds of {args.steps})"
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--models", default="linet,focol")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    ap.add_argument("--rounds", type=int, default=3, help="timed rounds of each")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="model hyper-parameter k=v")
    ap.add_argument(
        "--lookups", action="store_true", help="compare dense and sparse lookups, groups on"
    )
    ap.add_argument("--splits", action="store_true", help="compare equal and fewest-padding runs")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    sample = batch_indices(data.train, args.batch_size, shuffle=True, seed=0)[:200]
    widths = [int(data.train.length[idx].max()) for idx in sample]
    if args.splits:
        print(padded_positions(data, sample))
    print(
        f"{data.name}: batch {args.batch_size}, uniform batches padded to "
        f"{statistics.mean(widths):.1f} clicks on average (mean length "
        f"{data.train.length.mean():.1f}), groups of >= {layers.GROUP_ROWS} rows, at most "
        f"{layers.MAX_GROUPS}; {machine_line(args.threads)}"
    )
    rows = {name: compare(name, data, args) for name in args.models.split(",") if name}
    summary = {
        "dataset": args.dataset,
        "batch_size": args.batch_size,
        "set": args.set,
        "compared": "splits" if args.splits else "lookups" if args.lookups else "groups",
    }
    write_summary(args.json, {**summary, **rows})


if __name__ == "__main__":
    main()

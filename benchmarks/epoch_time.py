"""Seconds per training epoch of each neural model on a benchmark, at a given batch size.

Models trained by the shared `Trainer` run its exact step (collate, loss, backward, Adam) for
`--steps` batches after `--warmup`, and the epoch time is steps/epoch times the measured
s/step; models with their own steps (GRU4Rec's session-parallel batches, BPR-MF) run one
whole epoch, or `--own-fraction` of the sessions scaled up. Prints wall and process-CPU
seconds; CPU is the steadier figure when the machine is shared.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/epoch_time.py --dataset diginetica
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine_line, peak_rss_gb, write_summary

from sessionrec.data.batching import batch_indices, collate
from sessionrec.data.dataset import SessionDataset
from sessionrec.data.sources import load_dataset
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.registry import create, get
from sessionrec.training.config import TrainConfig
from sessionrec.training.trainer import Trainer, adam, batch_loss

DEFAULT_MODELS = "gru4rec,bprmf,fpmc,narm,stamp,repeatnet,srgnn,gcegnn,dhcn,linet,focol"


def trainer_steps(
    model: NeuralRecommender,
    data: SessionDataset,
    batch_size: int,
    steps: int,
    warmup: int,
    amp: bool = False,
) -> tuple[float, float, int]:
    """Wall and CPU seconds per step of the Trainer's step (under bf16 autocast with `amp`),
    and the steps in one epoch."""
    net = model.net
    opt = adam(net.parameters(), 1e-3, 1e-5, model.device)  # the Trainer's optimiser
    batches = batch_indices(data.train, batch_size, shuffle=True, seed=0)
    net.train()
    wall = cpu = 0.0
    for i, idx in enumerate(batches[: warmup + steps]):
        t, c = time.perf_counter(), time.process_time()
        with torch.autocast(model.device.type, torch.bfloat16, enabled=amp):
            loss = batch_loss(net, collate(data.train, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
    done = max(1, min(steps, len(batches) - warmup))
    return wall / done, cpu / done, len(batches)


def own_fit_epoch(name: str, data: SessionDataset, batch_size: int, fraction: float) -> dict:
    """One epoch of a model's own training loop, scaled by training examples if on a fraction."""
    part = data
    if fraction < 1.0:
        part = load_dataset(data.source["dataset"], train_fraction=fraction)
    hp = {"batch_size": batch_size} if "batch_size" in get(name).Params.__dataclass_fields__ else {}
    model = create(name, data.num_items, seed=0, **hp)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, num_threads=torch.get_num_threads())
    t, c = time.perf_counter(), time.process_time()
    model.fit(part, cfg)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    record = next(r for r in model.fit_history if r.get("event", "epoch") == "epoch")
    epoch_s = record["seconds"]  # the epoch alone, without its validation
    scale = len(data.train) / len(part.train)
    return {
        "epoch_s": epoch_s * scale,
        "epoch_cpu_s": cpu * epoch_s / wall * scale,
        "measured": f"1 epoch on {len(part.train):,} examples"
        + (f", x{scale:.2f}" if scale > 1 else ""),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma list of registry names")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--steps", type=int, default=40, help="timed steps per Trainer model")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument(
        "--own-fraction",
        type=float,
        default=1.0,
        help="run own-loop models on this most recent fraction of sessions",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--amp",
        action="store_true",
        help="time each Trainer model's step in float32 and under bf16 autocast, alternately "
        "(the rows show float32; `amp_speedup` the ratio of the best times)",
    )
    ap.add_argument("--json", help="also write the figures here (used by run_all.py)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset)
    print(
        f"{data.name}: {len(data.train):,} training examples, batch {args.batch_size}; "
        f"{machine_line(args.threads)}"
    )
    rows = {}
    for name in [m for m in args.models.split(",") if m]:
        cls = get(name)
        if not issubclass(cls, NeuralRecommender):
            print(f"{name:<10} not a neural model: skipped")
            continue
        if cls.trainer_class is not Trainer:  # its own steps (GRU4Rec, BPR-MF)
            row = own_fit_epoch(name, data, args.batch_size, args.own_fraction)
        else:
            model = create(name, data.num_items, seed=0)
            t = time.perf_counter()
            model.prepare(data)
            setup = time.perf_counter() - t
            step, step_cpu, n = trainer_steps(model, data, args.batch_size, args.steps, args.warmup)
            amp_note = ""
            if args.amp:  # fp32, bf16, fp32, bf16: the best of each, so load hits both alike
                times = {False: [step], True: []}
                for amp in (True, False, True):
                    got = trainer_steps(model, data, args.batch_size, args.steps, args.warmup, amp)
                    times[amp].append(got[0])
                step, speedup = min(times[False]), min(times[False]) / min(times[True])
                amp_note = f"; bf16 autocast {speedup:.2f}x faster"
            row = {
                "epoch_s": step * n,
                "epoch_cpu_s": step_cpu * n,
                "step_s": step,
                "step_cpu_s": step_cpu,
                "setup_s": setup,
                "measured": f"{args.steps} of {n:,} steps{amp_note}",
            }
            if args.amp:
                row["amp_speedup"] = speedup
        row["peak_rss_gb"] = peak_rss_gb()
        rows[name] = row
        print(
            f"{name:<10} {row['epoch_s'] / 60:7.1f} min/epoch wall  "
            f"{row['epoch_cpu_s'] / 60:7.1f} min CPU  ({row['measured']}; "
            f"peak RSS so far {row['peak_rss_gb']:.2f} GiB)",
            flush=True,
        )
    write_summary(
        args.json,
        {
            "dataset": data.name,
            "batch_size": args.batch_size,
            "examples": len(data.train),
            "models": rows,
        },
    )


if __name__ == "__main__":
    main()

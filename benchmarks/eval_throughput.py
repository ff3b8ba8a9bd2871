"""Full-ranking evaluation throughput: test cases per second for each model on a benchmark.

Each model is built with random weights (neural models; ranking cost does not depend on the
weight values, and FOCOL's E^g is computed once, as after training) or fitted (kNN and pop),
then `sessionrec.evaluation.evaluate` ranks all items for every test case, exactly as a run's
test evaluation does. Prints cases/s, seconds and peak RSS per model. `--scoring torch,numpy`
times each model's evaluation once per scoring GEMM (`models.blas`), alternately for
`--rounds` rounds, and reports each one's best; the default, `auto`, is what a run uses.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/eval_throughput.py --dataset diginetica
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine_line, peak_rss_gb, write_summary

from sessionrec.data.sources import load_dataset
from sessionrec.evaluation import evaluate
from sessionrec.models import blas
from sessionrec.models.base import NeuralRecommender
from sessionrec.models.registry import create

DEFAULT_MODELS = "pop,itemknn,vsknn,narm,stamp,gru4rec,srgnn,repeatnet,gcegnn,dhcn,linet,focol"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--models", default=DEFAULT_MODELS, help="comma list of registry names")
    ap.add_argument("--cases", type=int, default=0, help="only the first N test cases (0 = all)")
    ap.add_argument("--batch-size", type=int, default=500, help="evaluation batch (the default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scoring", default="auto", help="comma list of auto, numpy, torch")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds per backend")
    ap.add_argument("--json", help="also write the figures here (used by run_all.py)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(args.dataset)
    test = data.test if not args.cases else data.test.subset(slice(0, args.cases))
    print(
        f"{data.name}: {len(test):,} test cases, {data.num_items:,} items; "
        f"{machine_line(args.threads)}"
    )
    rows, auto_choice = {}, "not run"
    for name in [m for m in args.models.split(",") if m]:
        model = create(name, data.num_items, seed=0)
        t = time.perf_counter()
        if isinstance(model, NeuralRecommender):
            model.prepare(data)  # global graphs (FOCOL, GCE-GNN) from the training sessions
        else:
            model.fit(data)
        setup = time.perf_counter() - t
        timed: dict[str, tuple[float, float]] = {}
        for _ in range(args.rounds):
            for backend in args.scoring.split(","):
                blas.set_backend(backend)
                evaluate(model, test.subset(slice(0, 500)), batch_size=args.batch_size)  # warm-up
                t, c = time.perf_counter(), time.process_time()
                evaluate(model, test, batch_size=args.batch_size)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                timed[backend] = min(timed.get(backend, (wall, cpu)), (wall, cpu))
                if backend == "auto":
                    auto_choice = blas.chosen_backend() or "torch (no large product)"
        for backend, (wall, cpu) in timed.items():
            key = name if backend == "auto" else f"{name}[{backend}]"
            rows[key] = {
                "cases_per_s": len(test) / wall,
                "seconds": wall,
                "cpu_seconds": cpu,
                "setup_seconds": setup,
                "peak_rss_gb": peak_rss_gb(),
            }
            print(
                f"{key:<10} {len(test) / wall:9,.0f} cases/s  {wall:7.2f} s wall  "
                f"{cpu:7.2f} s CPU  (setup {setup:.1f} s; peak RSS so far "
                f"{peak_rss_gb():.2f} GiB)",
                flush=True,
            )
    print(f"scoring GEMM chosen by auto: {auto_choice}")
    write_summary(
        args.json,
        {"dataset": data.name, "cases": len(test), "models": rows, "scoring": auto_choice},
    )


if __name__ == "__main__":
    main()

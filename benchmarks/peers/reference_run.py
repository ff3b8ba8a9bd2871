"""What the reference-curve drivers share: their pickle layout, a one-thread environment for
the authors' code, and reading the child's RESULT lines into the JSON curve they write."""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")


def as_their_pickle(examples) -> tuple[list[list[int]], list[int]]:
    """(input sequences, next items): their `train.txt` / `test.txt` layout."""
    seqs = [examples.sequence(i).tolist() for i in range(len(examples))]
    return seqs, examples.target.tolist()


def write_splits(folder: Path, data: Any) -> None:
    """Our fitting examples as their `train.txt`, our validation examples as `test.txt`."""
    for name, split in (("train.txt", data.train), ("test.txt", data.valid)):
        with open(folder / name, "wb") as f:
            pickle.dump(as_their_pickle(split), f)


def record(
    done: subprocess.CompletedProcess, reference: str, data: Any, args: argparse.Namespace
) -> None:
    """The child's per-epoch RESULT lines as a JSON curve in `args.out`, printed too."""
    if done.returncode != 0:
        raise SystemExit(f"their code failed: {done.stderr.strip().splitlines()[-3:]}")
    curve = [
        json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")
    ]
    result = {
        "reference": reference,
        "dataset": data.name,
        "train_fraction": args.train_fraction,
        "seed": args.seed,
        "fitting_examples": len(data.train),
        "evaluated_on": f"our validation split ({len(data.valid):,} examples)",
        "curve": curve,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for point in curve:
        print(
            f"epoch {point['epoch']}: their HR@20 {point['hr@20']:.2f} MRR@20 "
            f"{point['mrr@20']:.2f} ({point['seconds']:.0f} s)"
        )

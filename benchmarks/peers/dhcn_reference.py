"""Per-epoch curve of the DHCN authors' code beside ours, on the same examples (issue 17).

    python benchmarks/peers/dhcn_reference.py --repo /work/.mirror/xiaxin1998+DHCN/repo \\
        --train-fraction 0.1 --epochs 2 --out results/peers/dhcn-reference-seed0.json

The authors' repository (xiaxin1998/DHCN, fetched with the `fetch` tool or `git clone`) is
unpacked into a temporary directory; their `DHCN` and `train_test` train on exactly our
fitting examples (their `train.txt` layout; their code builds its hypergraph from these
prefixes, ours from the fitting sessions: docs/baselines-graph.md) with their main.py's
defaults, and score our validation examples after every epoch, one thread. What the child
changes to run their code on a CPU with today's libraries, none of it numerical, is in its
docstring. Compare with `sessionrec train dhcn --dataset diginetica --train-fraction F
--epochs E --set num_threads=1`. Their code is run, never imported into sessionrec.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from sessionrec.data.sources import load_dataset

CHILD = Path(__file__).with_name("dhcn_reference_child.py")
THEIR_NODES = {"diginetica": 43097}  # main.py fixes the item count per dataset name


def as_their_pickle(examples) -> tuple[list[list[int]], list[int]]:
    """(input sequences, next items): their `train.txt` / `test.txt` layout."""
    seqs = [examples.sequence(i).tolist() for i in range(len(examples))]
    return seqs, examples.target.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="the DHCN git directory")
    ap.add_argument("--dataset", default="diginetica", choices=sorted(THEIR_NODES))
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/peers/dhcn-reference.json"))
    args = ap.parse_args()
    data = load_dataset(args.dataset, valid_fraction=0.1, train_fraction=args.train_fraction)
    if data.num_items > THEIR_NODES[args.dataset]:
        raise SystemExit(f"{data.num_items} items do not fit their fixed {args.dataset} size")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        code = work / "code"
        code.mkdir()
        archive = subprocess.run(
            ["git", f"--git-dir={args.repo}", "archive", "HEAD", "main.py", "model.py", "util.py"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
        folder = work / "datasets" / args.dataset
        folder.mkdir(parents=True)
        for name, split in (("train.txt", data.train), ("test.txt", data.valid)):
            with open(folder / name, "wb") as f:
                pickle.dump(as_their_pickle(split), f)
        command = [sys.executable, str(CHILD.resolve()), args.dataset, str(args.epochs)]
        command += [str(args.seed)]
        done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"their code failed: {done.stderr.strip().splitlines()[-3:]}")
    curve = [
        json.loads(line[7:]) for line in done.stdout.splitlines() if line.startswith("RESULT ")
    ]
    result = {
        "reference": "xiaxin1998/DHCN",
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


if __name__ == "__main__":
    main()

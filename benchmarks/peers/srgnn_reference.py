"""Per-epoch curve of the SR-GNN authors' code beside ours, on the same examples (issue 16).

    python benchmarks/peers/srgnn_reference.py --repo /work/.mirror/CRIPAC-DIG+SR-GNN/repo \\
        --train-fraction 0.25 --epochs 2 --out results/peers/srgnn-reference.json

The authors' repository (CRIPAC-DIG/SR-GNN, fetched with the `fetch` tool or `git clone`) is
unpacked into a temporary directory; their `pytorch_code` trains on exactly our fitting
examples (`dataset.train`, the prefixes and next items, in their pickle format) and
evaluates on our validation examples after every epoch, one thread, seed 0. Compare with
`sessionrec train srgnn --dataset diginetica --train-fraction F --epochs E --set
num_threads=1`: its log.jsonl has the validation HR@20 / MRR@20 of the same examples per
epoch. Their code is run, never imported into sessionrec.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from reference_run import add_budget, run_child, unpack, write_splits

from sessionrec.data.sources import load_dataset

CHILD = Path(__file__).with_name("srgnn_reference_child.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="the SR-GNN git directory")
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/peers/srgnn-reference.json"))
    add_budget(ap)
    args = ap.parse_args()
    data = load_dataset(args.dataset, valid_fraction=0.1, train_fraction=args.train_fraction)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        unpack(args.repo, work, "pytorch_code")
        (work / "datasets" / "run").mkdir(parents=True)
        write_splits(work / "datasets" / "run", data)
        command = [sys.executable, str(CHILD.resolve()), str(args.epochs)]
        command += [str(data.num_items + 1), str(args.seed)]
        run_child(command, work / "pytorch_code", "CRIPAC-DIG/SR-GNN pytorch_code", data, args)


if __name__ == "__main__":
    main()

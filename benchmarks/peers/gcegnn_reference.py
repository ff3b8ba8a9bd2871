"""Per-epoch curve of the GCE-GNN authors' code beside ours, on the same examples (issue 16).

    python benchmarks/peers/gcegnn_reference.py --repo /work/.mirror/CCIIPLab+GCE-GNN/repo/.git \\
        --train-fraction 0.1 --epochs 2 --out results/peers/gcegnn-reference-seed0.json

The authors' repository (CCIIPLab/GCE-GNN, fetched with the `fetch` tool or `git clone`) is
unpacked into a temporary directory. Their `build_graph.py` builds the global graph from our
fitting sessions (`dataset.fit_sessions()`, what our GCE-GNN builds it from), and their
`CombineGraph` and `train_test` train on exactly our fitting examples with their main.py's
Diginetica settings, evaluating on our validation examples after every epoch; one thread,
their DataLoaders with no worker processes (their default 4 would take the other core).
Compare with `sessionrec train gcegnn --dataset diginetica --train-fraction F --epochs E
--set num_threads=1`: its log.jsonl has the validation HR@20 / MRR@20 of the same examples.
Their code is run, never imported into sessionrec.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

from reference_run import ONE_THREAD, add_budget, run_child, unpack, write_splits

from sessionrec.data.sources import load_dataset

CHILD = Path(__file__).with_name("gcegnn_reference_child.py")
THEIR_NODES = {"diginetica": 43098}  # build_graph.py and main.py fix the item count per name
THEIR_FILES = ("aggregator.py", "build_graph.py", "main.py", "model.py", "utils.py")  # no datasets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="the GCE-GNN git directory")
    ap.add_argument("--dataset", default="diginetica", choices=sorted(THEIR_NODES))
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/peers/gcegnn-reference.json"))
    add_budget(ap)
    args = ap.parse_args()
    data = load_dataset(args.dataset, valid_fraction=0.1, train_fraction=args.train_fraction)
    if data.num_items + 1 > THEIR_NODES[args.dataset]:
        raise SystemExit(f"{data.num_items} items do not fit their fixed {args.dataset} size")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        unpack(args.repo, work, *THEIR_FILES)
        folder = work / "datasets" / args.dataset
        folder.mkdir(parents=True)
        with open(folder / "all_train_seq.txt", "wb") as f:
            pickle.dump(data.fit_sessions().to_lists(), f)
        write_splits(folder, data)
        graph = [sys.executable, "build_graph.py", "--dataset", args.dataset, "--sample_num", "12"]
        subprocess.run(graph, cwd=work, env=ONE_THREAD, check=True, capture_output=True)
        command = [sys.executable, str(CHILD.resolve()), args.dataset, str(args.epochs)]
        command += [str(args.seed)]
        run_child(command, work, "CCIIPLab/GCE-GNN", data, args)


if __name__ == "__main__":
    main()

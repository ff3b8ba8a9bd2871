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
import sys
import tempfile
from pathlib import Path

from reference_run import add_budget, run_child, unpack, write_splits

from sessionrec.data.sources import load_dataset

CHILD = Path(__file__).with_name("dhcn_reference_child.py")
THEIR_NODES = {"diginetica": 43097}  # main.py fixes the item count per dataset name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="the DHCN git directory")
    ap.add_argument("--dataset", default="diginetica", choices=sorted(THEIR_NODES))
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/peers/dhcn-reference.json"))
    add_budget(ap)
    args = ap.parse_args()
    data = load_dataset(args.dataset, valid_fraction=0.1, train_fraction=args.train_fraction)
    if data.num_items > THEIR_NODES[args.dataset]:
        raise SystemExit(f"{data.num_items} items do not fit their fixed {args.dataset} size")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        code = work / "code"
        code.mkdir()
        unpack(args.repo, code, "main.py", "model.py", "util.py")
        folder = work / "datasets" / args.dataset
        folder.mkdir(parents=True)
        write_splits(folder, data)
        command = [sys.executable, str(CHILD.resolve()), args.dataset, str(args.epochs)]
        command += [str(args.seed)]
        run_child(command, code, "xiaxin1998/DHCN", data, args)


if __name__ == "__main__":
    main()

"""Per-epoch curve of the FOCOL authors' code beside ours, on the same examples (issue 17).

    python benchmarks/peers/focol_reference.py --repo /work/.mirror/twchen+FOCOL/repo \\
        --focol-python /work/bg/focol-venv/bin/python \\
        --train-fraction 0.1 --epochs 2 --out results/peers/focol-reference-seed0.json

The authors' repository (twchen/FOCOL, fetched with the `fetch` tool or `git clone`) is
unpacked into a temporary directory and run by `focol_reference_child.py` with the python of
a virtual environment that has DGL (benchmarks/peers/README.md). Their graph is built from
our fitting sessions (their `all_train_seq.txt`: `dataset.fit_sessions()`, what our FOCOL
builds its graph from), they train on exactly our fitting examples with their defaults, one
thread, and score our validation examples (their `test.txt`) after every epoch, ranking our
whole catalogue. What the child changes is in its docstring (a self-loop on items absent
from the fitting sessions, which their data never has). Compare
with `sessionrec train focol --dataset diginetica --train-fraction F --epochs E --set
num_threads=1`. Their code is run, never imported into sessionrec.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
from pathlib import Path
from typing import Any

from reference_run import add_budget, run_child, unpack, write_splits

from sessionrec.data.sources import load_dataset

CHILD = Path(__file__).with_name("focol_reference_child.py")


def write_their_files(folder: Path, data: Any) -> None:
    """Our fitting sessions as their `all_train_seq.txt`, the examples as `write_splits`."""
    folder.mkdir(parents=True)
    with open(folder / "all_train_seq.txt", "wb") as f:
        pickle.dump(data.fit_sessions().to_lists(), f)
    write_splits(folder, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, required=True, help="the FOCOL git directory")
    ap.add_argument("--focol-python", required=True, help="python of a venv with DGL")
    ap.add_argument("--dataset", default="diginetica")
    ap.add_argument("--train-fraction", type=float, default=1.0)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/peers/focol-reference.json"))
    add_budget(ap)
    args = ap.parse_args()
    data = load_dataset(args.dataset, valid_fraction=0.1, train_fraction=args.train_fraction)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        code = work / "code"
        code.mkdir()
        unpack(args.repo, code, "expts", "utils")
        write_their_files(work / "datasets" / data.name, data)
        command = [args.focol_python, str(CHILD.resolve()), data.name, str(args.epochs)]
        command += [str(args.seed), str(data.num_items)]
        run_child(command, code, "twchen/FOCOL", data, args)


if __name__ == "__main__":
    main()

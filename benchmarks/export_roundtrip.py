"""Export each benchmark, prepare the export again, and check every example is the same.

    python benchmarks/export_roundtrip.py [--datasets diginetica,tmall] [--to parquet]

For each dataset and event format: `datasets export`, then the `datasets prepare` command the
export prints (`prepare-again.txt`), then the fitting, validation and test examples of both,
compared input for input and target for target in the original item ids.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sessionrec.data.dataset import SessionDataset
from sessionrec.data.export import export
from sessionrec.data.sources import BENCHMARKS, load_dataset

FORMATS = ("session-rec", "parquet")


def same_examples(a: SessionDataset, b: SessionDataset) -> bool:
    """Every split equal, with `b`'s ids mapped back to `a`'s by the original ids."""
    names_a = np.array(["", *(a.item_ids or map(str, range(1, a.num_items + 1)))], dtype=object)
    names_b = np.array(["", *b.item_ids], dtype=object)
    for split in ("train", "valid", "test"):
        x, y = getattr(a, split), getattr(b, split)
        if len(x) != len(y) or not np.array_equal(x.length, y.length):
            return False
        if not np.array_equal(names_a[x.target], names_b[y.target]):
            return False
        if not np.array_equal(names_a[x.items[_positions(x)]], names_b[y.items[_positions(y)]]):
            return False
    return True


def _positions(examples) -> np.ndarray:
    """Buffer positions of every input item, example after example."""
    lengths = examples.length
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(examples.start - offsets, lengths) + np.arange(int(lengths.sum()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default=",".join(BENCHMARKS))
    ap.add_argument("--to", default=",".join(FORMATS))
    args = ap.parse_args()
    for name in args.datasets.split(","):
        data = load_dataset(name, valid_fraction=0.1)
        for to in args.to.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                again = export(data, to, Path(tmp) / "x")["prepare"]
                argv = shlex.split(again.replace("DIR", str(Path(tmp) / "p")))
                cmd = [sys.executable, "-m", "sessionrec", *argv]
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                back = load_dataset(Path(tmp) / "p", valid_fraction=0.1)
                ok = same_examples(data, back)
                print(
                    f"{name:14s} {to:12s} train {len(data.train):>9,} valid {len(data.valid):>8,} "
                    f"test {len(data.test):>7,}  identical: {ok}  ({time.perf_counter() - t:.0f} s)"
                )
                print(f"    options: {again.split('--min-item-support 1')[1]}")
                if not ok:
                    raise SystemExit(1)


if __name__ == "__main__":
    main()

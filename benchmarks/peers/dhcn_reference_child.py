"""One run of the DHCN authors' code for `dhcn_reference.py`, in their code directory.

Imports their `model` and `util` modules (fetched, not copied into sessionrec), builds their
DHCN with their main.py's defaults and calls their `train_test` once per epoch, printing one
JSON line per epoch (their Recall@20 and MRR@20 on the evaluation file, in %). To run on a
CPU with NumPy 2 and torch 2.13, four things change, none of them numerical: the inputs
reach their `Data` as a NumPy object array (their `np.asarray` of ragged lists fails on
NumPy ≥ 1.24); their `np.sum(layers, 0)` over a list of tensors that require grad, which
NumPy 2 refuses, adds the tensors in order, as NumPy did on such lists;
`torch.cuda.FloatTensor(...)`, their tensors of ones and zeros, are made on the CPU; and
autograd's anomaly detection, which their `train_test` switches on, stays off (it only adds
checks and slows each step). Their evaluation keeps its own quirks: the file is
shuffled, and the last batch overlaps the one before (a few examples count twice).
"""

import functools
import json
import operator
import os
import pickle
import sys
import time

import numpy as np
import torch


def as_object_array(sequences: list) -> np.ndarray:
    out = np.empty(len(sequences), dtype=object)
    out[:] = sequences
    return out


class _TheirNumPy:
    """NumPy for their model module, but `sum(list of tensors, 0)` adds the tensors in order."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def sum(a, axis=None, *args, **kwargs):
        if isinstance(a, list) and a and isinstance(a[0], torch.Tensor) and axis == 0:
            return functools.reduce(operator.add, a)
        return np.sum(a, axis, *args, **kwargs)


def main() -> None:
    dataset, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.argv = sys.argv[:1]
    sys.path.insert(0, os.getcwd())  # their code directory
    torch.cuda.FloatTensor = lambda *size: torch.empty(*size)  # their ones and zeros, on the CPU
    torch.autograd.set_detect_anomaly = lambda *args, **kwargs: None
    import model as theirs  # noqa: E402
    from util import Data  # noqa: E402

    theirs.np = _TheirNumPy()

    np.random.seed(seed)
    torch.manual_seed(seed)
    n_node = 43097  # their main.py for diginetica
    splits = {}
    for name in ("train", "test"):
        with open(f"../datasets/{dataset}/{name}.txt", "rb") as f:
            seqs, targets = pickle.load(f)
        splits[name] = Data((as_object_array(seqs), targets), shuffle=True, n_node=n_node)
    net = theirs.DHCN(  # main.py's defaults: lr 1e-3, l2 1e-5 (unused), 3 layers, beta 0.01
        adjacency=splits["train"].adjacency, n_node=n_node, lr=0.001, l2=1e-5, beta=0.01,
        layers=3, emb_size=100, batch_size=100, dataset=dataset,
    )  # fmt: skip
    for epoch in range(epochs):
        started = time.perf_counter()
        metrics, _ = theirs.train_test(net, splits["train"], splits["test"])
        seconds = round(time.perf_counter() - started, 1)
        record = {
            "epoch": epoch + 1,
            "hr@20": float(np.mean(metrics["hit20"]) * 100),
            "mrr@20": float(np.mean(metrics["mrr20"]) * 100),
            "seconds": seconds,
        }
        print("RESULT " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

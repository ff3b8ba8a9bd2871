"""One run of the SR-GNN authors' pytorch_code for `srgnn_reference.py`, in their directory.

Imports their `model` and `utils` modules (fetched, not copied into sessionrec), builds their
SessionGraph with their main.py's defaults and calls their `train_test` once per epoch,
printing one JSON line per epoch (their Recall@20 and MRR@20 on the evaluation file, in %).
"""

import argparse
import json
import os
import pickle
import sys
import time

import numpy as np
import torch


def main() -> None:
    epochs, n_node, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sys.argv = sys.argv[:1]
    sys.path.insert(0, os.getcwd())  # their pytorch_code directory
    from model import SessionGraph, train_test, trans_to_cuda  # theirs
    from utils import Data  # theirs

    opt = argparse.Namespace(  # their main.py's argparse defaults
        batchSize=100, hiddenSize=100, epoch=epochs, lr=0.001, lr_dc=0.1, lr_dc_step=3,
        l2=1e-5, step=1, patience=10, nonhybrid=False, validation=False, valid_portion=0.1,
    )  # fmt: skip
    torch.manual_seed(seed)
    np.random.seed(seed)  # their Data shuffles with NumPy's global generator
    with open("../datasets/run/train.txt", "rb") as f:
        train = Data(pickle.load(f), shuffle=True)
    with open("../datasets/run/test.txt", "rb") as f:
        test = Data(pickle.load(f), shuffle=False)
    model = trans_to_cuda(SessionGraph(opt, n_node))
    for epoch in range(epochs):
        started = time.perf_counter()
        hit, mrr = train_test(model, train, test)
        lr = model.optimizer.param_groups[0]["lr"]
        seconds = round(time.perf_counter() - started, 1)
        record = {"epoch": epoch + 1, "hr@20": hit, "mrr@20": mrr, "lr": lr, "seconds": seconds}
        print("RESULT " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

"""One run of the GCE-GNN authors' code for `gcegnn_reference.py`, in their directory.

Imports their `model` and `utils` modules (fetched, not copied into sessionrec), builds their
CombineGraph with their main.py's settings for the dataset and calls their `train_test` once
per epoch, printing one JSON line per epoch (their Recall@20 and MRR@20 on the evaluation
file, in %) and a PROGRESS line every 25 training steps. Their DataLoaders run without
worker processes (one core, as ours).
"""

import argparse
import importlib.machinery
import json
import os
import pickle
import sys
import time
import types

import numpy as np
import torch
import torch.utils.data


class Counted:
    """Their training loader, printing a PROGRESS line every `every` finished steps, so a run
    stopped inside an epoch still says how fast their code went."""

    def __init__(self, loader, state: dict, every: int = 25) -> None:
        self.loader, self.state, self.every = loader, state, every

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        started, steps = time.perf_counter(), len(self.loader)
        for done, batch in enumerate(self.loader):
            if done and done % self.every == 0:  # their step on the previous batch is done
                seconds = round(time.perf_counter() - started, 1)
                point = {"epoch": self.state["epoch"], "steps_done": done, "steps": steps}
                print("PROGRESS " + json.dumps({**point, "seconds": seconds}), flush=True)
            yield batch


def main() -> None:
    dataset, epochs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sys.argv = sys.argv[:1]
    sys.path.insert(0, os.getcwd())  # their directory
    loader = torch.utils.data.DataLoader
    state = {"epoch": 1}

    def in_process(*args, **kwargs):  # their num_workers=4, pin_memory=True -> in process
        made = loader(*args, **{**kwargs, "num_workers": 0, "pin_memory": False})
        return Counted(made, state) if kwargs.get("shuffle") else made  # shuffled: training

    torch.utils.data.DataLoader = in_process
    try:
        import tqdm  # noqa: F401  (their progress bar, which only wraps the loader)
    except ImportError:
        shim = types.ModuleType("tqdm")
        shim.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)
        shim.tqdm = lambda iterable, *args, **kwargs: iterable
        sys.modules["tqdm"] = shim
    import model as theirs  # noqa: E402
    from utils import Data, handle_adj  # noqa: E402

    opt = argparse.Namespace(  # their main.py's argparse defaults, then its Diginetica branch
        dataset=dataset, hiddenSize=100, epoch=epochs, activate="relu", n_sample_all=12,
        n_sample=12, batch_size=100, lr=0.001, lr_dc=0.1, lr_dc_step=3, l2=1e-5, n_iter=2,
        dropout_gcn=0.2, dropout_local=0.0, dropout_global=0.5, validation=False,
        valid_portion=0.1, alpha=0.2, patience=3,
    )  # fmt: skip
    num_node = 43098
    np.random.seed(seed)
    torch.manual_seed(seed)
    folder = f"datasets/{dataset}/"
    with open(folder + "train.txt", "rb") as f:
        train = Data(pickle.load(f))
    with open(folder + "test.txt", "rb") as f:
        test = Data(pickle.load(f))
    with open(folder + "adj_12.pkl", "rb") as f:
        adj = pickle.load(f)
    with open(folder + "num_12.pkl", "rb") as f:
        num = pickle.load(f)
    adj, num = handle_adj(adj, num_node, opt.n_sample_all, num)
    model = theirs.trans_to_cuda(theirs.CombineGraph(opt, num_node, adj, num))
    for epoch in range(epochs):
        state["epoch"] = epoch + 1
        started = time.perf_counter()
        lr = model.optimizer.param_groups[0]["lr"]
        hit, mrr = theirs.train_test(model, train, test)
        seconds = round(time.perf_counter() - started, 1)
        record = {"epoch": epoch + 1, "hr@20": hit, "mrr@20": mrr, "lr": lr, "seconds": seconds}
        print("RESULT " + json.dumps(record), flush=True)


if __name__ == "__main__":
    main()

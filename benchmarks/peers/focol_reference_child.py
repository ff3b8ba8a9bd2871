"""One run of the FOCOL authors' code for `focol_reference.py`, in their code directory.

Runs in a virtual environment with DGL (benchmarks/peers/README.md). Imports their
`expts/focol/focol.py` as their run.py does (fetched, not copied into sessionrec), which trains
with their argparse defaults (batch 100, lr 1e-3, L2 1e-5, 3 FOGCN and 3 Transformer layers,
CSRL with β 0.03 and 32 negatives) and their `train` loop, evaluating their test file (our
validation examples) after every epoch. Around their loop it prints one RESULT line per
epoch (their HR@20 and MRR@20 in %, the mean training loss, seconds) and a PROGRESS line
every 25 training steps. What differs from running it as published (none of it changes a
number for an item their own data can hold):
`--device -1` (their own option: the CPU); `--patience` past the last epoch, so their early
stopping (and their choice of what to report) never cuts the curve; their item count N is our
catalogue's size (their `read_dataset` takes the largest id in train.txt), so they rank the
items we rank and every validation input has an embedding row; an item with no edge in their
graph (one absent from the fitting sessions: never so in their data, where ids are numbered
from training) gets a self-loop counting 1 in every slot, so their layer returns its
embedding unchanged (ones · softmax(P) = 1 in every feature, h·1/1 = h, no gradient to P)
where it would divide 0 by 0 and make every score NaN; DGLBACKEND=pytorch, so DGL does not
write ~/.dgl/config.json. torch 2.13 and DGL 1.1.3 run the rest of their code as it is.
"""

import importlib
import json
import os
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

STATE: dict = {"epoch": 0, "losses": []}


class Timed(DataLoader):
    """Their DataLoader; on the training loader, times the epoch and prints PROGRESS lines."""

    def __iter__(self):
        if not isinstance(self.sampler, RandomSampler):  # their valid/test loaders
            yield from super().__iter__()
            return
        STATE.update(epoch=STATE["epoch"] + 1, losses=[], started=time.perf_counter())
        steps = len(self)
        for done, batch in enumerate(super().__iter__()):
            if done and done % 25 == 0:  # their step on the previous batch is done
                seconds = round(time.perf_counter() - STATE["started"], 1)
                point = {"epoch": STATE["epoch"], "steps_done": done, "steps": steps}
                print("PROGRESS " + json.dumps({**point, "seconds": seconds}), flush=True)
            yield batch


def with_lone_loops(build):
    """Their `build_graph`, plus a self-loop counting 1 in every slot on each edgeless node."""

    def build_graph(train_sessions, num_items, max_dist):
        graph = build(train_sessions, num_items, max_dist)
        lone = torch.nonzero(graph.in_degrees() == 0).squeeze(1)  # their graph is symmetric
        if len(lone):
            graph.add_edges(lone, lone, {"cnt": torch.ones(len(lone), 2 * max_dist)})
        print(f"{len(lone)} items without an edge got a self-loop", flush=True)
        return graph

    return build_graph


def main() -> None:
    dataset = sys.argv[1]
    epochs, seed, num_items = map(int, sys.argv[2:5])
    os.environ.setdefault("DGLBACKEND", "pytorch")
    sys.path.insert(0, os.getcwd())  # their code directory
    import expts.expt as expt  # noqa: E402
    import expts.focol.FOGCN as fogcn  # noqa: E402

    expt.DataLoader = Timed
    fogcn.build_graph = with_lone_loops(fogcn.build_graph)
    base = expt.ExperimentBase
    read, evaluate, run = base.read_dataset, base.evaluate, base.run

    def read_dataset(self) -> None:
        read(self)
        self.args.num_items = num_items

    def evaluate_and_print(self):
        trained = time.perf_counter() - STATE["started"]
        comp_scores, test_scores = evaluate(self)
        record = {
            "epoch": STATE["epoch"],
            "hr@20": float(test_scores["HR@20"] * 100),
            "mrr@20": float(test_scores["MRR@20"] * 100),
            "loss": float(np.mean(STATE["losses"])),
            "train_seconds": round(trained, 1),
            "seconds": round(time.perf_counter() - STATE["started"], 1),
        }
        print("RESULT " + json.dumps(record), flush=True)
        return comp_scores, test_scores

    def run_with_losses(self) -> None:
        compute = type(self).compute_batch_loss

        def compute_batch_loss(experiment, batch):
            loss = compute(experiment, batch)
            STATE["losses"].append(loss.item())
            return loss

        type(self).compute_batch_loss = compute_batch_loss
        run(self)

    base.read_dataset, base.evaluate, base.run = read_dataset, evaluate_and_print, run_with_losses
    np.random.seed(seed)
    torch.manual_seed(seed)
    sys.argv = ["expts/focol/focol.py", "--dataset-dir", f"../datasets/{dataset}"]
    sys.argv += ["--device", "-1", "--epochs", str(epochs), "--patience", str(epochs + 1)]
    importlib.import_module("expts.focol.focol")  # parses sys.argv, trains, evaluates


if __name__ == "__main__":
    main()

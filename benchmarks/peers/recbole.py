"""Side by side with RecBole 1.2.1: the same examples, hyper-parameters and machine (issue #10).

Usage: python benchmarks/peers/recbole.py --recbole-python /work/bg/recbole-venv/bin/python
       [--dataset diginetica] [--train-fraction 1.0] [--models narm,stamp,gru4rec,srgnn,fpmc,
       repeatnet] [--epochs 1] [--repeats 1] [--threads 1] [--dim 100] [--batch-size 100]
       [--lr 0.001] [--work-dir DIR] [--json FILE]

Runs with the project's python; RecBole runs in its own virtual environment (see README.md
beside this file) as a subprocess, `recbole_child.py`. Our runs are subprocesses too, so both
libraries' peak RSS is that of one process (os.wait4). Steps:

1. Converts the dataset to RecBole's pre-split benchmark files: `<name>.train.inter`,
   `.valid.inter`, `.test.inter` hold exactly our fitting prefixes, validation prefixes (the
   most recent 10%) and test cases, in our order, one row per example; `<name>.item` lists
   every item id 1..num_items so both libraries rank the same catalogue.
2. For each model and repeat runs ours, then RecBole's (interleaved), with the same embedding
   size, batch size, Adam learning rate, L2 weight decay and epochs, one torch thread each,
   validation after every epoch (the best epoch's weights are tested) and full ranking.
3. Prints a table of medians (s/epoch, test-evaluation s, peak RSS, HR@20, MRR@20) with the
   speed-up (RecBole's seconds / ours), and writes every measurement as JSON.

Where the models differ: our GRU4Rec is the published algorithm (session-parallel mini-batches,
BPR-max with sampled negatives, Adagrad: its own optimiser and learning rate), RecBole's is the
"improved RNN" (full-softmax cross-entropy over every prefix, Adam), so its s/epoch covers a
different amount of work. RecBole's FPMC trains with BPR and one uniform negative, so ours runs
with `loss=bpr`; its user term sees one session id shared by all rows (ours has no user
term). Importing RecBole switches on autograd anomaly detection; the child switches it off
again (otherwise every RecBole model is slower for a reason unrelated to RecBole).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sessionrec.data.export import INTER_HEADER, SHARED_SESSION_ID, id_names, write_recbole

SPLITS = ("train", "valid", "test")
SESSION_ID = SHARED_SESSION_ID
# our model name -> (RecBole model name, our hyper-parameters, RecBole's), at dimension d
MODELS = ("gru4rec", "narm", "stamp", "srgnn", "fpmc", "repeatnet")
RECBOLE_NAMES = {
    "gru4rec": "GRU4Rec",
    "narm": "NARM",
    "stamp": "STAMP",
    "srgnn": "SRGNN",
    "fpmc": "FPMC",
    "repeatnet": "RepeatNet",
}
CHILD = Path(__file__).with_name("recbole_child.py")


def our_params(model: str, dim: int, batch_size: int) -> dict[str, Any]:
    """Our hyper-parameters for `model` at embedding/hidden size `dim`."""
    return {
        "gru4rec": {"layers": (dim,), "embedding": dim, "batch_size": batch_size},
        "narm": {"embedding_dim": dim, "hidden_size": dim},
        "stamp": {"embedding_dim": dim},
        "srgnn": {"hidden_size": dim},
        "fpmc": {"embedding_dim": dim, "loss": "bpr"},
        "repeatnet": {"embedding_dim": dim, "hidden_size": dim},
    }[model]


def recbole_params(model: str, dim: int) -> dict[str, Any]:
    """RecBole's configuration entries for `model` at embedding/hidden size `dim`."""
    params: dict[str, Any] = {"embedding_size": dim, "hidden_size": dim}
    if model == "gru4rec":
        params.update(num_layers=1)
    if model == "srgnn":
        params.update(step=1)
    if model == "fpmc":  # RecBole's FPMC supports BPR only
        params.update(
            loss_type="BPR", train_neg_sample_args={"distribution": "uniform", "sample_num": 1}
        )
    return params


def write_recbole_benchmark(dataset: Any, out_dir: Path, name: str) -> dict[str, int]:
    """Write `dataset` as RecBole benchmark atomic files in `out_dir/name`; the row counts.

    The library's own export (`sessionrec datasets export --to recbole`; layout and the one
    shared session id explained in `sessionrec.data.export`).
    """
    folder = out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    return write_recbole(dataset, folder, name, id_names(dataset))


def read_recbole_split(path: Path) -> list[tuple[str, list[int], int]]:
    """The (session id, input items, next item) rows of a converted `.inter` file."""
    lines = path.read_text().splitlines()
    if not lines or lines[0] + "\n" != INTER_HEADER:
        raise ValueError(f"{path}: unexpected header")
    rows = []
    for line in lines[1:]:
        sid, seq, target = line.split("\t")
        rows.append((sid, [int(x) for x in seq.split(" ")], int(target)))
    return rows


def max_input_length(dataset: Any) -> int:
    """The longest input sequence over all three splits (RecBole's MAX_ITEM_LIST_LENGTH)."""
    return max(int(getattr(dataset, s).length.max(initial=1)) for s in SPLITS)


class PeerRunError(RuntimeError):
    """A measurement process failed; the message names its log and quotes its last lines."""


def run_child(cmd: list[str], out: Path, log: Path, threads: int) -> dict[str, Any]:
    """Run one measurement process; its JSON result plus its peak RSS (GB) from wait4."""
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        OMP_WAIT_POLICY="PASSIVE",
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",
    )
    t0 = time.monotonic()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0 or not out.exists():
        tail = log.read_text().strip().splitlines()[-3:]
        raise PeerRunError(
            f"{Path(cmd[1]).name} exited with {proc.returncode}; {log}: {' | '.join(tail)}"
        )
    result = json.loads(out.read_text())
    result["peak_rss_gb"] = round(usage.ru_maxrss / 2**20, 3)
    result["wall_seconds"] = round(time.monotonic() - t0, 1)
    return result


def ours_main(spec: dict[str, Any]) -> None:
    """Child process: train and test one of our models as `spec` says; write JSON."""
    import torch

    from sessionrec.data.sources import load_dataset
    from sessionrec.evaluation import evaluate_splits
    from sessionrec.models.registry import create
    from sessionrec.training.config import TrainConfig

    torch.autograd.set_detect_anomaly(False)
    torch.set_num_threads(spec["threads"])
    data = load_dataset(spec["dataset"], train_fraction=spec["train_fraction"])
    params = dict(spec["params"])
    if "layers" in params:
        params["layers"] = tuple(params["layers"])
    model = create(spec["model"], data.num_items, seed=0, **params)
    config = TrainConfig(
        epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        lr=spec["lr"],
        weight_decay=spec["weight_decay"],
        patience=spec["epochs"],
        device="cpu",
        eval_batch_size=spec["eval_batch_size"],
        ks=(20,),
        metric="mrr@20",
        num_threads=spec["threads"],
    )
    model.fit(data, config, None, False, False)
    history = [r for r in model.fit_history if r.get("event", "epoch") == "epoch"]
    t0 = time.monotonic()
    test = evaluate_splits(model, data, config, ("test",))["test"]
    result = {
        "epoch_seconds": [r["seconds"] for r in history],
        "test_seconds": round(time.monotonic() - t0, 2),
        "hr@20": test["hr@20"],
        "mrr@20": test["mrr@20"],
        "best_epoch": getattr(model, "best_epoch", None),
        "items": data.num_items,
        "rows": {s: len(getattr(data, s)) for s in SPLITS},
    }
    Path(spec["out"]).write_text(json.dumps(result))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarise(runs: list[dict[str, Any]], model: str, lib: str) -> dict[str, float]:
    """Medians over the repeats of one model in one library."""
    mine = [r for r in runs if r["model"] == model and r["lib"] == lib]
    return {
        "s_per_epoch": median([median(r["epoch_seconds"]) for r in mine]),
        "test_s": median([r["test_seconds"] for r in mine]),
        "rss_gb": median([r["peak_rss_gb"] for r in mine]),
        "hr@20": median([r["hr@20"] for r in mine]),
        "mrr@20": median([r["mrr@20"] for r in mine]),
    }


def print_table(runs: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """Print the side-by-side table (medians; speed-up = RecBole s / our s); its rows."""
    head = (
        f"{'model':<10} {'ours s/ep':>10} {'RB s/ep':>9} {'speed-up':>8} "
        f"{'ours test s':>11} {'RB test s':>9} {'eval x':>6} {'ours GB':>7} {'RB GB':>6} "
        f"{'ours HR@20':>10} {'RB HR@20':>8} {'ours MRR':>8} {'RB MRR':>7}"
    )
    print(head)
    rows = []
    for m in models:
        o, r = summarise(runs, m, "ours"), summarise(runs, m, "recbole")
        row = {
            "model": m,
            "ours": o,
            "recbole": r,
            "epoch_speedup": r["s_per_epoch"] / o["s_per_epoch"],
            "eval_speedup": r["test_s"] / o["test_s"],
        }
        rows.append(row)
        print(
            f"{m:<10} {o['s_per_epoch']:>10.1f} {r['s_per_epoch']:>9.1f} "
            f"{row['epoch_speedup']:>7.2f}x {o['test_s']:>11.1f} {r['test_s']:>9.1f} "
            f"{row['eval_speedup']:>5.2f}x {o['rss_gb']:>7.2f} {r['rss_gb']:>6.2f} "
            f"{100 * o['hr@20']:>10.2f} {100 * r['hr@20']:>8.2f} "
            f"{100 * o['mrr@20']:>8.2f} {100 * r['mrr@20']:>7.2f}"
        )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recbole-python", required=True, help="python of RecBole's venv")
    parser.add_argument("--dataset", default="diginetica")
    parser.add_argument("--train-fraction", type=float, default=1.0)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-5)
    parser.add_argument("--eval-batch-size", type=int, default=500)
    parser.add_argument("--work-dir", type=Path, default=Path("runs/peers/recbole"))
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from sessionrec.data.sources import load_dataset

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"error: unknown model '{unknown[0]}' (choose from {', '.join(MODELS)})")
    if not Path(args.recbole_python).exists():
        sys.exit(f"error: {args.recbole_python}: no such python (see benchmarks/peers/README.md)")
    name = f"{Path(args.dataset).name}_f{args.train_fraction:g}".replace(".", "p")
    work = args.work_dir.resolve()
    data = load_dataset(args.dataset, train_fraction=args.train_fraction)
    t0 = time.monotonic()
    counts = write_recbole_benchmark(data, work / "data", name)
    max_len = max_input_length(data)
    print(f"converted {name}: {counts} in {time.monotonic() - t0:.1f} s (max input {max_len})")
    del data
    runs: list[dict[str, Any]] = []
    for rep in range(args.repeats):
        for model in models:
            for lib in ("ours", "recbole"):
                out = work / "results" / f"{model}-{lib}-{rep}.json"
                out.parent.mkdir(parents=True, exist_ok=True)
                out.unlink(missing_ok=True)
                spec: dict[str, Any] = {
                    "model": model,
                    "epochs": args.epochs,
                    "batch_size": args.batch_size,
                    "lr": args.lr,
                    "weight_decay": args.weight_decay,
                    "eval_batch_size": args.eval_batch_size,
                    "threads": args.threads,
                    "out": str(out),
                }
                if lib == "ours":
                    spec.update(
                        dataset=args.dataset,
                        train_fraction=args.train_fraction,
                        params=our_params(model, args.dim, args.batch_size),
                    )
                    cmd = [sys.executable, __file__, "--child", json.dumps(spec)]
                else:
                    spec.update(
                        recbole_model=RECBOLE_NAMES[model],
                        data_path=str(work / "data"),
                        dataset=name,
                        max_len=max_len,
                        checkpoint_dir=str(work / "checkpoints"),
                        params=recbole_params(model, args.dim),
                    )
                    cmd = [args.recbole_python, str(CHILD), json.dumps(spec)]
                result = run_child(cmd, out, out.with_suffix(".log"), args.threads)
                result.update(model=model, lib=lib, repeat=rep)
                runs.append(result)
                print(
                    f"  {model:<9} {lib:<7} rep {rep}: s/epoch {result['epoch_seconds']}, "
                    f"test {result['test_seconds']} s, HR@20 {result['hr@20']:.4f}, "
                    f"RSS {result['peak_rss_gb']} GB, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    rows = print_table(runs, models)
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs, "table": rows}
    print(json.dumps(rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        ours_main(json.loads(sys.argv[2]))
    else:
        from sessionrec.errors import SessionrecError

        try:
            main()
        except (PeerRunError, SessionrecError, OSError) as e:  # one line, not a traceback
            sys.exit(f"error: {' '.join(str(e).split())}")
        except KeyboardInterrupt:
            sys.exit("interrupted")

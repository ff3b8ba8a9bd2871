"""One RecBole run for `recbole.py`: run by RecBole's own venv python, never the project's.

Usage: <recbole-venv>/bin/python benchmarks/peers/recbole_child.py '<json spec>'
Trains `spec["recbole_model"]` on the converted benchmark files epoch by epoch (timing each
training epoch and validation apart), keeps the weights of the best validation MRR@20 epoch in
memory (as our Trainer does), tests them with full ranking and writes JSON to `spec["out"]`.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

# this folder holds the driver `recbole.py`, which would shadow the recbole package
HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and str(Path(p).resolve()) != HERE]


def recbole_config(spec: dict[str, Any]) -> dict[str, Any]:
    """RecBole's configuration: pre-split benchmark files, full ranking, our training settings."""
    config = {
        "data_path": spec["data_path"],
        "benchmark_filename": ["train", "valid", "test"],
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": None,
        "load_col": {"inter": ["session_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": spec["max_len"],
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "eval_args": {"order": "TO", "mode": "full"},
        "metrics": ["Hit", "MRR"],
        "topk": [20],
        "metric_decimal_place": 6,
        "valid_metric": "MRR@20",
        "epochs": spec["epochs"],
        "stopping_step": spec["epochs"],
        "train_batch_size": spec["batch_size"],
        "eval_batch_size": spec["eval_batch_size"],
        "learner": "adam",
        "learning_rate": spec["lr"],
        "weight_decay": spec["weight_decay"],
        "seed": 0,
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "worker": 0,
        "state": "WARNING",
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "checkpoint_dir": spec["checkpoint_dir"],
    }
    config.update(spec["params"])
    return config


def main(spec: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    config = Config(
        model=spec["recbole_model"], dataset=spec["dataset"], config_dict=recbole_config(spec)
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    # importing RecBole's models (SINE) turns anomaly detection on; it slows every model
    torch.autograd.set_detect_anomaly(False)
    torch.set_num_threads(spec["threads"])
    trainer.eval_collector.data_collect(train_data)
    epoch_seconds, valid_seconds, best, best_state, best_epoch = [], [], -1.0, None, 0
    for epoch in range(spec["epochs"]):
        t0 = time.monotonic()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        epoch_seconds.append(round(time.monotonic() - t0, 2))
        t0 = time.monotonic()
        score, _ = trainer._valid_epoch(valid_data, show_progress=False)
        valid_seconds.append(round(time.monotonic() - t0, 2))
        if score > best:
            best, best_state, best_epoch = score, copy.deepcopy(model.state_dict()), epoch + 1
    model.load_state_dict(best_state)
    t0 = time.monotonic()
    test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    result = {
        "epoch_seconds": epoch_seconds,
        "valid_seconds": valid_seconds,
        "test_seconds": round(time.monotonic() - t0, 2),
        "hr@20": float(test["hit@20"]),
        "mrr@20": float(test["mrr@20"]),
        "best_epoch": best_epoch,
        "items": int(dataset.item_num) - 1,  # RecBole counts the padding token
        "rows": {
            "train": len(train_data.dataset),
            "valid": len(valid_data.dataset),
            "test": len(test_data.dataset),
        },
        "anomaly_detection": torch.is_anomaly_enabled(),
    }
    Path(spec["out"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))

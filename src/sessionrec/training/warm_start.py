"""Continue training from a trained run on new data whose item vocabulary has grown.

`sessionrec train MODEL --dataset NEW --init-from RUN_DIR` — the daily warm-start retrain:
the new model starts from the run's weights. Items are matched by their original ids (the
datasets' `item_ids.json`; integer ids when neither dataset has them): an item the run knew
keeps its rows in every item-indexed table (embeddings, output tables and biases: the
tensors whose first dimension is the number of items + 1), a new item keeps its fresh
initialisation, and every other tensor of the same shape is copied. A tensor whose shape
changed for another reason (FOCOL's distance weights when the longest session grew) stays
fresh and is named in the report. The hyper-parameters must be the run's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from sessionrec.data.dataset import SessionDataset
from sessionrec.errors import ConfigError
from sessionrec.models.base import NeuralRecommender, Recommender
from sessionrec.models.params import params_dict


def item_mapping(
    old_ids: list[str] | None, new_ids: list[str] | None, old_n: int, new_n: int
) -> torch.Tensor:
    """For each new internal id 0..new_n, the old internal id of the same item, or -1."""
    mapping = torch.full((new_n + 1,), -1, dtype=torch.long)
    mapping[0] = 0  # padding
    if old_ids is None and new_ids is None:  # both in the benchmarks' own integer ids
        shared = min(old_n, new_n)
        mapping[1 : shared + 1] = torch.arange(1, shared + 1)
        return mapping
    if old_ids is None or new_ids is None:
        raise ConfigError(
            "cannot match items: one dataset has original item ids (item_ids.json), the other "
            "only integer ids"
        )
    index = {item: i + 1 for i, item in enumerate(old_ids)}
    for i, item in enumerate(new_ids):
        mapping[i + 1] = index.get(item, -1)
    return mapping


def warm_start(model: Recommender, dataset: SessionDataset, run_dir: str | Path) -> dict[str, Any]:
    """Copy a trained run's weights into `model` (built for `dataset`); what was carried."""
    from sessionrec.models.registry import load_run
    from sessionrec.serving.vocab import load_vocabulary  # the run's item ids

    old, config = load_run(run_dir)
    if old.name != model.name:
        raise ConfigError(f"{run_dir} holds a '{old.name}' run, not '{model.name}'")
    if not isinstance(model, NeuralRecommender) or not isinstance(old, NeuralRecommender):
        raise ConfigError(
            f"{model.name} fits from its data in one pass: train it without --init-from"
        )
    if params_dict(old.params) != params_dict(model.params):
        raise ConfigError(
            f"--init-from needs the run's hyper-parameters: {params_dict(old.params)}"
        )
    old_ids = load_vocabulary(run_dir, config, old.num_items).item_ids
    mapping = item_mapping(old_ids, dataset.item_ids, old.num_items, model.num_items)
    known = mapping >= 0
    source, target = old.net.state_dict(), model.net.state_dict()
    fresh = []
    with torch.no_grad():
        for name, tensor in target.items():
            before = source.get(name)
            if before is None:
                fresh.append(name)
            elif _item_table(before, tensor, old.num_items, model.num_items):
                tensor[known] = before[mapping[known]].to(tensor.dtype)
            elif before.shape == tensor.shape:
                tensor.copy_(before)
            else:
                fresh.append(name)
    model.net.load_state_dict(target)
    return {
        "items_kept": int(known.sum()) - 1,
        "items_new": int((~known).sum()),
        "items_dropped": old.num_items - (int(known.sum()) - 1),
        "fresh_tensors": fresh,
    }


def _item_table(before: torch.Tensor, now: torch.Tensor, old_n: int, new_n: int) -> bool:
    return (
        before.dim() >= 1
        and before.shape[0] == old_n + 1
        and now.shape[0] == new_n + 1
        and before.shape[1:] == now.shape[1:]
    )

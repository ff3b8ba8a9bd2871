"""FOCOL's learned importance of each relative distance (Sec. 4.7, Fig. 4).

Spec: docs/focol.md#importance-analysis-sec-47-fig-4
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from sessionrec.errors import RunError
from sessionrec.graph.fogcn import slot_softmax


def distance_importance(p: torch.Tensor, max_shown: int = 10) -> dict[str, Any]:
    """Mean and std over features of softmax(P) (over all 2L slots) at distances ±1..±max_shown."""
    width = p.shape[0]
    L = width // 2
    q = slot_softmax(p.detach().float()).numpy()  # (2L, d), as the model computes it
    distances = [k for k in range(-min(max_shown, L), min(max_shown, L) + 1) if k != 0]
    slots = [(-k - 1) if k < 0 else (width - k) for k in distances]
    values = q[slots]  # (len(distances), d)
    return {
        "distances": distances,
        "mean": values.mean(1).tolist(),
        "std": values.std(1).tolist(),
        "uniform": 1.0 / width,
        "max_distance": L,
    }


def plot_importance(result: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, mean, std = (np.array(result[x]) for x in ("distances", "mean", "std"))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for side in (k < 0, k > 0):
        ax.plot(k[side], mean[side], marker="o", color="C0")
        ax.fill_between(k[side], (mean - std)[side], (mean + std)[side], alpha=0.25, color="C0")
    ax.axhline(result["uniform"], color="grey", linestyle="--", linewidth=1, label="uniform")
    ax.set_xlabel("relative distance (neighbour position − item position)")
    ax.set_ylabel("importance weight")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def importance_of_run(run_dir: Path, layer: int = 0, max_shown: int = 10) -> dict[str, Any]:
    from sessionrec.models import Recommender

    model = Recommender.load(run_dir)
    params = getattr(getattr(model, "net", None), "importance", None)
    if params is None or len(params) == 0:
        raise RunError(
            f"{run_dir}: '{model.name}' has no FOGCN importance weights (a FOCOL run is needed)"
        )
    if not 0 <= layer < len(params):
        raise RunError(
            f"{run_dir}: layer {layer} out of range (the model has {len(params)} FOGCN layers)"
        )
    result = distance_importance(params[layer], max_shown)
    result.update(model=model.name, layer=layer, alpha=model.params.alpha)
    return result

"""Accuracy by how often the next item was a training target (the long tail), per run.

Test cases are grouped by the count of their true next item among the fitting examples'
targets; each group gets its share of the test set and every run's HR@K and MRR@K. For a
model that scores by a dot product (`item_vectors`), the median norm of the groups' item
vectors comes along: a regulariser or an update rule that starves rare items shows there
first (docs/results.md#accuracy-by-item-frequency-issues-16-17).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.errors import ConfigError

DEFAULT_EDGES = (1, 3, 10, 30, 100)


def parse_edges(text: str) -> list[int]:
    """'1,3,10' -> [1, 3, 10]: increasing positive counts where a new group starts."""
    try:
        edges = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--edges must be comma-separated integers, got '{text}'") from None
    if not edges or edges[0] < 1 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ConfigError(f"--edges must be increasing integers >= 1, got '{text}'")
    return edges


def group_labels(edges: Sequence[int]) -> list[str]:
    """Edges [1, 3] -> ['0', '1-2', '>=3']: the target counts each group holds."""
    starts = [0, *edges[:-1]]
    labels = [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in zip(starts, edges, strict=True)]
    return [*labels, f">={edges[-1]}"]


def item_groups(target_counts: np.ndarray, edges: Sequence[int]) -> np.ndarray:
    """Group index of every item id: 0 for count < edges[0], ..., len(edges) for the rest."""
    return np.searchsorted(np.asarray(edges), target_counts, side="right")


def by_group(values: np.ndarray, groups: np.ndarray, n_groups: int) -> list[float | None]:
    """Mean of `values` per group (None for an empty group)."""
    sums = np.bincount(groups, weights=values, minlength=n_groups)
    counts = np.bincount(groups, minlength=n_groups)
    return [float(s / c) if c else None for s, c in zip(sums, counts, strict=True)]


def median_norms(vectors: np.ndarray, groups: np.ndarray, n_groups: int) -> list[float | None]:
    """Median L2 norm of the item vectors (rows 1..N) in each group."""
    norms = np.linalg.norm(vectors[1:], axis=1)
    g = groups[1:]
    return [float(np.median(norms[g == i])) if (g == i).any() else None for i in range(n_groups)]


def long_tail(
    run_dirs: Sequence[str | Path], edges: Sequence[int], k: int = 20, split: str = "test"
) -> dict[str, Any]:
    """Each run's HR@k / MRR@k per group of the split's cases ("test" or "valid"), and the
    groups' sizes."""
    from sessionrec.analysis.runs import runs_on_one_dataset
    from sessionrec.evaluation import evaluate
    from sessionrec.models.params import build_params
    from sessionrec.models.registry import load_run
    from sessionrec.training.config import TrainConfig

    if split not in ("test", "valid"):
        raise ConfigError(f"split must be 'test' or 'valid', got '{split}'")
    configs, dataset = runs_on_one_dataset(run_dirs)
    cases = dataset.test if split == "test" else dataset.valid
    if len(cases.target) == 0:
        raise ConfigError(f"the runs' dataset has no {split} cases")
    source = configs[0]["dataset"]
    counts = np.bincount(dataset.train.target, minlength=dataset.num_items + 1)
    groups = item_groups(counts, edges)
    n_groups = len(edges) + 1
    case_groups = groups[cases.target]
    case_counts = np.bincount(case_groups, minlength=n_groups)
    result: dict[str, Any] = {
        "dataset": source,
        "k": k,
        "split": split,
        "edges": list(edges),
        "groups": group_labels(edges),
        "items": np.bincount(groups[1:], minlength=n_groups).tolist(),
        "cases": case_counts.tolist(),
        "share": (case_counts / max(len(case_groups), 1)).tolist(),
        "runs": {},
    }
    for run_dir, config in zip(run_dirs, configs, strict=True):
        model, _ = load_run(run_dir)
        train = build_params(TrainConfig, config["train"], "training")
        per_case = evaluate(
            model, cases, (k,), train.eval_batch_size, max_len=train.max_len
        ).per_case
        vectors = model.item_vectors()
        label = model.name if model.name not in result["runs"] else Path(run_dir).name
        result["runs"][label] = {
            "run": str(run_dir),
            "model": model.name,
            f"hr@{k}": by_group(per_case[f"hr@{k}"], case_groups, n_groups),
            f"mrr@{k}": by_group(per_case[f"mrr@{k}"], case_groups, n_groups),
            "median_norm": None
            if vectors is None
            else median_norms(vectors.detach().float().cpu().numpy(), groups, n_groups),
        }
    return result


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """HR@k per group (bars, one per run) and, where known, the median item-vector norm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, labels, k = result["runs"], result["groups"], result["k"]
    x = np.arange(len(labels))
    width = 0.8 / max(len(runs), 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for i, (name, r) in enumerate(runs.items()):
        hr = [np.nan if v is None else 100 * v for v in r[f"hr@{k}"]]
        top.bar(x + (i - (len(runs) - 1) / 2) * width, hr, width, label=name)
        if r["median_norm"] is not None:
            norms = [np.nan if v is None else v for v in r["median_norm"]]
            bottom.plot(x, norms, marker="o", label=name)
    top.set_ylabel(f"{result.get('split', 'test')} HR@{k} (%)")
    top.legend(fontsize=8)
    top.set_title(f"{result['dataset']['dataset']}: accuracy by the next item's training count")
    bottom.set_ylabel("median item-vector norm")
    bottom.set_xticks(
        x, [f"{g}\n{c:,} cases" for g, c in zip(labels, result["cases"], strict=True)]
    )
    bottom.set_xlabel("times the next item was a training target")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)

"""`sessionrec tune`: grid search selected on the validation split only (the papers' protocol).

Every grid point (and seed) is trained through the cached runner with the test split left
untouched; the point with the best mean validation metric (the training `metric`, MRR@20 by
default; ties go to the earlier point) is then evaluated on the test split, once.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec.errors import ConfigError
from sessionrec.io import atomic_write_json, atomic_write_text
from sessionrec.models.params import build_params
from sessionrec.models.registry import split_settings, unused_setting_error
from sessionrec.reproduce.budget import Budget
from sessionrec.reproduce.pipeline import check_datasets, split_list
from sessionrec.reproduce.runner import Runner, make_job
from sessionrec.training.config import TrainConfig

if TYPE_CHECKING:
    from sessionrec.data.dataset import SessionDataset

TEST_METRICS = ("hr@10", "mrr@10", "hr@20", "mrr@20")


def parse_grid(pairs: Sequence[str]) -> dict[str, list[str]]:
    """`["lr=1e-3,3e-3", "hidden_size=50,100"]` -> {"lr": [...], "hidden_size": [...]}."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, values = pair.partition("=")
        key = key.strip()
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key or not items:
            raise ConfigError(f"--grid expects key=v1,v2,..., got '{pair}'")
        if key in grid:
            raise ConfigError(f"--grid '{key}' given twice")
        grid[key] = list(dict.fromkeys(items))
    if not grid:
        raise ConfigError("give at least one --grid key=v1,v2,...")
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """The Cartesian product of the grid, in the order given."""
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def check_grid(model: str, grid: dict[str, Any], sets: dict[str, Any]) -> None:
    """Each grid key must change `model`: a hyper-parameter or a training setting it uses."""
    *_, unused = split_settings(model, {**grid, **sets})
    if unused:  # the same decision and message as `train --set`
        raise unused_setting_error(model, sorted(unused)[0])
    overlap = sorted(set(grid) & set(sets))
    if overlap:
        raise ConfigError(f"'{overlap[0]}' is both in --grid and --set")


def selection_metric(budget: Budget) -> str:
    """The validation metric that selects (the training `metric` setting)."""
    train = {k: v for k, v in budget.sets.items() if k in ("metric", "ks")}
    return build_params(TrainConfig, train, "training").metric


def tune(
    model: str,
    datasets: Sequence[str],
    grid: dict[str, list[str]],
    budget: Budget,
    runs_dir: Path,
    out: Path,
    data_root: Path | None = None,
    progress: bool = False,
    rerun: bool = False,
    command: str = "",
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Grid search on validation per dataset; test metrics of the selected point only."""
    from sessionrec.data.sources import load_dataset

    budget.check()
    check_grid(model, grid, dict(budget.sets))
    metric = selection_metric(budget)
    names = split_list(datasets)
    if not names:
        raise ConfigError("give --dataset (a dataset name or directory) to tune on")
    check_datasets(names, data_root)
    runner = Runner(runs_dir, say, progress, rerun)
    points = grid_points(grid)
    say(budget.label())
    say(
        f"tune {model}: {len(points)} grid points x {budget.seeds} seed(s), "
        f"selecting on validation {metric}"
    )
    results: dict[str, Any] = {
        "model": model,
        "command": command,
        "grid": grid,
        "selection_metric": metric,
        "budget": budget.as_dict(),
        "budget_label": budget.label(),
        "datasets": [],
    }
    for spec in names:
        data = load_dataset(spec, data_root, train_fraction=budget.train_fraction)
        if len(data.valid) == 0:
            raise ConfigError(f"{data.name}: no validation split to select on")
        entries = [_grid_point(model, point, data, budget, runner, metric) for point in points]
        results["datasets"].append(_select_and_test(entries, data, runner, metric, say))
    results["runs"] = dict(runner.counts)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "table.md", tune_markdown(results))
    say(f"wrote {out / 'results.json'} and {out / 'table.md'}")
    return results


def _grid_point(
    model: str,
    point: dict[str, str],
    data: SessionDataset,
    budget: Budget,
    runner: Runner,
    metric: str,
) -> dict[str, Any]:
    """One grid point trained with every seed, scored on validation (mean and std, %)."""
    jobs = [make_job(model, {}, data, budget, s, point) for s in range(budget.seeds)]
    runs = [runner.run(job, data, test=False) for job in jobs]
    values = [100 * r["valid"][metric] for r in runs]
    return {
        "point": point,
        "params": dict(jobs[0].params),
        "valid_pct": float(np.mean(values)),
        "valid_std_pct": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
        "run_dirs": [r["run_dir"] for r in runs],
        "jobs": jobs,
    }


def _select_and_test(
    entries: list[dict[str, Any]],
    data: SessionDataset,
    runner: Runner,
    metric: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """The best point on validation (the first of equal maxima), tested once per seed."""
    best = int(np.argmax([e["valid_pct"] for e in entries]))
    chosen = entries[best]
    say(
        f"selected on {data.name}: {_point_text(chosen['point'])} "
        f"(validation {metric} {chosen['valid_pct']:.2f}%)"
    )
    tested = [runner.run(job, data, test=True) for job in chosen["jobs"]]
    test = {m: [100 * r["test"][m] for r in tested] for m in TEST_METRICS if m in tested[0]["test"]}
    for e in entries:
        del e["jobs"]
    return {
        "name": data.name,
        "points": entries,
        "selected": best,
        "selected_point": chosen["point"],
        "test_pct": {m: float(np.mean(v)) for m, v in test.items()},
        "test_std_pct": {
            m: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for m, v in test.items()
        },
    }


def _point_text(point: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in point.items())


def tune_markdown(results: dict[str, Any]) -> str:
    """Every grid point's validation metric, the selection, and its test metrics."""
    metric = results["selection_metric"].upper()
    keys = list(results["grid"])
    seeds = results["budget"]["seeds"]
    lines = [f"# tune {results['model']}", "", f"**{results['budget_label']}**", ""]
    if results.get("command"):
        lines += [f"Command: `{results['command']}`", ""]
    lines += [
        f"Selection on the validation split only (mean {metric} over {seeds} seed(s)); the test "
        "split was evaluated once, for the selected configuration.",
        "",
    ]
    for d in results["datasets"]:
        lines += [
            f"## {d['name']}",
            "",
            "| " + " | ".join(keys) + f" | valid {metric} (%) | |",
            "|" + "---|" * (len(keys) + 2),
        ]
        for i, e in enumerate(d["points"]):
            std = f" ± {e['valid_std_pct']:.2f}" if seeds > 1 else ""
            mark = "selected" if i == d["selected"] else ""
            values = " | ".join(e["point"][k] for k in keys)
            lines.append(f"| {values} | {e['valid_pct']:.2f}{std} | {mark} |")
        test = d["test_pct"]
        cells = " | ".join(
            f"{test[m]:.2f}" + (f" ± {d['test_std_pct'][m]:.2f}" if seeds > 1 else "") for m in test
        )
        lines += [
            "",
            f"Test of the selected configuration ({_point_text(d['selected_point'])}):",
            "",
            "| " + " | ".join(m.upper() for m in test) + " |",
            "|" + "---|" * len(test),
            f"| {cells} |",
            "",
        ]
    return "\n".join(lines) + "\n"

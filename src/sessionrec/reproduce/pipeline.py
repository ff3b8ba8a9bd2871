"""`reproduce(experiment, options)`: plan the runs, run them (cached), aggregate, write outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec.data.dataset import DEFAULT_VALID_FRACTION
from sessionrec.errors import ConfigError, RunError, SessionrecError
from sessionrec.models.registry import get, not_applied
from sessionrec.progress import bar
from sessionrec.reproduce.budget import Budget
from sessionrec.reproduce.experiments import (
    IMPORTANCE,
    INVARIANCE,
    SWEEP,
    Experiment,
    Row,
    get_experiment,
)
from sessionrec.reproduce.runner import Runner, check_sets, load_per_case, make_job
from sessionrec.reproduce.significance import TESTS, paired_test, seed_mean


@dataclass
class Options:
    """Everything `sessionrec reproduce` takes besides the experiment name."""

    budget: Budget = field(default_factory=Budget)
    datasets: Sequence[str] | None = None
    data_root: Path | None = None
    models: Sequence[str] | None = None
    out: Path | None = None  # default results/<experiment>
    runs_dir: Path = Path("results/runs")
    test: str = "wilcoxon"
    significance_metric: str = "mrr@20"
    rerun: bool = False
    dry_run: bool = False
    command: str = ""


def split_list(values: Sequence[str] | None) -> list[str]:
    """Repeatable options that also take comma lists: ['a,b', 'c'] -> ['a', 'b', 'c']."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def resolve_datasets(
    experiment: Experiment, given: Sequence[str] | None, data_root: Path | None
) -> list[str]:
    """The datasets to run: the given ones, else the experiment's (optional ones if present)."""
    from sessionrec.data.sources import default_data_root

    names = split_list(given)
    if not names:
        names = list(experiment.datasets)
        root = data_root or default_data_root()
        for extra in experiment.optional_datasets:
            if root is not None and any(
                (root / extra / f).exists() for f in ("all_train_seq.txt", "train.npz")
            ):
                names.append(str(root / extra))
    check_datasets(names, data_root)
    return names


def check_datasets(names: Sequence[str], data_root: Path | None) -> None:
    """Fail on a missing dataset before any training, not after hours of it."""
    from sessionrec.data.sources import BUILTIN, resolve_dataset_dir

    for name in names:
        if name not in BUILTIN:
            resolve_dataset_dir(name, data_root)


def check_significance_metric(metric: str, budget: Budget) -> None:
    """The paired test needs per-case HR or MRR at a cut-off the runs evaluate."""
    from sessionrec.models.params import build_params
    from sessionrec.training.config import TrainConfig

    kind, _, cutoff = metric.partition("@")
    ks = build_params(TrainConfig, {k: v for k, v in budget.sets.items() if k == "ks"}).ks
    if kind not in ("hr", "mrr") or not cutoff.isdigit() or int(cutoff) not in ks:
        raise ConfigError(
            f"--significance-metric must be hr@K or mrr@K with K in ks={list(ks)}, got '{metric}'"
        )


def reproduce(
    name: str, options: Options, say: Callable[[str], None] = print
) -> dict[str, Any] | None:
    """Run experiment `name`; returns the results (None for a dry run) and writes the outputs."""
    from sessionrec.reproduce.report import write_outputs

    experiment = get_experiment(name)
    budget = options.budget
    budget.check()
    if options.test not in TESTS:
        raise ConfigError(f"unknown --test '{options.test}' (choose from {', '.join(TESTS)})")
    rows = experiment.select_rows(split_list(options.models))
    check_sets(sorted({r.model for r in rows}), budget.sets)
    for model in sorted({r.model for r in rows}):  # said, not silently dropped
        owned = [k for k in budget.sets if k in get(model).own_train_settings]
        if owned:
            say(
                f"note: {model} sets {', '.join(owned)} through its own hyper-parameters; "
                f"--set {', '.join(owned)} does not apply to it"
            )
        steps = [k for k in budget.sets if k in not_applied(model)]
        if steps:
            say(f"note: {model} trains with steps of its own; --set {', '.join(steps)} skipped")
    check_significance_metric(options.significance_metric, budget)
    datasets = resolve_datasets(experiment, options.datasets, options.data_root)
    runner = Runner(options.runs_dir, say, False, options.rerun)  # the rows' bar is the one shown
    say(budget.label())
    if options.dry_run:
        plan(experiment, rows, datasets, options, runner, say)
        return None
    results: dict[str, Any] = {
        "experiment": experiment.name,
        "source": experiment.source,
        "title": experiment.title,
        "kind": experiment.kind,
        "command": options.command,
        "budget": budget.as_dict(),
        "budget_label": budget.label(),
        "metrics": list(experiment.metrics),
        "significance": {
            "test": options.test,
            "metric": options.significance_metric,
            "reference": None,
        },
        "datasets": [],
        "rows": [],
        "failed": [],
        "analysis": {},
    }
    with bar(f"reproduce {experiment.name}", len(datasets) * len(rows)) as advance:
        _run_datasets(experiment, rows, datasets, options, budget, runner, results, say, advance)
    results["runs"] = dict(runner.counts)
    say(
        f"runs: {runner.counts['trained']} trained, {runner.counts['resumed']} resumed, "
        f"{runner.counts['reused']} reused"
    )
    out = options.out or Path("results") / experiment.name
    for path in write_outputs(results, out):
        say(f"wrote {path}")
    if results["failed"]:
        names = ", ".join(f"{f['label']} on {f['dataset']}" for f in results["failed"])
        raise RunError(f"{len(results['failed'])} row(s) failed ({names}); see {out}/table.md")
    return results


def _run_datasets(
    experiment: Any,
    rows: list[Any],
    datasets: list[str],
    options: Options,
    budget: Budget,
    runner: Runner,
    results: dict[str, Any],
    say: Callable[[str], None],
    advance: Callable[[int], None],
) -> None:
    """Every row on every dataset into `results`; a failed row is recorded and skipped."""
    for spec in datasets:
        data = _load(spec, options, budget)
        refit_data = _load(spec, options, budget, 0.0) if budget.protocol == "paper" else None
        results["datasets"].append({"name": data.name, "spec": spec, **data.stats()})
        dataset_rows = []
        for row in rows:
            try:
                dataset_rows.append(_run_row(experiment, row, data, budget, runner, refit_data))
                advance(1)
            except (SessionrecError, FloatingPointError, RuntimeError, MemoryError) as e:
                error = " ".join(str(e).split())[:300] or type(e).__name__
                failed = {"dataset": data.name, "label": row.label, "model": row.model}
                results["failed"].append({**failed, "error": error})
                say(f"FAILED  {row.label} on {data.name}: {error}; going on with the other rows")
                advance(1)
        if experiment.kind not in (SWEEP, IMPORTANCE):
            ref = _significance(experiment, dataset_rows, options)
            results["significance"]["reference"] = ref
        results["rows"].extend(dataset_rows)
        analysis = _analysis(experiment, dataset_rows, say)
        if analysis is not None:
            results["analysis"][data.name] = analysis
        del data, refit_data


def _load(
    spec: str, options: Options, budget: Budget, valid_fraction: float = DEFAULT_VALID_FRACTION
) -> Any:
    from sessionrec.data.sources import load_dataset

    return load_dataset(spec, options.data_root, valid_fraction, budget.train_fraction)


def plan(
    experiment: Experiment,
    rows: Sequence[Row],
    datasets: Sequence[str],
    options: Options,
    runner: Runner,
    say: Callable[[str], None],
) -> None:
    """Print what a run would do (train, resume or reuse) for every job, without training."""
    counts: dict[str, int] = {}
    for spec in datasets:
        data = _load(spec, options, options.budget)
        for row in rows:
            for seed in range(options.budget.seeds):
                job = make_job(row.model, row.params, data, options.budget, seed)
                status = runner.status(job)
                counts[status] = counts.get(status, 0) + 1
                then = ", then its refit" if options.budget.protocol == "paper" else ""
                say(
                    f"{status:7s} {row.label} on {data.name}, seed {seed}: "
                    f"{runner.run_dir(job)}{then}"
                )
    summary = ", ".join(f"{n} to {s}" for s, n in sorted(counts.items()))
    say(f"{experiment.name}: {summary or 'nothing to run'} (dry run: nothing trained)")


def _run_row(
    experiment: Experiment,
    row: Row,
    data: Any,
    budget: Budget,
    runner: Runner,
    refit_data: Any = None,
) -> dict[str, Any]:
    """Every seed of one row on one dataset, with mean ± std and the paper's numbers; with
    `refit_data` (the paper protocol) each seed's test metrics are its refit's."""
    runs = []
    for seed in range(budget.seeds):
        job = make_job(row.model, row.params, data, budget, seed)
        if refit_data is None:
            runs.append(runner.run(job, data))
        else:
            runs.append(_paper_run(runner, job, data, refit_data))
    ours = {m: [100 * r["test"][m] for r in runs] for m in experiment.metrics}
    mean = {m: float(np.mean(v)) for m, v in ours.items()}
    std = {m: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for m, v in ours.items()}
    paper = {
        m: experiment.paper_value(row.label, data.name, m)
        for m in experiment.metrics
        if experiment.paper_value(row.label, data.name, m) is not None
    }
    return {
        "dataset": data.name,
        "label": row.label,
        "model": row.model,
        "fixed": {k: list(v) if isinstance(v, tuple) else v for k, v in row.params.items()},
        "ours_pct": mean,
        "std_pct": std,
        "paper_pct": paper,
        "diff_pct": {m: mean[m] - p for m, p in paper.items()},
        "valid_pct": {
            m: float(np.mean([100 * r["valid"][m] for r in runs]))
            for m in experiment.metrics
            if all(m in r["valid"] for r in runs)
        },
        "p_value": None,
        "runs": runs,
    }


def _paper_run(runner: Runner, job: Any, data: Any, refit_data: Any) -> dict[str, Any]:
    """Select the epochs on validation (the cached full-protocol run), refit on every
    training example for that many epochs (a cached run of its own) and test the refit."""
    selected = runner.run(job, data, test=False)
    epochs = int(selected.get("best_epoch") or 1)  # a model without epochs fits once
    refit = runner.run(job.refit(epochs), refit_data)
    selection = {k: selected.get(k) for k in ("run_dir", "best_epoch", "fit_seconds")}
    return {**refit, "valid": selected["valid"], "selection": selection}


def _significance(
    experiment: Experiment, rows: list[dict[str, Any]], options: Options
) -> str | None:
    """Set each row's p-value against the reference row (the paper's model when present)."""
    if not rows:
        return None
    labels = [r["label"] for r in rows]
    ref_label = experiment.reference if experiment.reference in labels else labels[0]
    metric = options.significance_metric

    def values(row: dict[str, Any]) -> np.ndarray:
        return seed_mean([load_per_case(Path(r["run_dir"]), metric) for r in row["runs"]])

    ref = next(r for r in rows if r["label"] == ref_label)
    ref_values = values(ref)
    for row in rows:
        if row is not ref:
            row["p_value"] = paired_test(ref_values, values(row), options.test)
    return ref_label


def _analysis(
    experiment: Experiment, rows: list[dict[str, Any]], say: Callable[[str], None]
) -> dict[str, Any] | None:
    """Fig. 4 importance weights or Fig. 1 local invariance for one dataset."""
    if experiment.kind == IMPORTANCE:
        from sessionrec.analysis.importance import importance_of_run

        run_dir = Path(rows[0]["runs"][0]["run_dir"])
        say(f"importance weights of {run_dir}")
        return importance_of_run(run_dir, layer=0, max_shown=10)
    if experiment.kind == INVARIANCE:
        from sessionrec.analysis.local_invariance import (
            DEFAULT_THETAS,
            local_invariance,
            parse_thetas,
        )

        run_dirs = [Path(r["run_dir"]) for row in rows for r in row["runs"]]
        say(f"local invariance over {len(run_dirs)} runs")
        result = local_invariance(run_dirs, parse_thetas(DEFAULT_THETAS))
        shares: dict[str, list[list[float | None]]] = {}
        for entry in result["models"].values():
            shares.setdefault(entry["model"], []).append(entry["share"])
        labels = {row["model"]: row["label"] for row in rows}
        result["models"] = {
            labels[model]: {"model": model, "share": _mean_share(per_seed)}
            for model, per_seed in shares.items()
        }
        return result
    return None


def _mean_share(per_seed: list[list[float | None]]) -> list[float | None]:
    """Mean over seeds per θ (None where there were no pairs)."""
    return [
        None if any(v is None for v in column) else float(np.mean(column))
        for column in zip(*per_seed, strict=True)
    ]


__all__ = ["Options", "reproduce", "get_experiment"]

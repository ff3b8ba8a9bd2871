"""Cached, resumable training runs for reproductions and tuning.

A run is keyed by a hash of the model, its resolved hyper-parameters, the data (dataset
source incl. train fraction and validation fraction), the training settings that can change
a result, and the seed. Its directory `RUNS/<model>-<dataset>-seed<S>-<key>/` is an ordinary
run directory plus `reproduce.json` (what was hashed) and `per_case.npz` (per-case HR/MRR
on the test split, for significance tests). A finished run is reused; an unfinished one with
a checkpoint continues with the Trainer's resume; anything else is trained afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec import __version__
from sessionrec.data.dataset import SessionDataset
from sessionrec.errors import ConfigError, RunError
from sessionrec.io import atomic_write, atomic_write_json
from sessionrec.models.params import build_params, params_dict
from sessionrec.models.registry import create, dataset_preset, get, split_settings, train_config
from sessionrec.reproduce.budget import EXECUTION_ONLY, Budget
from sessionrec.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    KEY_FILE,
    METRICS_FILE,
    PER_CASE_FILE,
    read_config,
    read_epoch_records,
    read_json_object,
    read_metrics,
)
from sessionrec.training.config import TrainConfig


@dataclass(frozen=True)
class Job:
    """One training run: model, resolved hyper-parameters and settings, data, seed."""

    model: str
    params: Mapping[str, Any]
    train: Mapping[str, Any]
    data: Mapping[str, Any]
    dataset_name: str
    seed: int

    def key_content(self) -> dict[str, Any]:
        """Everything that determines the result (execution-only settings left out)."""
        train = {k: v for k, v in self.train.items() if k not in EXECUTION_ONLY}
        return {
            "model": self.model,
            "params": dict(self.params),
            "data": dict(self.data),
            "train": train,
        }

    def key(self) -> str:
        text = json.dumps(self.key_content(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def dirname(self) -> str:
        return f"{self.model}-{self.dataset_name}-seed{self.seed}-{self.key()}"

    def config(self) -> TrainConfig:
        return build_params(TrainConfig, dict(self.train), "training")

    def refit(self, epochs: int) -> Job:
        """The paper protocol's refit of this job: every training example, `epochs` epochs."""
        train = {**self.train, "epochs": epochs, "patience": epochs}
        data = {**self.data, "valid_fraction": 0.0}
        return Job(self.model, self.params, train, data, self.dataset_name, self.seed)


def split_sets(model: str, sets: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """`--set` values that apply to `model`: (its hyper-parameters, training settings)."""
    model_hp, train_hp, _ = split_settings(model, sets)  # other models' keys are checked once
    return model_hp, train_hp


def split_row(model: str, fixed: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A row's own values: (hyper-parameters, training settings); any other key is an error."""
    model_hp, train_hp, unused = split_settings(model, fixed)
    if unused:
        raise ConfigError(f"row of {model}: '{unused[0]}' is no setting of {model}")
    return model_hp, train_hp


def check_sets(models: list[str], sets: Mapping[str, Any], what: str = "--set") -> None:
    """Every key must be a hyper-parameter of some model here or a training setting."""
    known = set(TrainConfig.__dataclass_fields__)
    for model in models:
        known |= set(get(model).Params.__dataclass_fields__)
    unknown = sorted(set(sets) - known)
    if unknown:
        raise ConfigError(
            f"{what} '{unknown[0]}' is neither a hyper-parameter of {', '.join(models)} "
            f"nor a training setting ({', '.join(TrainConfig.__dataclass_fields__)})"
        )


def make_job(
    model: str,
    fixed: Mapping[str, Any],
    dataset: SessionDataset,
    budget: Budget,
    seed: int,
    extra: Mapping[str, Any] | None = None,
) -> Job:
    """The job for `model` on `dataset`.

    Precedence: model defaults (hyper-parameters and training settings) < the authors'
    settings for this benchmark < `--set` < `extra` (a grid point) < `fixed` (the row's own,
    which may hold training settings too).
    """
    preset = dataset_preset(model, dataset.name)
    model_hp, train_hp = split_sets(model, {**preset, **budget.sets, **(extra or {})})
    row_hp, row_train = split_row(model, fixed)
    model_hp.update(row_hp)
    train_hp.update(row_train)
    params = params_dict(build_params(get(model).Params, model_hp, model))
    train_hp.update(epochs=budget.epochs, seed=seed)
    if budget.max_minutes is not None:
        train_hp["max_minutes"] = budget.max_minutes
    train = params_dict(train_config(model, train_hp))
    return Job(model, params, train, dict(dataset.source), dataset.name, seed)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, or None when missing or unreadable (the job trains again)."""
    try:
        return read_json_object(path)
    except RunError:
        return None


def epoch_summary(run_dir: Path) -> dict[str, Any]:
    """Epochs run and whether the time budget or early stopping ended training (from the log)."""
    epochs = read_epoch_records(run_dir)
    if not epochs:
        return {}
    last = epochs[-1]
    return {
        "epochs_run": last.get("epoch"),
        "out_of_budget": bool(last.get("out_of_budget")),
        "stopped_early": bool(last.get("stopped_early")),
    }


def load_per_case(run_dir: Path, metric: str) -> np.ndarray:
    """The per-case values of `metric` (e.g. mrr@20) on the test split of a finished run."""
    path = run_dir / PER_CASE_FILE
    try:
        with np.load(path, allow_pickle=False) as z:
            return np.asarray(z[metric], dtype=np.float64)
    except FileNotFoundError:
        raise RunError(
            f"{run_dir}: no {PER_CASE_FILE} (its test split was not evaluated)"
        ) from None
    except KeyError:
        raise ConfigError(f"{path}: no per-case values of '{metric}'") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: corrupted ({e})") from None


class Runner:
    """Runs jobs under `root`, reusing finished runs; counts what it trained and reused."""

    def __init__(
        self,
        root: Path,
        say: Callable[[str], None] = print,
        progress: bool = False,
        rerun: bool = False,
    ) -> None:
        self.root = Path(root)
        self.say = say
        self.progress = progress
        self.rerun = rerun
        self.counts: Counter[str] = Counter()
        self.seen: set[Path] = set()  # run directories this runner already trained or reused

    def run_dir(self, job: Job) -> Path:
        return self.root / job.dirname()

    def finished(self, job: Job) -> dict[str, Any] | None:
        """The recorded metrics of a finished run of `job` (None when it must be trained)."""
        run_dir = self.run_dir(job)
        marker = read_json(run_dir / KEY_FILE)
        if self.rerun or marker is None or marker.get("key") != job.key():
            return None
        refit = job.data.get("valid_fraction") == 0.0  # trained without a validation split
        try:
            metrics = read_metrics(run_dir, required=() if refit else ("valid",))
        except RunError:  # not finished, or unreadable: trained (or resumed) again
            return None
        return None if self._budget_extended(job) else metrics

    def _budget_extended(self, job: Job) -> bool:
        """A run its time budget cut, asked for again with more time: resumed, not reused."""
        run_dir = self.run_dir(job)
        if not epoch_summary(run_dir).get("out_of_budget"):
            return False
        try:
            recorded = read_config(run_dir)["train"].get("max_minutes")
        except RunError:
            return False
        wanted = job.train.get("max_minutes")
        return recorded is not None and (wanted is None or wanted > recorded)

    def status(self, job: Job) -> str:
        """What `run` would do: 'reuse', 'resume' or 'train'."""
        if self.finished(job) is not None:
            return "reuse"
        return "resume" if self._resumable(job) else "train"

    def _resumable(self, job: Job) -> bool:
        run_dir = self.run_dir(job)
        marker = read_json(run_dir / KEY_FILE)
        return (
            not self.rerun
            and marker is not None
            and marker.get("key") == job.key()
            and (run_dir / CHECKPOINT_FILE).exists()
            and (run_dir / CONFIG_FILE).exists()
        )

    def run(self, job: Job, dataset: SessionDataset, test: bool = True) -> dict[str, Any]:
        """Train `job` (or reuse/resume it), then evaluate the test split once if `test`."""
        import torch

        from sessionrec.training.run import train_and_evaluate

        run_dir = self.run_dir(job)
        config = job.config()
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        what = f"{job.model} on {job.dataset_name}, seed {job.seed}"
        if job.data.get("valid_fraction") == 0.0:
            what += " (refit on every training example)"
        splits = ("valid",) if len(dataset.valid) else ()
        metrics = self.finished(job)
        model = None
        if metrics is not None:
            if run_dir not in self.seen:
                self.counts["reused"] += 1
                self.say(f"reused  {what}: {run_dir}")
        else:
            resume = self._resumable(job)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / PER_CASE_FILE).unlink(missing_ok=True)
            atomic_write_json(
                run_dir / KEY_FILE,
                {"key": job.key(), **job.key_content(), "sessionrec": __version__},
            )
            self.say(f"{'resume ' if resume else 'train  '} {what} -> {run_dir}")
            model = create(job.model, dataset.num_items, seed=job.seed, **job.params)
            try:
                metrics = train_and_evaluate(
                    model, dataset, config, run_dir, self.progress, resume, splits
                )
            except RunError as e:
                if not resume:
                    raise
                self.say(f"cannot resume {run_dir} ({e}); training afresh")
                model = create(job.model, dataset.num_items, seed=job.seed, **job.params)
                metrics = train_and_evaluate(
                    model, dataset, config, run_dir, self.progress, False, splits
                )
            self.counts["resumed" if resume else "trained"] += 1
        self.seen.add(run_dir)
        if test and ("test" not in metrics or not (run_dir / PER_CASE_FILE).exists()):
            self.say(f"test    {what}")
            metrics = self._evaluate_test(job, dataset, config, metrics, model)
        return {
            "run_dir": str(run_dir),
            "seed": job.seed,
            "valid": metrics.get("valid", {}),
            "test": metrics.get("test"),
            "fit_seconds": metrics.get("fit_seconds"),
            "best_epoch": metrics.get("best_epoch"),
            **epoch_summary(run_dir),
        }

    def _evaluate_test(
        self,
        job: Job,
        dataset: SessionDataset,
        config: TrainConfig,
        metrics: dict[str, Any],
        model: Any,
    ) -> dict[str, Any]:
        """Full-ranking test metrics and per-case HR/MRR, added to the run directory."""
        from sessionrec.evaluation import evaluate
        from sessionrec.models.base import Recommender
        from sessionrec.training.config import resolve_device

        run_dir = self.run_dir(job)
        if model is None:
            model = Recommender.load(run_dir, resolve_device(config.device))
        result = evaluate(
            model,
            dataset.test,
            config.ks,
            config.eval_batch_size,
            dataset.item_counts(),
            config.tie_policy,
            config.max_len,
        )
        arrays = {k: v for k, v in result.per_case.items() if k.startswith(("hr@", "mrr@"))}

        def write(tmp: str) -> None:
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **arrays)

        atomic_write(run_dir / PER_CASE_FILE, write)
        metrics = dict(metrics, test=result.metrics, test_cases=result.num_cases)
        atomic_write_json(run_dir / METRICS_FILE, metrics)
        return metrics

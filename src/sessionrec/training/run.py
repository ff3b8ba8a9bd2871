"""Train, evaluate and write a run directory: the one path the CLI, demo and scripts share.

A run directory holds `config.json` (model, hyper-parameters, dataset, training settings),
`model.json` + `model.safetensors` (the selected weights), `metrics.json` (valid and test),
`log.jsonl` and, for neural models, `checkpoint.pt` (for `--resume`).

Under torchrun every rank runs `train_and_evaluate`; only rank 0 writes the run directory
(docs/distributed.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sessionrec import __version__
from sessionrec.data.dataset import SessionDataset
from sessionrec.data.sources import reload_dataset, resolve_dataset_dir
from sessionrec.errors import ConfigError, RunError
from sessionrec.evaluation import evaluate_splits
from sessionrec.io import atomic_write_json
from sessionrec.models.base import NeuralRecommender, Recommender
from sessionrec.models.params import as_recorded, build_params, params_dict
from sessionrec.models.registry import create, get, load_run
from sessionrec.progress import shown
from sessionrec.provenance import provenance
from sessionrec.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    REFIT_DIR,
    SELECT_DIR,
    WEIGHTS_FILE,
    read_config,
    read_metrics,
    record_train_settings,
    training_lock,
)
from sessionrec.training import distributed
from sessionrec.training.config import TrainConfig


def run_config(model: Recommender, dataset: SessionDataset, config: TrainConfig) -> dict[str, Any]:
    source = dataset.source
    builtin = source.get("dataset", "synthetic") == "synthetic"
    data_dir = None if builtin else resolve_dataset_dir(source["dataset"], source.get("data_root"))
    return {
        "model": model.name,
        "num_items": model.num_items,
        "params": params_dict(model.params),
        "dataset": source,
        "train": params_dict(config),
        "sessionrec": __version__,
        # the device neural models train on (models without training steps run on the CPU)
        "provenance": provenance(data_dir, _training_device(model, config)),
    }


def _training_device(model: Recommender, config: TrainConfig) -> Any:
    if not isinstance(model, NeuralRecommender):
        return None
    return distributed.rank_device(config.device)


def _record_resume(run_dir: Path, config: TrainConfig, info: dict[str, Any]) -> None:
    """A resumed run's config.json: the settings it now runs with (a longer budget, say), and
    in `resumes` each resume's command, commit (`info`, taken when it started) and the
    settings it changed."""
    resume = {"command": info["command"], "commit": info["commit"]}
    try:
        record_train_settings(run_dir, params_dict(config), resume)
    except RunError:
        return  # a run without a readable config.json has nothing to record into


def train_and_evaluate(
    model: Recommender,
    dataset: SessionDataset,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    progress: bool = False,
    resume: bool = False,
    splits: tuple[str, ...] = ("valid", "test"),
) -> dict[str, Any]:
    """Fit `model`, evaluate it on `splits` (validation and test), and write the run directory.

    Under torchrun (WORLD_SIZE > 1) it joins the process group, trains with DDP and shards
    evaluation; models that train in one process only are refused there. `splits=("valid",)`
    leaves the test set untouched (tuning evaluates it for the selected configuration only).
    """
    config = config or TrainConfig(**type(model).train_defaults)
    run_dir = Path(run_dir) if run_dir is not None else None
    world = distributed.env_world()
    if world.enabled:
        _check_multi_process(model, world.world_size)
    owned = distributed.setup(config.device)
    try:
        if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
            raise RunError(f"{run_dir}: exists and is not a directory")
        if run_dir is not None and not resume and world.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
        # graph building and evaluation bars too; the lock before anything is written
        with shown(progress and world.is_main), run_lock(run_dir):
            return _train_and_evaluate(model, dataset, config, run_dir, progress, resume, splits)
    finally:
        if owned:
            distributed.shutdown()


def _train_and_evaluate(
    model: Recommender,
    dataset: SessionDataset,
    config: TrainConfig,
    run_dir: Path | None,
    progress: bool,
    resume: bool,
    splits: tuple[str, ...] = ("valid", "test"),
) -> dict[str, Any]:
    world = distributed.current()
    if run_dir is not None and not resume and world.is_main:
        for stale in (METRICS_FILE, CHECKPOINT_FILE):
            (run_dir / stale).unlink(missing_ok=True)
        atomic_write_json(run_dir / CONFIG_FILE, run_config(model, dataset, config))
    t0 = time.monotonic()
    started_with = provenance(None) if resume else {}  # the code this process runs
    model.fit(dataset, config, run_dir, progress, resume)
    if resume and run_dir is not None and world.is_main:
        _record_resume(run_dir, config, started_with)  # a failed resume changes nothing
    # A resumed run counts its training before the interruption too (the checkpoint's clock).
    fit_seconds = time.monotonic() - t0 + getattr(model, "prior_fit_seconds", 0.0)
    t1 = time.monotonic()
    results = evaluate_splits(model, dataset, config, splits, world.enabled)
    metrics: dict[str, Any] = {
        "model": model.name,
        "dataset": dataset.name,
        **results,
        "fit_seconds": round(fit_seconds, 2),
        "eval_seconds": round(time.monotonic() - t1, 2),
        "test_cases": len(dataset.test),
    }
    if world.enabled:
        metrics["world_size"] = world.world_size
    best_epoch = getattr(model, "best_epoch", None)
    if best_epoch is not None:
        metrics["best_epoch"] = best_epoch
    if run_dir is not None and world.is_main:
        model.save(run_dir)
        atomic_write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def run_lock(run_dir: Path | None) -> contextlib.AbstractContextManager[None]:
    """The run directory's training lock, held by the process that writes it (rank 0)."""
    if run_dir is None or not distributed.env_world().is_main:
        return contextlib.nullcontext()
    return training_lock(run_dir)


def _check_multi_process(model: Recommender, world_size: int) -> None:
    """Refuse a model whose training cannot be split over ranks, before any rank starts."""
    trainer = getattr(model, "trainer_class", None)
    if trainer is None:
        raise ConfigError(
            f"{model.name} has its own fit (no gradient steps), so it cannot train on "
            f"{world_size} processes; run it as one process"
        )
    if not trainer.multi_process:
        raise ConfigError(
            f"{model.name}'s {trainer.__name__} trains in one process only, so it cannot "
            f"train on {world_size} processes; run it as one process"
        )


BUCKETED_BEFORE = 64  # the batch composition of runs from before 2026-12-04


def _train_settings(run_dir: str | Path, settings: dict[str, Any]) -> TrainConfig:
    """The training settings recorded in a run's config.json, errors naming the file."""
    # Runs recorded before `bucket_batches` existed were bucketed by 64 batches.
    settings = {"bucket_batches": BUCKETED_BEFORE, **settings}
    try:
        return build_params(TrainConfig, settings, "training")
    except ConfigError as e:
        raise RunError(f"{Path(run_dir) / CONFIG_FILE}: {e}") from None


RESUMABLE_CHANGES = (
    "epochs",
    "max_minutes",
    "patience",
    "checkpoint_seconds",
    "test_curve",
    "log_every",
    "eval_batch_size",
    "num_threads",
    "device",
    "amp",
)


def _actual_changes(
    model_name: str, params: dict[str, Any], train: dict[str, Any], changes: dict[str, Any]
) -> dict[str, Any]:
    """The entries of `changes` that differ from the run's recorded `params` and `train`
    settings: repeating the first command's `--set weight_decay=0` with `--resume` changes
    nothing and is not refused. Unknown keys and bad values count as changes."""
    from sessionrec.models import get

    remaining, differ = dict(changes), {}
    for cls, before in ((get(model_name).Params, params), (TrainConfig, train)):
        mine = {k: remaining.pop(k) for k in list(remaining) if k in cls.__dataclass_fields__}
        try:
            old = build_params(cls, before, validate=False)
            new = build_params(cls, {**before, **mine}, validate=False)
        except ConfigError:  # reported with the other refusals
            differ.update(mine)
            continue
        differ.update({k: v for k, v in mine.items() if getattr(new, k) != getattr(old, k)})
    return {**differ, **remaining}


def prepare_resume(
    run_dir: str | Path,
    model_name: str,
    changes: dict[str, Any] | None = None,
    record: bool = True,
) -> tuple[Recommender, SessionDataset, TrainConfig]:
    """Rebuild model, dataset and settings of an interrupted run from its config.json.

    `changes` may extend the budget (epochs, max_minutes, patience) or change how the run
    executes; anything that would change the result so far is refused. `record=False`
    leaves `run_dir` untouched (a finished run another one starts from).
    """
    config = read_config(run_dir)
    if config.get("model") != model_name:
        raise RunError(f"{run_dir}: holds a '{config.get('model')}' run, not '{model_name}'")
    recorded = {"bucket_batches": BUCKETED_BEFORE, **config["train"]}
    params = as_recorded(get(model_name).Params, config["params"])
    changes = _actual_changes(model_name, params, recorded, changes or {})
    bad = sorted(set(changes) - set(RESUMABLE_CHANGES))
    if bad:
        raise ConfigError(
            f"'{bad[0]}' cannot change when resuming (allowed: {', '.join(RESUMABLE_CHANGES)})"
        )
    _train_settings(run_dir, config["train"])  # the file itself first, then the changes
    train = build_params(TrainConfig, {**recorded, **(changes or {})}, "training")
    if record and changes and distributed.env_world().is_main:  # a later --resume too
        with training_lock(run_dir):
            record_train_settings(run_dir, params_dict(train), starting=True)
    model = create(model_name, int(config["num_items"]), seed=train.seed, **params)
    return model, reload_dataset(config["dataset"]), train


def evaluate_run(
    run_dir: str | Path, splits: tuple[str, ...] = ("test",), device: str = "cpu"
) -> dict[str, dict[str, float]]:
    """Evaluate a saved run again on the dataset and settings it was trained with."""
    model, config = load_run(run_dir, device)
    train = _train_settings(run_dir, config["train"])
    dataset = reload_dataset(config["dataset"])
    return evaluate_splits(model, dataset, train, splits)


PROTOCOLS = ("full", "paper")


def train_paper_protocol(
    make_model: Callable[[], Recommender],
    load: Callable[[float], SessionDataset],
    valid_fraction: float,
    config: TrainConfig,
    run_dir: str | Path,
    progress: bool = False,
    resume: bool = False,
    select_from: Path | None = None,
) -> dict[str, Any]:
    """Select the epoch count on validation, refit on every training example, test once.

    `run_dir/select` is the validation-selected run, `run_dir/refit` the refit (each a run
    directory of its own, so `--resume` continues whichever was interrupted); `run_dir` gets
    the refit model, its config and the metrics of both: `test` is the refit's. With
    `select_from`, a finished validation-selected run with the same settings is the
    selection, and only the refit trains.
    """
    run_dir = Path(run_dir)
    if not resume and distributed.env_world().is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
    with run_lock(run_dir):
        return _paper_protocol(
            make_model, load, valid_fraction, config, run_dir, progress, resume, select_from
        )


def _paper_protocol(
    make_model: Callable[[], Recommender],
    load: Callable[[float], SessionDataset],
    valid_fraction: float,
    config: TrainConfig,
    run_dir: Path,
    progress: bool,
    resume: bool,
    select_from: Path | None,
) -> dict[str, Any]:
    """`train_paper_protocol` under the run directory's lock."""
    select, refit = run_dir / SELECT_DIR, run_dir / REFIT_DIR
    main = distributed.env_world().is_main
    if select_from is not None:
        chosen = read_metrics(select_from)
        if not resume and main:
            _start_paper_run(run_dir, make_model(), load(valid_fraction), config, valid_fraction)
            extra = {"select_from": str(select_from)}
            atomic_write_json(run_dir / CONFIG_FILE, {**read_config(run_dir), **extra})
    elif resume and (select / METRICS_FILE).exists():
        chosen = read_metrics(select)
    else:
        data, model = load(valid_fraction), make_model()
        if not resume and main:  # what `--resume` rebuilds both phases from
            _start_paper_run(run_dir, model, data, config, valid_fraction)
        again = resume and (select / CHECKPOINT_FILE).exists()
        chosen = train_and_evaluate(model, data, config, select, progress, again)
    epochs = int(chosen.get("best_epoch") or config.epochs)
    refit_config = dataclasses.replace(config, epochs=epochs, patience=epochs)
    again = resume and (refit / CHECKPOINT_FILE).exists()
    final = train_and_evaluate(
        make_model(), load(0.0), refit_config, refit, progress, again, splits=("test",)
    )
    metrics = {
        "model": final["model"],
        "dataset": final["dataset"],
        "protocol": "paper",
        "valid": chosen["valid"],
        "test": final["test"],
        "best_epoch": epochs,
        "selected": {"test": chosen["test"], "fit_seconds": chosen["fit_seconds"]},
        "fit_seconds": round(chosen["fit_seconds"] + final["fit_seconds"], 2),
        "eval_seconds": final["eval_seconds"],
        "test_cases": final["test_cases"],
    }
    if main:
        for name in (MODEL_FILE, WEIGHTS_FILE):
            shutil.copyfile(refit / name, run_dir / name)
        paper = dict(read_config(refit), protocol="paper", select_valid_fraction=valid_fraction)
        if select_from is not None:
            paper["select_from"] = str(select_from)
        atomic_write_json(run_dir / CONFIG_FILE, paper)
        atomic_write_json(run_dir / METRICS_FILE, metrics)
    return metrics


def _start_paper_run(
    run_dir: Path,
    model: Recommender,
    data: SessionDataset,
    config: TrainConfig,
    valid_fraction: float,
) -> None:
    """A paper-protocol run directory's first config.json (what `--resume` rebuilds from)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / METRICS_FILE).unlink(missing_ok=True)
    paper = dict(
        run_config(model, data, config), protocol="paper", select_valid_fraction=valid_fraction
    )
    atomic_write_json(run_dir / CONFIG_FILE, paper)
